import { Args } from '@oclif/core'
import { deleteTag, type RefInfo } from '../../api/refs.js'
import { PgdvCommand } from '../../lib/base.js'

export default class TagDelete extends PgdvCommand<typeof TagDelete> {
  static summary = 'Delete a tag (the version stays).'
  static examples = ['<%= config.bin %> tag delete flights v1']
  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    name: Args.string({ description: 'tag name', required: true }),
  }

  async run(): Promise<RefInfo> {
    const { args } = await this.parse(TagDelete)
    const r = await deleteTag(await this.pgdv(), args.dataset, args.name)
    this.log(`deleted tag ${r.ref} of "${r.dataset}" (was at version ${r.version_id})`)
    return r
  }
}
