import { Args } from '@oclif/core'
import { type CompareRow, compareRuns } from '../../api/runs.js'
import { formatTable, PgdvCommand } from '../../lib/base.js'

export default class RunCompare extends PgdvCommand<typeof RunCompare> {
  static summary = 'Compare two runs side by side: params, latest metrics and input versions.'
  static examples = ['<%= config.bin %> run compare 17 18', '<%= config.bin %> run compare 17 18 --json']

  static args = {
    a: Args.string({ description: 'first run id', required: true }),
    b: Args.string({ description: 'second run id', required: true }),
  }

  async run(): Promise<CompareRow[]> {
    const { args } = await this.parse(RunCompare)
    const rows = await compareRuns(await this.pgdv(), args.a, args.b)
    const table = rows.map((r) => ({ section: r.section, key: r.key, [`run ${args.a}`]: r.a, [`run ${args.b}`]: r.b, diff: r.same ? '' : '*' }))
    this.log(formatTable(table, ['section', 'key', `run ${args.a}`, `run ${args.b}`, 'diff']))
    return rows
  }
}
