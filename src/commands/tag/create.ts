import { Args } from '@oclif/core'
import { createTag, type RefInfo } from '../../api/refs.js'
import { PgdvCommand } from '../../lib/base.js'

export default class TagCreate extends PgdvCommand<typeof TagCreate> {
  static summary = 'Tag a version (immutable): the tag also gets a view a DBA can SELECT from.'
  static examples = ['<%= config.bin %> tag create flights v1', '<%= config.bin %> tag create flights before-cleanup main~1 --json']
  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    name: Args.string({ description: 'tag name', required: true }),
    ref: Args.string({ description: 'branch, tag, version id or REF~N to tag', default: 'main' }),
  }

  async run(): Promise<RefInfo> {
    const { args } = await this.parse(TagCreate)
    const r = await createTag(await this.pgdv(), args.dataset, args.name, args.ref)
    this.log(`created tag ${r.ref} of "${r.dataset}" at version ${r.version_id}`)
    return r
  }
}
