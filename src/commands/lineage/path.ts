import { Flags } from '@oclif/core'
import { lineagePath, type NodeRef, parseNodeSpec, type PathStep, resolveNode } from '../../api/lineage.js'
import { formatTable, PgdvCommand } from '../../lib/base.js'
import { PgdvError } from '../../lib/errors.js'
import { parseDepth } from '../../lineage/parse.js'

export default class LineagePath extends PgdvCommand<typeof LineagePath> {
  static summary = 'A shortest lineage path between two nodes (downstream from the first, else upstream).'
  static examples = ['<%= config.bin %> lineage path dataset labels@v3 model-version resnet@production', '<%= config.bin %> lineage path external warehouse raw.images run 17 --json']

  static strict = false
  static flags = { depth: Flags.integer({ char: 'd', description: 'longest path to look for (default 50)' }) }

  async run(): Promise<{ from: NodeRef; to: NodeRef; steps: PathStep[] }> {
    const { argv, flags } = await this.parse(LineagePath)
    const first = parseNodeSpec(argv as string[])
    const second = parseNodeSpec(first.rest)
    if (second.rest.length) throw new PgdvError(`unexpected argument(s): ${second.rest.join(' ')}`, { hint: 'Give two nodes: KIND ID KIND ID' })
    const pgdv = await this.pgdv()
    const from = await resolveNode(pgdv, first.spec)
    const to = await resolveNode(pgdv, second.spec)
    const steps = await lineagePath(pgdv, from, to, parseDepth(flags.depth, 50))
    if (steps.length === 0) this.log(`no lineage path between ${from.name} and ${to.name} within ${parseDepth(flags.depth, 50)} steps`)
    else this.log(formatTable(steps as unknown as Record<string, unknown>[], ['step', 'kind', 'id', 'name', 'relation', 'direction']))
    return { from, to, steps }
  }
}
