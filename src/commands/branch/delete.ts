import { Args } from '@oclif/core'
import { deleteBranch, type RefInfo } from '../../api/refs.js'
import { PgdvCommand } from '../../lib/base.js'

export default class BranchDelete extends PgdvCommand<typeof BranchDelete> {
  static summary = 'Delete a branch (its versions stay; main cannot be deleted).'
  static examples = ['<%= config.bin %> branch delete flights cleanup']
  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    name: Args.string({ description: 'branch name', required: true }),
  }

  async run(): Promise<RefInfo> {
    const { args } = await this.parse(BranchDelete)
    const r = await deleteBranch(await this.pgdv(), args.dataset, args.name)
    this.log(`deleted branch ${r.ref} of "${r.dataset}" (was at version ${r.version_id})`)
    return r
  }
}
