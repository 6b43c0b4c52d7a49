import { Args, Flags } from '@oclif/core'
import { reproduceRun, type ReproduceResult } from '../../api/runs.js'
import { formatTable, PgdvCommand } from '../../lib/base.js'

export default class RunReproduce extends PgdvCommand<typeof RunReproduce> {
  static summary = 'Check out exactly the dataset versions a run read, with a manifest of versions and content hashes.'
  static description = 'Table inputs become one file each (--format), files inputs one folder each; manifest.json lists dataset, ref, version id, content hash and the SHA-256 of each written file.'
  static examples = ['<%= config.bin %> run reproduce 17 --out ./repro-17', '<%= config.bin %> run reproduce 17 --out ./repro-17 --format parquet --force']

  static args = { run: Args.string({ description: 'run id', required: true }) }
  static flags = {
    out: Flags.string({ char: 'o', description: 'folder to write into (must be empty unless --force)', required: true }),
    format: Flags.string({ description: 'format of table checkouts', options: ['csv', 'jsonl', 'parquet'], default: 'csv' }),
    force: Flags.boolean({ description: 'write into a non-empty folder, overwriting files' }),
  }

  async run(): Promise<ReproduceResult> {
    const { args, flags } = await this.parse(RunReproduce)
    const r = await reproduceRun(await this.pgdv(), args.run, { out: flags.out, format: flags.format, force: flags.force })
    this.log(`reproduced the ${r.inputs.length} input(s) of run ${r.run} into ${r.out}\n${formatTable(r.inputs as unknown as Record<string, unknown>[], ['dataset', 'version_id', 'content_hash', 'path', 'verified'])}\nmanifest: ${r.manifest}`)
    return r
  }
}
