import { Args } from '@oclif/core'
import { storageStats, type StorageStatsRow } from '../api/files.js'
import { formatTable, PgdvCommand } from '../lib/base.js'

export interface StatsResult {
  datasets: StorageStatsRow[]
  /** The whole store (every dataset and blob), or the one dataset asked for. */
  logical_bytes: number
  stored_bytes: number
  dedup_ratio: number | null
}

export default class Stats extends PgdvCommand<typeof Stats> {
  static summary = 'Storage of file datasets: logical bytes, stored bytes, dedup ratio, chunks, packs (SQL: dv.storage_stats()).'
  static description = 'Logical bytes are what checking out every version would write; stored bytes are the distinct chunks. Without DATASET the last row is the whole store.'
  static examples = ['<%= config.bin %> stats', '<%= config.bin %> stats images --json']
  static args = { dataset: Args.string({ description: 'only this files dataset' }) }

  async run(): Promise<StatsResult> {
    const { args } = await this.parse(Stats)
    const rows = await storageStats(await this.pgdv(), args.dataset)
    const total = args.dataset ? rows[0] : rows[rows.length - 1]
    const mb = (n: number) => (n / 1e6).toFixed(1)
    this.log(
      formatTable(
        rows.map((r) => ({ ...r, dataset: r.dataset ?? '(all)', logical_mb: mb(r.logical_bytes), stored_mb: mb(r.stored_bytes), dedup: r.dedup_ratio === null ? '' : `${r.dedup_ratio}x` })),
        ['dataset', 'versions', 'files', 'logical_mb', 'stored_mb', 'dedup', 'chunks', 'packs'],
      ),
    )
    return { datasets: rows, logical_bytes: total.logical_bytes, stored_bytes: total.stored_bytes, dedup_ratio: total.dedup_ratio }
  }
}
