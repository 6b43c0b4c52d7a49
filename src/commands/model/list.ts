import { listModels, type ModelInfo } from '../../api/models.js'
import { formatTable, PgdvCommand } from '../../lib/base.js'

export default class ModelList extends PgdvCommand<typeof ModelList> {
  static summary = 'List models with their number of versions and where each alias points.'
  static examples = ['<%= config.bin %> model list', '<%= config.bin %> model list --json']

  async run(): Promise<ModelInfo[]> {
    const rows = await listModels(await this.pgdv())
    if (rows.length === 0) this.log('no models yet: register one with `pgdv model register NAME --run RUN`')
    else this.log(formatTable(rows as unknown as Record<string, unknown>[], ['name', 'versions', 'latest_version', 'aliases', 'created_at']))
    return rows
  }
}
