import { Args } from '@oclif/core'
import { type BlobResult, putBlob } from '../../api/files.js'
import { PgdvCommand } from '../../lib/base.js'

export default class BlobPut extends PgdvCommand<typeof BlobPut> {
  static summary = 'Store a file content-addressed (chunked, deduplicated) and print its content hash.'
  static description = 'The content hash (SHA-256 over the chunk digests, see docs/files.md) is what `blob get` takes; --json also gives the plain SHA-256 of the bytes (what sha256sum prints) for model registries.'
  static examples = ['<%= config.bin %> blob put model.safetensors', '<%= config.bin %> blob put checkpoint.pt --json']
  static args = { file: Args.string({ description: 'file to store', required: true }) }

  async run(): Promise<BlobResult> {
    const { args } = await this.parse(BlobPut)
    const r = await putBlob(await this.pgdv(), { file: args.file })
    this.log(r.hash)
    return r
  }
}
