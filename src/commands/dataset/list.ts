import { type DatasetInfo, listDatasets } from '../../api/datasets.js'
import { formatTable, PgdvCommand } from '../../lib/base.js'

export default class DatasetList extends PgdvCommand<typeof DatasetList> {
  static summary = 'List datasets with their kind, key, versions, branches and the head of main.'
  static examples = ['<%= config.bin %> dataset list', '<%= config.bin %> dataset list --json']

  async run(): Promise<DatasetInfo[]> {
    const rows = await listDatasets(await this.pgdv())
    if (rows.length === 0) this.log('no datasets yet: create one with `pgdv dataset create NAME`')
    else this.log(formatTable(rows as unknown as Record<string, unknown>[], ['name', 'kind', 'key_columns', 'versions', 'branches', 'tags', 'main_rows', 'created_at']))
    return rows
  }
}
