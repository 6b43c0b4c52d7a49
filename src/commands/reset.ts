import { Args } from '@oclif/core'
import { type RefInfo, resetBranch } from '../api/refs.js'
import { PgdvCommand } from '../lib/base.js'

export default class Reset extends PgdvCommand<typeof Reset> {
  static summary = 'Move a branch to another version (dv.reset); recorded in the reflog, nothing is deleted.'
  static description = 'The versions the branch leaves behind stay reachable by id and through `pgdv log` of other refs; reset again to return.'
  static examples = ['<%= config.bin %> reset flights main main~1', '<%= config.bin %> reset flights cleanup v1 --json']

  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    branch: Args.string({ description: 'the branch to move', required: true }),
    ref: Args.string({ description: 'where to: branch, tag, version id or REF~N', required: true }),
  }

  async run(): Promise<RefInfo> {
    const { args } = await this.parse(Reset)
    const r = await resetBranch(await this.pgdv(), args.dataset, args.branch, args.ref)
    this.log(`branch ${r.ref} of "${r.dataset}" now at version ${r.version_id}`)
    return r
  }
}
