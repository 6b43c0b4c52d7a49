import { Flags } from '@oclif/core'
import { parseNodeSpec, resolveNode, downstream, type NodeRef, type WalkRow } from '../../api/lineage.js'
import { PgdvCommand } from '../../lib/base.js'
import { PgdvError } from '../../lib/errors.js'
import { formatWalk } from '../../lineage/format.js'
import { parseDepth } from '../../lineage/parse.js'

export default class LineageDown extends PgdvCommand<typeof LineageDown> {
  static summary = 'Everything that came from a node (downstream), breadth first, with depth and path.'
  static description = 'A node is KIND ID: dataset flights@v3 (or flights@main), run 17, model-version 42 (or resnet@production), model resnet (all its versions), job NAMESPACE NAME, external NAMESPACE NAME.'
  static examples = [
    '<%= config.bin %> lineage down dataset labels@v3',
    '<%= config.bin %> lineage down run 17 --depth 3 --json',
    '<%= config.bin %> lineage down external warehouse raw.images',
  ]

  static strict = false
  static flags = { depth: Flags.integer({ char: 'd', description: 'how many steps to walk (default 10)' }) }

  async run(): Promise<{ start: NodeRef; nodes: WalkRow[] }> {
    const { argv, flags } = await this.parse(LineageDown)
    const { spec, rest } = parseNodeSpec(argv as string[])
    if (rest.length) throw new PgdvError(`unexpected argument(s) after the node: ${rest.join(' ')}`, { hint: 'Give one node: KIND ID' })
    const pgdv = await this.pgdv()
    const start = await resolveNode(pgdv, spec)
    const nodes = await downstream(pgdv, start, parseDepth(flags.depth, 10))
    this.log(formatWalk(start, nodes, 'downstream'))
    return { start, nodes }
  }
}
