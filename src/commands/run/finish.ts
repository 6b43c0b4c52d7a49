import { Args, Flags } from '@oclif/core'
import { finishRun, type RunInfo } from '../../api/runs.js'
import { PgdvCommand } from '../../lib/base.js'

export default class RunFinish extends PgdvCommand<typeof RunFinish> {
  static summary = 'Finish a running run, exactly once, as succeeded, failed or killed, with its output datasets.'
  static examples = ['<%= config.bin %> run finish 17', '<%= config.bin %> run finish 17 --status failed --note "OOM at epoch 3"', '<%= config.bin %> run finish 17 -o predictions@main']

  static args = { run: Args.string({ description: 'run id', required: true }) }
  static flags = {
    status: Flags.string({ char: 's', description: 'final status', options: ['succeeded', 'failed', 'killed'], default: 'succeeded' }),
    output: Flags.string({ char: 'o', description: 'output dataset DATASET@REF (repeatable), pinned like inputs', multiple: true }),
    note: Flags.string({ description: 'a note, e.g. why it failed' }),
  }

  async run(): Promise<RunInfo> {
    const { args, flags } = await this.parse(RunFinish)
    const r = await finishRun(await this.pgdv(), args.run, { status: flags.status as 'succeeded' | 'failed' | 'killed', outputs: flags.output, note: flags.note })
    this.log(`run ${r.id} ${r.status}`)
    return r
  }
}
