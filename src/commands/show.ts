import { Args, Flags } from '@oclif/core'
import { showVersion, type VersionDetail } from '../api/history.js'
import { PgdvCommand } from '../lib/base.js'
import { parseAt } from '../lib/parse.js'
import { refAt } from '../api/refs.js'

export default class Show extends PgdvCommand<typeof Show> {
  static summary = 'Show one version: parents, message, author, rows, content hash, refs, columns and what it changed.'
  static examples = ['<%= config.bin %> show flights main', '<%= config.bin %> show flights v1 --json', '<%= config.bin %> show flights main~3', '<%= config.bin %> show flights main --at "2024-05-01 12:00"']

  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    ref: Args.string({ description: 'branch, tag, version id or REF~N', default: 'main' }),
  }

  static flags = {
    at: Flags.string({ description: 'time travel: the version REF pointed to at this time (from the reflog)' }),
  }

  async run(): Promise<VersionDetail> {
    const { args } = await this.parse(Show)
    const pgdv = await this.pgdv()
    const at = parseAt(this.flags.at)
    const ref = at ? await refAt(pgdv, args.dataset, args.ref, at) : args.ref
    const v = await showVersion(pgdv, args.dataset, ref)
    const lines: [string, string][] = [
      ['version', `${v.version_id}${v.refs.length ? ` (${v.refs.join(', ')})` : ''}`],
      ['parents', v.parent_ids.join(', ') || '(root)'],
      ['message', v.message ?? ''],
      ['committed', `${v.committed_at instanceof Date ? v.committed_at.toISOString() : String(v.committed_at)} by ${v.created_by}`],
      ['rows', v.row_count],
      ['content', v.content_hash ?? ''],
      ['changes', v.changes ? `+${v.changes.added} added, -${v.changes.removed} removed, ~${v.changes.modified} modified` : '(root)'],
      ['columns', v.columns.map((c) => `${c.column_name} ${c.data_type}${c.is_key ? ' (key)' : ''}`).join(', ') || '(none yet)'],
    ]
    for (const [k, val] of lines) this.log(`${k.padEnd(10)} ${val}`)
    return v
  }
}
