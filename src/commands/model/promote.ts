import { Args, Flags } from '@oclif/core'
import { type ModelVersionInfo, promoteModel } from '../../api/models.js'
import { PgdvCommand } from '../../lib/base.js'

export default class ModelPromote extends PgdvCommand<typeof ModelPromote> {
  static summary = 'Point an alias (production, staging, champion, challenger, ...) at a version of the model.'
  static description = 'VERSION is the number within the model (3 or v3), another alias, or latest; --id takes the global model version id instead. Every move is kept in the alias history.'
  static examples = [
    '<%= config.bin %> model promote resnet production 3',
    '<%= config.bin %> model promote resnet champion challenger --reason "won the A/B test"',
    '<%= config.bin %> model promote resnet staging --id 42',
  ]

  static args = {
    model: Args.string({ description: 'model name', required: true }),
    alias: Args.string({ description: 'alias name', required: true }),
    version: Args.string({ description: 'version number, alias or latest' }),
  }
  static flags = {
    id: Flags.string({ description: 'global model version id instead of VERSION', exclusive: ['version'] }),
    reason: Flags.string({ description: 'why (kept in the history)' }),
  }

  async run(): Promise<ModelVersionInfo> {
    const { args, flags } = await this.parse(ModelPromote)
    const v = await promoteModel(await this.pgdv(), { model: args.model, alias: args.alias, version: args.version, versionId: flags.id, reason: flags.reason })
    this.log(`${v.model}@${args.alias} -> v${v.version} (model-version ${v.id})`)
    return v
  }
}
