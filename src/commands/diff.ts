import { Args, Flags } from '@oclif/core'
import { type DiffReport, diffReport, diffRows, type RowChange, streamDiff } from '../api/history.js'
import { formatTable, PgdvCommand } from '../lib/base.js'

export interface DiffResult extends DiffReport {
  changes?: RowChange[]
}

/** --format, with --json meaning the JSON result. Pure, for tests. */
export function diffOutput(flags: { format?: string; json: boolean; summary: boolean }): 'summary' | 'table' | 'csv' | 'jsonl' | 'json' {
  if (flags.json) return 'json'
  if (flags.summary) return 'summary'
  if (flags.format === 'csv') return 'csv'
  if (flags.format === 'json') return 'jsonl'
  return 'table'
}

export default class Diff extends PgdvCommand<typeof Diff> {
  static summary = 'Show what changed between two refs: rows added, removed, modified (dv.diff), and schema changes.'
  static description = `Computed from the deltas between the two versions, so its cost follows the size of the change.
--format csv and --format json (one JSON object per line) stream the whole diff with COPY;
--json prints {"added","removed","modified","schema"[, "changes"]} (changes up to --limit unless --summary).`
  static examples = [
    '<%= config.bin %> diff flights main~1 main',
    '<%= config.bin %> diff flights v1 v2 --summary --json',
    '<%= config.bin %> diff flights v1 cleanup --values --format json > changes.jsonl',
    '<%= config.bin %> diff flights v1 v2 --format csv > changes.csv',
  ]

  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    from: Args.string({ description: 'old ref: branch, tag, version id or REF~N', required: true }),
    to: Args.string({ description: 'new ref', default: 'main' }),
  }

  static flags = {
    summary: Flags.boolean({ char: 's', description: 'only the counts and schema changes' }),
    values: Flags.boolean({ description: 'include old and new row values' }),
    format: Flags.string({ description: 'output of the changed rows', options: ['table', 'json', 'csv'], default: 'table' }),
    limit: Flags.integer({ description: 'at most this many changed rows (table and --json; csv/json stream everything)', min: 1, default: 1000 }),
  }

  async run(): Promise<DiffResult> {
    const { args } = await this.parse(Diff)
    const pgdv = await this.pgdv()
    const out = diffOutput({ format: this.flags.format, json: this.jsonEnabled(), summary: this.flags.summary })
    if (out === 'csv' || out === 'jsonl') {
      await streamDiff(pgdv, args.dataset, args.from, args.to, { values: this.flags.values, format: out }, (chunk) => process.stdout.write(chunk), (cb) =>
        process.stdout.once('drain', cb),
      )
      return diffReport(pgdv, args.dataset, args.from, args.to)
    }
    const summary = await diffReport(pgdv, args.dataset, args.from, args.to)
    const schemaLines = summary.schema.map((s) => `  column ${s.column_name}: ${s.change}${s.change === 'added' ? ` (${s.new_type})` : s.change === 'removed' ? ` (was ${s.old_type})` : ` ${s.old_type} → ${s.new_type}`}`)
    const head = `${args.from} (version ${summary.from_version}) → ${args.to} (version ${summary.to_version}): +${summary.added} added, -${summary.removed} removed, ~${summary.modified} modified`
    if (out === 'summary' || (out === 'json' && this.flags.summary)) {
      this.log([head, ...schemaLines].join('\n'))
      return summary
    }
    const changes = await diffRows(pgdv, args.dataset, args.from, args.to, { values: this.flags.values, limit: this.flags.limit })
    if (out === 'table') {
      this.log([head, ...schemaLines].join('\n'))
      if (changes.length > 0) {
        const cols = this.flags.values ? ['change', 'key', 'old_values', 'new_values'] : ['change', 'key', 'old_hash', 'new_hash']
        // Hashes shortened like git's abbreviated ids; --json and --format keep them whole.
        const short = (h: string | null) => (h ? h.slice(0, 12) : h)
        const shown = this.flags.values ? changes : changes.map((c) => ({ ...c, old_hash: short(c.old_hash), new_hash: short(c.new_hash) }))
        this.log(formatTable(shown as unknown as Record<string, unknown>[], cols))
      }
      const total = summary.added + summary.removed + summary.modified
      if (total > changes.length) this.log(`(${total - changes.length} more; raise --limit or use --format csv|json to stream them all)`)
    }
    return { ...summary, changes }
  }
}
