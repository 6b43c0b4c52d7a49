import { Flags } from '@oclif/core'
import { listRuns, type RunInfo, type RunStatus } from '../../api/runs.js'
import { formatTable, PgdvCommand } from '../../lib/base.js'

export default class RunList extends PgdvCommand<typeof RunList> {
  static summary = 'List runs, newest first, with status, params and latest metrics.'
  static examples = ['<%= config.bin %> run list -e resnet', '<%= config.bin %> run list --status running --json']

  static flags = {
    experiment: Flags.string({ char: 'e', description: 'only runs of this experiment' }),
    status: Flags.string({ char: 's', description: 'only runs with this status', options: ['running', 'succeeded', 'failed', 'killed'] }),
    limit: Flags.integer({ description: 'at most this many runs', min: 1 }),
  }

  async run(): Promise<RunInfo[]> {
    const { flags } = await this.parse(RunList)
    const rows = await listRuns(await this.pgdv(), { experiment: flags.experiment, status: flags.status as RunStatus | undefined, limit: flags.limit })
    if (rows.length === 0) this.log('no runs: start one with `pgdv run start -e EXPERIMENT`')
    else this.log(formatTable(rows as unknown as Record<string, unknown>[], ['id', 'experiment', 'name', 'status', 'inputs', 'params', 'metrics', 'started_at']))
    return rows
  }
}
