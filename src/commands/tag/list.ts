import { Args } from '@oclif/core'
import { listRefs, type RefInfo } from '../../api/refs.js'
import { formatTable, PgdvCommand } from '../../lib/base.js'

export default class TagList extends PgdvCommand<typeof TagList> {
  static summary = 'List the tags of a dataset with the version each names.'
  static examples = ['<%= config.bin %> tag list flights', '<%= config.bin %> tag list flights --json']
  static args = { dataset: Args.string({ description: 'dataset name', required: true }) }

  async run(): Promise<RefInfo[]> {
    const { args } = await this.parse(TagList)
    const rows = await listRefs(await this.pgdv(), args.dataset, 'tag')
    this.log(formatTable(rows as unknown as Record<string, unknown>[], ['ref', 'version_id', 'row_count', 'committed_at', 'updated_at', 'message']))
    return rows
  }
}
