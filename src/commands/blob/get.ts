import { Args, Flags } from '@oclif/core'
import { getBlob } from '../../api/files.js'
import { PgdvCommand } from '../../lib/base.js'

export default class BlobGet extends PgdvCommand<typeof BlobGet> {
  static summary = 'Write a stored blob (or any stored file content) to a file, verified against its content hash.'
  static examples = ['<%= config.bin %> blob get 9f86d0...0a08 --out model.safetensors']
  static args = { hash: Args.string({ description: 'content hash printed by `pgdv blob put`', required: true }) }
  static flags = {
    out: Flags.string({ char: 'o', description: 'file to write', required: true }),
    force: Flags.boolean({ description: 'overwrite --out if it exists' }),
  }

  async run(): Promise<{ hash: string; size: number; out: string }> {
    const { args } = await this.parse(BlobGet)
    const r = await getBlob(await this.pgdv(), { hash: args.hash, out: this.flags.out, force: this.flags.force })
    this.log(`wrote ${r.out} (${r.size} bytes, content hash ${r.hash})`)
    return r
  }
}
