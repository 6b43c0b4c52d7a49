import { Args } from '@oclif/core'
import { catFile } from '../api/files.js'
import { PgdvCommand } from '../lib/base.js'

export default class Cat extends PgdvCommand<typeof Cat> {
  static summary = 'Write one file of a files dataset version to stdout, verified chunk by chunk.'
  static examples = ['<%= config.bin %> cat images main labels/train.csv', '<%= config.bin %> cat images v12 cat.jpg > cat.jpg']
  static enableJsonFlag = false
  static args = {
    dataset: Args.string({ description: 'files dataset', required: true }),
    ref: Args.string({ description: 'branch, tag or version id (REF~N works too)', required: true }),
    path: Args.string({ description: 'path of the file in the dataset', required: true }),
  }

  async run(): Promise<void> {
    const { args } = await this.parse(Cat)
    await catFile(await this.pgdv(), { dataset: args.dataset, ref: args.ref, path: args.path }, process.stdout)
  }
}
