import { Args, Flags } from '@oclif/core'
import { log, type LogEntry, refAt } from '../api/refs.js'
import { formatTable, PgdvCommand } from '../lib/base.js'
import { parseAt } from '../lib/parse.js'

export default class Log extends PgdvCommand<typeof Log> {
  static summary = 'List the versions reachable from a ref, newest first (dv.log).'
  static examples = ['<%= config.bin %> log flights', '<%= config.bin %> log flights cleanup -n 5', '<%= config.bin %> log flights v1 --json']

  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    ref: Args.string({ description: 'branch, tag, version id or REF~N', default: 'main' }),
  }

  static flags = {
    limit: Flags.integer({ char: 'n', description: 'at most this many versions', min: 1 }),
    at: Flags.string({ description: 'time travel: start from the version REF pointed to at this time' }),
  }

  async run(): Promise<LogEntry[]> {
    const { args } = await this.parse(Log)
    const pgdv = await this.pgdv()
    const at = parseAt(this.flags.at)
    const ref = at ? await refAt(pgdv, args.dataset, args.ref, at) : args.ref
    const rows = await log(pgdv, args.dataset, ref, this.flags.limit)
    this.log(
      formatTable(
        rows.map((r) => ({ ...r, parents: r.parent_ids.join(','), refs: r.refs.join(',') })) as unknown as Record<string, unknown>[],
        ['version_id', 'parents', 'committed_at', 'created_by', 'row_count', 'refs', 'message'],
      ),
    )
    return rows
  }
}
