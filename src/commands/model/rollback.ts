import { Args, Flags } from '@oclif/core'
import { type ModelVersionInfo, rollbackModel } from '../../api/models.js'
import { PgdvCommand } from '../../lib/base.js'

export default class ModelRollback extends PgdvCommand<typeof ModelRollback> {
  static summary = 'Move an alias back to where its latest promote found it (again: the promote before that).'
  static examples = ['<%= config.bin %> model rollback resnet production', '<%= config.bin %> model rollback resnet production --reason "accuracy regression" --json']

  static args = {
    model: Args.string({ description: 'model name', required: true }),
    alias: Args.string({ description: 'alias name', required: true }),
  }
  static flags = { reason: Flags.string({ description: 'why (kept in the history)' }) }

  async run(): Promise<ModelVersionInfo> {
    const { args, flags } = await this.parse(ModelRollback)
    const v = await rollbackModel(await this.pgdv(), { model: args.model, alias: args.alias, reason: flags.reason })
    this.log(`${v.model}@${args.alias} rolled back to v${v.version} (model-version ${v.id})`)
    return v
  }
}
