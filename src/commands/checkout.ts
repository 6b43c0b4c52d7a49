import { Args, Flags } from '@oclif/core'
import { checkoutTable, type CheckoutResult } from '../api/load.js'
import type { OutputFormat } from '../io/writers.js'
import { PgdvCommand } from '../lib/base.js'
import { parseAt } from '../lib/parse.js'
import { refAt } from '../api/refs.js'
import { createProgress, progressEnabled } from '../lib/progress.js'

export default class Checkout extends PgdvCommand<typeof Checkout> {
  static summary = 'Write one version of a dataset to a file (.csv, .jsonl, .parquet), or a files dataset to a folder.'
  static description = `Streamed with COPY (dv.rows_sql(...)) TO STDOUT: CSV and JSONL go straight to the file, Parquet
in row groups of bounded size. The file is written under a temporary name and renamed at the end,
so an interrupted checkout leaves nothing half-written. An existing file is kept unless --force.`
  static examples = [
    '<%= config.bin %> checkout flights main --out flights.csv',
    '<%= config.bin %> checkout flights v1 --out flights-v1.parquet',
    '<%= config.bin %> checkout flights main~2 --out old.jsonl --force',
    '<%= config.bin %> checkout images main --out ./images',
  ]

  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    ref: Args.string({ description: 'branch, tag, version id or REF~N', default: 'main' }),
  }

  static flags = {
    out: Flags.string({ char: 'o', description: 'output file (or folder for a files dataset)', required: true }),
    format: Flags.string({ description: 'output format (default: from the extension)', options: ['csv', 'jsonl', 'parquet'] }),
    force: Flags.boolean({ char: 'f', description: 'overwrite an existing file' }),
    at: Flags.string({ description: 'time travel: the version REF pointed to at this time (from the reflog)' }),
  }

  async run(): Promise<CheckoutResult> {
    const { args } = await this.parse(Checkout)
    const bar = progressEnabled({ isTTY: process.stderr.isTTY, json: this.jsonEnabled() })
    let progress = createProgress({ enabled: false })
    let r: CheckoutResult
    try {
      const pgdv = await this.pgdv()
      const at = parseAt(this.flags.at)
      r = await checkoutTable(pgdv, {
        dataset: args.dataset,
        ref: at ? await refAt(pgdv, args.dataset, args.ref, at) : args.ref,
        out: this.flags.out,
        format: this.flags.format as OutputFormat | undefined,
        force: this.flags.force,
        onStart: (rows) => {
          progress = createProgress({ label: 'checkout', totalRows: rows, enabled: bar })
        },
        onProgress: (p) => progress.update(p),
        progress: bar,
      })
    } finally {
      progress.stop()
    }
    this.log(
      r.format === 'files'
        ? `checked out ${r.rows} files of "${r.dataset}" ${r.ref} (version ${r.version_id}) into ${r.out}`
        : `wrote ${r.rows} rows of "${r.dataset}" ${r.ref} (version ${r.version_id}) to ${r.out} (${r.format}, ${r.bytes} bytes)`,
    )
    return r
  }
}
