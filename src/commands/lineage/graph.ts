import fs from 'node:fs/promises'
import { Flags } from '@oclif/core'
import { lineageGraph, parseNodeSpec, resolveNode } from '../../api/lineage.js'
import { PgdvCommand } from '../../lib/base.js'
import { PgdvError } from '../../lib/errors.js'
import { parseDepth } from '../../lineage/parse.js'
import { type GraphFormat, type LineageGraph, renderGraph } from '../../lineage/render.js'

export default class LineageGraphCommand extends PgdvCommand<typeof LineageGraphCommand> {
  static summary = 'Draw the lineage around a node as Mermaid, Graphviz DOT, JSON, or SVG (needs Graphviz).'
  static examples = [
    '<%= config.bin %> lineage graph model-version resnet@production --format mermaid',
    '<%= config.bin %> lineage graph model resnet --depth 4 --format dot > resnet.dot',
    '<%= config.bin %> lineage graph run 17 --format svg --out run17.svg',
  ]

  static strict = false
  static flags = {
    depth: Flags.integer({ char: 'd', description: 'steps upstream and downstream (default 3)' }),
    format: Flags.string({ char: 'f', description: 'output format', options: ['mermaid', 'dot', 'json', 'svg'], default: 'mermaid' }),
    out: Flags.string({ char: 'o', description: 'write to this file instead of stdout' }),
  }

  async run(): Promise<LineageGraph & { format: string; out?: string }> {
    const { argv, flags } = await this.parse(LineageGraphCommand)
    const { spec, rest } = parseNodeSpec(argv as string[])
    if (rest.length) throw new PgdvError(`unexpected argument(s) after the node: ${rest.join(' ')}`, { hint: 'Give one node: KIND ID' })
    const pgdv = await this.pgdv()
    const node = await resolveNode(pgdv, spec)
    const graph = await lineageGraph(pgdv, node, parseDepth(flags.depth, 3))
    const text = await renderGraph(graph, flags.format as GraphFormat)
    if (flags.out) {
      await fs.writeFile(flags.out, text)
      this.log(`wrote ${graph.nodes.length} node(s) and ${graph.edges.length} edge(s) as ${flags.format} to ${flags.out}`)
    } else if (!this.jsonEnabled()) {
      process.stdout.write(text)
    }
    return { ...graph, format: flags.format, out: flags.out }
  }
}
