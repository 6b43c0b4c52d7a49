import fs from 'node:fs/promises'
import { Args, Flags } from '@oclif/core'
import { commitFile, commitQuery, type LoadResult } from '../api/load.js'
import type { CommitMode } from '../api/rows.js'
import { PgdvCommand } from '../lib/base.js'
import { parseCharFlag, parseLoadSource } from '../lib/parse.js'
import { createProgress, progressEnabled } from '../lib/progress.js'
import type { InputFormat } from '../io/readers.js'

export default class Commit extends PgdvCommand<typeof Commit> {
  static summary = 'Commit a CSV, JSONL or Parquet file (or a query) as a new version of a dataset.'
  static description = `The file is streamed into a staging table with COPY (dv.stage), then dv.commit turns it into a
version in one transaction: nothing is visible until it is committed, and a bad line aborts with
its line number unless --reject-file sets bad rows aside. A dataset without a schema takes its
column types from a sample of the input (or --columns); new columns in the input are added.

Modes: replace (the file is the whole new contents), append, upsert (by key), delete (the file
lists keys to remove), apply (upsert; rows whose _dv_delete column is true delete their key).
A commit that changes nothing creates no version unless --force.`
  static examples = [
    '<%= config.bin %> commit flights flights.csv -m "January"',
    '<%= config.bin %> commit flights fixes.jsonl --mode upsert --branch cleanup',
    '<%= config.bin %> commit flights flights.parquet --tag v1',
    "<%= config.bin %> commit flights data.tsv --delimiter '\\t' --reject-file rejects.jsonl",
    "<%= config.bin %> commit flights raw.csv --columns 'flight_id bigint, delay numeric(6,1)'",
    '<%= config.bin %> commit flights --from-query "SELECT * FROM staging.flights WHERE day = current_date"',
    '<%= config.bin %> commit flights --from-table public.flights_import --mode append --json',
    '<%= config.bin %> commit flights changes.csv --mode apply   # a _dv_delete column marks deletions',
  ]

  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    file: Args.string({ description: 'input file (.csv, .jsonl, .parquet)', required: false }),
  }

  static flags = {
    format: Flags.string({ description: 'input format (default: from the file extension)', options: ['csv', 'jsonl', 'parquet'] }),
    mode: Flags.string({
      description: 'how the input changes the branch (apply: upsert, and rows whose _dv_delete column is true delete their key)',
      options: ['replace', 'append', 'upsert', 'delete', 'apply'],
      default: 'replace',
    }),
    branch: Flags.string({ char: 'b', description: 'branch to commit on', default: 'main' }),
    tag: Flags.string({ char: 't', description: 'also tag the new version' }),
    message: Flags.string({ char: 'm', description: 'commit message' }),
    force: Flags.boolean({ char: 'f', description: 'create a version even if nothing changed' }),
    'reject-file': Flags.string({ description: 'write malformed records here (JSON lines: line, reason, raw) instead of aborting' }),
    'from-query': Flags.string({ description: 'commit the rows of this SELECT (run in the same database)', exclusive: ['from-table', 'format', 'reject-file'] }),
    'from-table': Flags.string({ description: 'commit the rows of this table or view (same database)', exclusive: ['from-query', 'format', 'reject-file'] }),
    columns: Flags.string({ description: "column definitions for a dataset without a schema, or for new columns: 'id bigint, label text'" }),
    delimiter: Flags.string({ description: 'CSV field delimiter (default ","; "\\t" for TAB)' }),
    quote: Flags.string({ description: 'CSV quote character (default ")' }),
    escape: Flags.string({ description: 'CSV escape character inside quotes (default: the quote)' }),
    null: Flags.string({ description: 'CSV text read as NULL when unquoted (default: empty)' }),
    header: Flags.boolean({ description: 'the CSV starts with a header line (--no-header: columns c1, c2, ... or from --columns)', allowNo: true, default: true }),
  }

  async run(): Promise<LoadResult> {
    const { args } = await this.parse(Commit)
    const f = this.flags
    const source = parseLoadSource(args.file, f['from-query'], f['from-table'])
    const common = {
      dataset: args.dataset,
      mode: f.mode as CommitMode,
      branch: f.branch,
      tag: f.tag,
      message: f.message,
      force: f.force,
      columns: f.columns,
    }
    const pgdv = await this.pgdv()
    let result: LoadResult
    if (source.kind === 'file') {
      const size = await fs.stat(source.file).then((s) => s.size, () => 0)
      const progress = createProgress({ totalBytes: size, label: 'commit', enabled: progressEnabled({ isTTY: process.stderr.isTTY, json: this.jsonEnabled() }) })
      try {
        result = await commitFile(pgdv, {
          ...common,
          file: source.file,
          format: f.format as InputFormat | undefined,
          rejectFile: f['reject-file'],
          csv: {
            delimiter: parseCharFlag('delimiter', f.delimiter),
            quote: parseCharFlag('quote', f.quote),
            escape: parseCharFlag('escape', f.escape),
            null: f.null,
            header: f.header,
          },
          onProgress: (p) => progress.update(p),
          onCommitting: (rows) => progress.note(`committing ${rows.toLocaleString('en-US')} rows (hashing and storing the changes)...`),
        })
      } finally {
        progress.stop()
      }
    } else {
      result = await commitQuery(pgdv, { ...common, query: source.kind === 'query' ? source.query : undefined, table: source.kind === 'table' ? source.table : undefined })
    }
    this.log(describeCommit(result))
    return result
  }
}

/** The one line a commit prints. */
export function describeCommit(r: LoadResult): string {
  const lines: string[] = []
  if (r.created) {
    lines.push(
      `committed version ${r.version_id} of "${r.dataset}" on ${r.branch}: +${r.added} added, -${r.removed} removed, ~${r.modified} modified (${r.row_count} rows)`,
    )
  } else {
    lines.push(`nothing changed: ${r.branch} of "${r.dataset}" stays at version ${r.version_id} (pass --force to commit anyway)`)
  }
  if (r.new_columns.length > 0) lines.push(`new columns: ${r.new_columns.map((c) => `${c.name} ${c.type}`).join(', ')}`)
  if (r.rejected > 0) lines.push(`set aside ${r.rejected} bad record${r.rejected === 1 ? '' : 's'} in ${r.reject_file}`)
  return lines.join('\n')
}
