import { Args, Flags } from '@oclif/core'
import { createBranch, type RefInfo } from '../../api/refs.js'
import { PgdvCommand } from '../../lib/base.js'

export default class BranchCreate extends PgdvCommand<typeof BranchCreate> {
  static summary = 'Create a branch at a ref (default: main). Moving a pointer: constant time whatever the size.'
  static examples = ['<%= config.bin %> branch create flights cleanup', '<%= config.bin %> branch create flights hotfix --from v1 --json']
  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    name: Args.string({ description: 'new branch name', required: true }),
  }

  static flags = { from: Flags.string({ description: 'branch, tag, version id or REF~N to start from', default: 'main' }) }

  async run(): Promise<RefInfo> {
    const { args } = await this.parse(BranchCreate)
    const r = await createBranch(await this.pgdv(), args.dataset, args.name, this.flags.from)
    this.log(`created branch ${r.ref} of "${r.dataset}" at version ${r.version_id}`)
    return r
  }
}
