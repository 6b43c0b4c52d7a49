import { Args, Flags } from '@oclif/core'
import { createDataset, type DatasetInfo } from '../../api/datasets.js'
import { PgdvCommand } from '../../lib/base.js'
import { parseKeyColumns } from '../../lib/parse.js'

export default class DatasetCreate extends PgdvCommand<typeof DatasetCreate> {
  static summary = 'Create a dataset: a table of rows (optionally keyed) or, with --files, a folder of files.'
  static description = 'Names are 1 to 63 bytes of UTF-8 without control characters or "@"; they are always quoted safely in SQL.'
  static examples = [
    '<%= config.bin %> dataset create flights --key flight_id',
    '<%= config.bin %> dataset create labels --key image_id,annotator -d "human labels"',
    '<%= config.bin %> dataset create images --files',
  ]

  static args = { name: Args.string({ description: 'dataset name', required: true }) }
  static flags = {
    key: Flags.string({ description: 'key columns, comma-separated (default: keyless, the row hash is the identity)' }),
    files: Flags.boolean({ description: 'a dataset of files instead of rows', exclusive: ['key'] }),
    description: Flags.string({ char: 'd', description: 'what the dataset holds' }),
  }

  async run(): Promise<DatasetInfo> {
    const { args } = await this.parse(DatasetCreate)
    const pgdv = await this.pgdv()
    const ds = await createDataset(pgdv, {
      name: args.name,
      kind: this.flags.files ? 'files' : 'table',
      keyColumns: parseKeyColumns(this.flags.key),
      description: this.flags.description,
    })
    this.log(`created ${ds.kind} dataset "${ds.name}"${ds.key_columns ? ` keyed by (${ds.key_columns.join(', ')})` : ''}; branch main at version ${ds.main_version}`)
    return ds
  }
}
