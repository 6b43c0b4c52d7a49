import { Args } from '@oclif/core'
import { verifyVersion, type VerifyResult } from '../api/verify.js'
import { PgdvError } from '../lib/errors.js'
import { PgdvCommand } from '../lib/base.js'

export default class Verify extends PgdvCommand<typeof Verify> {
  static summary = 'Recompute a version\'s row hashes and content hash (and, for files, re-read every stored file) and compare them with what was committed.'
  static description = `Rows: every row's hash and key hash are recomputed from its stored values, and the version's
content hash from those (SQL: SELECT * FROM dv.verify(dataset, ref)). Files datasets: every file is
also read back from the object store, each chunk checked against its SHA-256 and each file against
its content hash; nothing is written. Exits non-zero, naming the first mismatch, when anything differs.`
  static examples = ['<%= config.bin %> verify flights', '<%= config.bin %> verify images v1 --json']

  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    ref: Args.string({ description: 'branch, tag, version id or REF~N', default: 'main' }),
  }

  async run(): Promise<VerifyResult> {
    const { args } = await this.parse(Verify)
    const r = await verifyVersion(await this.pgdv(), { dataset: args.dataset, ref: args.ref, progress: !this.jsonEnabled() })
    const what = `version ${r.version_id} of dataset "${r.dataset}"`
    if (r.bad_rows !== null && r.bad_rows > 0) {
      throw new PgdvError(`${what}: ${r.bad_rows} row(s) do not match their stored hashes, e.g. ${JSON.stringify(r.first_bad)}`, {
        kind: 'integrity',
        hint: 'Its tables were changed outside pgdv; restore them from a backup or commit the data again',
      })
    }
    if (!r.ok) {
      throw new PgdvError(`${what}: its rows give content hash ${r.computed_hash}, but ${r.content_hash} was committed`, {
        kind: 'integrity',
        hint: 'Rows were changed, added or removed outside pgdv; restore its tables from a backup or commit the data again',
      })
    }
    const files = r.files_checked === null ? '' : `, ${r.files_checked} files (${(r.bytes_checked! / 1e6).toFixed(1)} MB) read back`
    this.log(`${what}: ${r.rows} rows${files} verified; content hash ${r.content_hash}`)
    return r
  }
}
