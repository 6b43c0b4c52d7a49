import { Args } from '@oclif/core'
import { type BlobResult, putBlob } from '../../api/files.js'
import { PgdvCommand } from '../../lib/base.js'

export default class BlobPut extends PgdvCommand<typeof BlobPut> {
  static summary = 'Store a file content-addressed (chunked, deduplicated) and print its SHA-256.'
  static examples = ['<%= config.bin %> blob put model.safetensors', '<%= config.bin %> blob put checkpoint.pt --json']
  static args = { file: Args.string({ description: 'file to store', required: true }) }

  async run(): Promise<BlobResult> {
    const { args } = await this.parse(BlobPut)
    const r = await putBlob(await this.pgdv(), { file: args.file })
    this.log(r.sha256)
    return r
  }
}
