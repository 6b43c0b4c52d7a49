import { Flags } from '@oclif/core'
import { addEdge, type EdgeInfo, parseNodeSpec } from '../../api/lineage.js'
import { PgdvCommand } from '../../lib/base.js'
import { PgdvError } from '../../lib/errors.js'

export default class LineageAdd extends PgdvCommand<typeof LineageAdd> {
  static summary = 'Add a lineage edge by hand: FROM caused TO.'
  static examples = ['<%= config.bin %> lineage add external warehouse raw.images dataset images@v1 --relation copied_to', '<%= config.bin %> lineage add run 17 model-version 42 --relation evaluated']

  static strict = false
  static flags = { relation: Flags.string({ char: 'r', description: 'what the edge means', default: 'derived_from' }) }

  async run(): Promise<EdgeInfo> {
    const { argv, flags } = await this.parse(LineageAdd)
    const a = parseNodeSpec(argv as string[])
    const b = parseNodeSpec(a.rest)
    if (b.rest.length) throw new PgdvError(`unexpected argument(s): ${b.rest.join(' ')}`, { hint: 'Give two nodes: KIND ID KIND ID' })
    const e = await addEdge(await this.pgdv(), a.spec, b.spec, flags.relation)
    this.log(`${e.src_name} --${e.relation}--> ${e.dst_name}`)
    return e
  }
}
