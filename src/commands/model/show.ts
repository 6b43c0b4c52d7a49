import { Args } from '@oclif/core'
import { type ModelDetails, showModel } from '../../api/models.js'
import { formatTable, PgdvCommand } from '../../lib/base.js'

export default class ModelShow extends PgdvCommand<typeof ModelShow> {
  static summary = 'Show a model: its versions (run, artifact, metrics, aliases) and the alias history.'
  static examples = ['<%= config.bin %> model show resnet', '<%= config.bin %> model show resnet --json']

  static args = { model: Args.string({ description: 'model name', required: true }) }

  async run(): Promise<ModelDetails> {
    const { args } = await this.parse(ModelShow)
    const m = await showModel(await this.pgdv(), args.model)
    this.log(
      [
        `model "${m.name}": ${m.versions} version(s); aliases ${JSON.stringify(m.aliases)}`,
        '',
        formatTable(m.model_versions as unknown as Record<string, unknown>[], ['version', 'id', 'aliases', 'run_id', 'metrics', 'artifact_hash', 'artifact_uri', 'created_at']),
        '',
        'alias history',
        m.alias_history.length
          ? formatTable(m.alias_history as unknown as Record<string, unknown>[], ['alias', 'action', 'old_version', 'new_version', 'moved_by', 'moved_at', 'reason'])
          : '  (none)',
      ].join('\n'),
    )
    return m
  }
}
