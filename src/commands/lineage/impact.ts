import { Args, Flags } from '@oclif/core'
import { impact, type ImpactRow, type NodeRef, resolveNode } from '../../api/lineage.js'
import { PgdvCommand } from '../../lib/base.js'
import { formatWalk } from '../../lineage/format.js'
import { parseDepth } from '../../lineage/parse.js'

export default class LineageImpact extends PgdvCommand<typeof LineageImpact> {
  static summary = 'Every run and model version that depends on a dataset version, transitively, with the path.'
  static examples = ['<%= config.bin %> lineage impact labels@v3', '<%= config.bin %> lineage impact flights@main --json']

  static args = { dataset: Args.string({ description: 'DATASET@REF (default ref: main)', required: true }) }
  static flags = { depth: Flags.integer({ char: 'd', description: 'how many steps to walk (default 100)' }) }

  async run(): Promise<{ start: NodeRef; impacted: ImpactRow[] }> {
    const { args, flags } = await this.parse(LineageImpact)
    const pgdv = await this.pgdv()
    const start = await resolveNode(pgdv, { kind: 'dataset_version', ref: args.dataset })
    const impacted = await impact(pgdv, args.dataset, parseDepth(flags.depth, 100))
    this.log(formatWalk(start, impacted, 'impact'))
    return { start, impacted }
  }
}
