import { Args, Flags } from '@oclif/core'
import { type DatasetInfo, dropDataset, showDataset } from '../../api/datasets.js'
import { PgdvCommand } from '../../lib/base.js'
import { PgdvError } from '../../lib/errors.js'

export default class DatasetDrop extends PgdvCommand<typeof DatasetDrop> {
  static summary = 'Drop a dataset with all its versions, refs and row tables (asks for --force).'
  static examples = ['<%= config.bin %> dataset drop flights --force']
  static args = { name: Args.string({ description: 'dataset name', required: true }) }
  static flags = { force: Flags.boolean({ char: 'f', description: 'really drop it' }) }

  async run(): Promise<DatasetInfo> {
    const { args } = await this.parse(DatasetDrop)
    const pgdv = await this.pgdv()
    if (!this.flags.force) {
      const ds = await showDataset(pgdv, args.name) // an unknown name fails here with its own message
      throw new PgdvError(`dropping dataset "${ds.name}" deletes its ${ds.versions} version(s) for good`, {
        hint: `Run again with --force: pgdv dataset drop ${JSON.stringify(ds.name)} --force`,
      })
    }
    const ds = await dropDataset(pgdv, args.name)
    this.log(`dropped dataset "${ds.name}" (${ds.versions} versions)`)
    return ds
  }
}
