import { Args, Flags } from '@oclif/core'
import { createExperiment, type ExperimentInfo } from '../../api/runs.js'
import { PgdvCommand } from '../../lib/base.js'

export default class ExperimentCreate extends PgdvCommand<typeof ExperimentCreate> {
  static summary = 'Create an experiment: a named group of runs.'
  static examples = ['<%= config.bin %> experiment create resnet -d "image classifier"', '<%= config.bin %> experiment create churn --tag team=growth --json']

  static args = { name: Args.string({ description: 'experiment name', required: true }) }
  static flags = {
    description: Flags.string({ char: 'd', description: 'what the experiment is about' }),
    tag: Flags.string({ description: 'a tag (repeatable)', multiple: true }),
  }

  async run(): Promise<ExperimentInfo> {
    const { args, flags } = await this.parse(ExperimentCreate)
    const e = await createExperiment(await this.pgdv(), { name: args.name, description: flags.description, tags: flags.tag })
    this.log(`created experiment "${e.name}"; start runs with \`pgdv run start -e ${e.name}\``)
    return e
  }
}
