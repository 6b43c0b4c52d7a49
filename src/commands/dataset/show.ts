import { Args } from '@oclif/core'
import { type DatasetInfo, showDataset } from '../../api/datasets.js'
import { PgdvCommand } from '../../lib/base.js'

export default class DatasetShow extends PgdvCommand<typeof DatasetShow> {
  static summary = 'Show one dataset.'
  static examples = ['<%= config.bin %> dataset show flights', '<%= config.bin %> dataset show flights --json']
  static args = { name: Args.string({ description: 'dataset name', required: true }) }

  async run(): Promise<DatasetInfo> {
    const { args } = await this.parse(DatasetShow)
    const ds = await showDataset(await this.pgdv(), args.name)
    const lines: [string, unknown][] = [
      ['name', ds.name],
      ['kind', ds.kind],
      ['key', ds.key_columns?.join(', ') ?? '(keyless: row hash)'],
      ['description', ds.description ?? ''],
      ['versions', ds.versions],
      ['branches', ds.branches],
      ['tags', ds.tags],
      ['main', `version ${ds.main_version}, ${ds.main_rows ?? 0} rows`],
      ['created', `${ds.created_at.toISOString()} by ${ds.created_by}`],
    ]
    for (const [k, v] of lines) this.log(`${k.padEnd(12)} ${String(v)}`)
    return ds
  }
}
