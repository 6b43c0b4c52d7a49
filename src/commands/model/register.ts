import { Args, Flags } from '@oclif/core'
import { type ModelVersionInfo, registerModel } from '../../api/models.js'
import { PgdvCommand } from '../../lib/base.js'
import { parseMetrics } from '../../lineage/parse.js'

export default class ModelRegister extends PgdvCommand<typeof ModelRegister> {
  static summary = 'Register the next version of a model (created on first use), produced by a run, with its artifact.'
  static description = 'The artifact is content-addressed: its SHA-256 (e.g. from `sha256sum`, or the `sha256` of `pgdv blob put --json`) and a URI where it lives. Metrics default to the run\'s latest metrics.'
  static examples = [
    '<%= config.bin %> model register resnet --run 17 --artifact-hash 9f86d0...  --artifact-uri s3://models/resnet/17.pt',
    '<%= config.bin %> model register resnet --run 17 --metric acc=0.93 --json',
  ]

  static args = { model: Args.string({ description: 'model name', required: true }) }
  static flags = {
    run: Flags.string({ char: 'r', description: 'the run that produced it' }),
    'artifact-hash': Flags.string({ description: 'the artifact\'s content hash as `pgdv blob put` prints it (keeps it from gc), or a SHA-256 of one stored elsewhere (64 hex digits, optionally sha256:)' }),
    'artifact-uri': Flags.string({ description: 'where the artifact is stored' }),
    metric: Flags.string({ char: 'm', description: 'metric KEY=NUMBER (repeatable; default: the run\'s latest metrics)', multiple: true }),
    description: Flags.string({ char: 'd', description: 'what changed in this version' }),
  }

  async run(): Promise<ModelVersionInfo> {
    const { args, flags } = await this.parse(ModelRegister)
    const metrics = flags.metric?.length ? parseMetrics(flags.metric) : undefined
    const v = await registerModel(await this.pgdv(), {
      model: args.model,
      run: flags.run,
      artifactHash: flags['artifact-hash'],
      artifactUri: flags['artifact-uri'],
      metrics,
      description: flags.description,
    })
    this.log(`registered ${v.model} v${v.version} (model-version ${v.id})${v.run_id ? ` from run ${v.run_id}` : ''}`)
    return v
  }
}
