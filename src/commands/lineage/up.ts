import { Flags } from '@oclif/core'
import { parseNodeSpec, resolveNode, upstream, type NodeRef, type WalkRow } from '../../api/lineage.js'
import { PgdvCommand } from '../../lib/base.js'
import { PgdvError } from '../../lib/errors.js'
import { formatWalk } from '../../lineage/format.js'
import { parseDepth } from '../../lineage/parse.js'

export default class LineageUp extends PgdvCommand<typeof LineageUp> {
  static summary = 'Everything a node came from (upstream), breadth first, with depth and path.'
  static description = 'A node is KIND ID: dataset flights@v3 (or flights@main), run 17, model-version 42 (or resnet@production), model resnet (all its versions), job NAMESPACE NAME, external NAMESPACE NAME.'
  static examples = [
    '<%= config.bin %> lineage up model-version resnet@production',
    '<%= config.bin %> lineage up run 17 --depth 3 --json',
    '<%= config.bin %> lineage up external warehouse raw.images',
  ]

  static strict = false
  static flags = { depth: Flags.integer({ char: 'd', description: 'how many steps to walk (default 10)' }) }

  async run(): Promise<{ start: NodeRef; nodes: WalkRow[] }> {
    const { argv, flags } = await this.parse(LineageUp)
    const { spec, rest } = parseNodeSpec(argv as string[])
    if (rest.length) throw new PgdvError(`unexpected argument(s) after the node: ${rest.join(' ')}`, { hint: 'Give one node: KIND ID' })
    const pgdv = await this.pgdv()
    const start = await resolveNode(pgdv, spec)
    const nodes = await upstream(pgdv, start, parseDepth(flags.depth, 10))
    this.log(formatWalk(start, nodes, 'upstream'))
    return { start, nodes }
  }
}
