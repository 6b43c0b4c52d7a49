import { Args, Flags } from '@oclif/core'
import { logRun, type MetricPoint, type RunInfo } from '../../api/runs.js'
import { PgdvCommand } from '../../lib/base.js'
import { PgdvError } from '../../lib/errors.js'
import { parseMetrics, parseParams } from '../../lineage/parse.js'

export interface RunLogResult {
  run: RunInfo
  metrics: MetricPoint[]
}

export default class RunLog extends PgdvCommand<typeof RunLog> {
  static summary = 'Log metrics (at a step), params or more inputs of a running run, all or nothing.'
  static examples = [
    '<%= config.bin %> run log 17 --metric loss=0.31 --metric acc=0.92 --step 5',
    '<%= config.bin %> run log 17 --param batch_size=64',
    '<%= config.bin %> run log 17 -i extra_labels@v2',
  ]

  static args = { run: Args.string({ description: 'run id', required: true }) }
  static flags = {
    metric: Flags.string({ char: 'm', description: 'metric KEY=NUMBER (repeatable)', multiple: true }),
    step: Flags.integer({ description: "step of the metrics (default: each metric's next step)", min: 0 }),
    param: Flags.string({ char: 'p', description: 'parameter KEY=VALUE (repeatable)', multiple: true }),
    input: Flags.string({ char: 'i', description: 'another input DATASET@REF to pin (repeatable)', multiple: true }),
  }

  async run(): Promise<RunLogResult> {
    const { args, flags } = await this.parse(RunLog)
    const metrics = parseMetrics(flags.metric)
    const params = parseParams(flags.param)
    if (Object.keys(metrics).length === 0 && Object.keys(params).length === 0 && !flags.input?.length) {
      throw new PgdvError('nothing to log', { hint: 'Give --metric KEY=NUMBER, --param KEY=VALUE or --input DATASET@REF' })
    }
    const out = await logRun(await this.pgdv(), args.run, { metrics, step: flags.step, params, inputs: flags.input })
    const parts = [
      out.metrics.map((m) => `${m.key}=${m.value} (step ${m.step})`).join(', '),
      Object.keys(params).length ? `params ${Object.keys(params).join(', ')}` : '',
      flags.input?.length ? `inputs ${flags.input.join(', ')}` : '',
    ].filter(Boolean)
    this.log(`run ${args.run}: logged ${parts.join('; ')}`)
    return out
  }
}
