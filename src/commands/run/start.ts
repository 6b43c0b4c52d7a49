import { Flags } from '@oclif/core'
import { type RunInfo, startRun } from '../../api/runs.js'
import { PgdvCommand } from '../../lib/base.js'
import { parseJsonObject, parseParams } from '../../lineage/parse.js'

export default class RunStart extends PgdvCommand<typeof RunStart> {
  static summary = 'Start a run in an experiment, pinning its inputs to exact dataset versions.'
  static description = 'Each --input DATASET@REF (branch, tag, version id, REF~N; default main) is resolved now and stored as the version id and its content hash, so `pgdv run reproduce` checks out exactly what the run read.'
  static examples = [
    '<%= config.bin %> run start -e resnet --name train -i images@v1.0 -i labels@main --param lr=0.01 --param epochs=10 --code-ref $(git rev-parse HEAD)',
    '<%= config.bin %> run start -e resnet --params \'{"lr":0.01}\' --json',
  ]

  static flags = {
    experiment: Flags.string({ char: 'e', description: 'experiment (create it with `pgdv experiment create`)', required: true }),
    name: Flags.string({ char: 'n', description: 'run name' }),
    input: Flags.string({ char: 'i', description: 'input dataset as DATASET or DATASET@REF (repeatable)', multiple: true }),
    param: Flags.string({ char: 'p', description: 'parameter KEY=VALUE (repeatable; JSON values keep their type)', multiple: true }),
    params: Flags.string({ description: 'parameters as one JSON object' }),
    'code-ref': Flags.string({ description: 'what ran, e.g. a git commit' }),
    tag: Flags.string({ description: 'a tag (repeatable)', multiple: true }),
  }

  async run(): Promise<RunInfo> {
    const { flags } = await this.parse(RunStart)
    const params = { ...parseJsonObject(flags.params, '--params'), ...parseParams(flags.param) }
    const r = await startRun(await this.pgdv(), {
      experiment: flags.experiment,
      name: flags.name,
      params,
      inputs: flags.input,
      codeRef: flags['code-ref'],
      tags: flags.tag,
    })
    this.log(`started run ${r.id} in experiment "${r.experiment}" with ${r.inputs} pinned input(s)`)
    return r
  }
}
