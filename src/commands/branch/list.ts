import { Args } from '@oclif/core'
import { listRefs, type RefInfo } from '../../api/refs.js'
import { formatTable, PgdvCommand } from '../../lib/base.js'

export default class BranchList extends PgdvCommand<typeof BranchList> {
  static summary = 'List the branches of a dataset with the version each points to.'
  static examples = ['<%= config.bin %> branch list flights', '<%= config.bin %> branch list flights --json']
  static args = { dataset: Args.string({ description: 'dataset name', required: true }) }

  async run(): Promise<RefInfo[]> {
    const { args } = await this.parse(BranchList)
    const rows = await listRefs(await this.pgdv(), args.dataset, 'branch')
    this.log(formatTable(rows as unknown as Record<string, unknown>[], ['ref', 'version_id', 'row_count', 'committed_at', 'updated_at', 'message']))
    return rows
  }
}
