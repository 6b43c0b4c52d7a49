import { type ExperimentInfo, listExperiments } from '../../api/runs.js'
import { formatTable, PgdvCommand } from '../../lib/base.js'

export default class ExperimentList extends PgdvCommand<typeof ExperimentList> {
  static summary = 'List experiments with their number of runs and latest run.'
  static examples = ['<%= config.bin %> experiment list', '<%= config.bin %> experiment list --json']

  async run(): Promise<ExperimentInfo[]> {
    const rows = await listExperiments(await this.pgdv())
    if (rows.length === 0) this.log('no experiments yet: create one with `pgdv experiment create NAME`')
    else this.log(formatTable(rows as unknown as Record<string, unknown>[], ['name', 'runs', 'running', 'last_run_at', 'tags', 'description']))
    return rows
  }
}
