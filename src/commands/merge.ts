import { Args, Flags } from '@oclif/core'
import { mergeRefs, type MergeResult } from '../api/history.js'
import { formatTable, PgdvCommand } from '../lib/base.js'
import { PgdvError } from '../lib/errors.js'

export default class Merge extends PgdvCommand<typeof Merge> {
  static summary = 'Three-way merge a ref into a branch by key (dv.merge); conflicts come back as rows and nothing is committed.'
  static description = `Changes on only one side combine; a key changed differently on both sides is a conflict, printed
with its base, ours (the branch merged into) and theirs (the ref merged from) values, and the
command fails without committing. --strategy ours|theirs resolves every conflict one way.`
  static examples = [
    '<%= config.bin %> merge flights cleanup',
    '<%= config.bin %> merge flights cleanup --into staging -m "merge labels"',
    '<%= config.bin %> merge flights cleanup --strategy theirs --json',
  ]

  static args = {
    dataset: Args.string({ description: 'dataset name', required: true }),
    from: Args.string({ description: 'the ref to merge (theirs)', required: true }),
  }

  static flags = {
    into: Flags.string({ description: 'branch to merge into (ours)', default: 'main' }),
    strategy: Flags.string({ description: 'resolve all conflicts with one side', options: ['ours', 'theirs'] }),
    message: Flags.string({ char: 'm', description: 'merge commit message' }),
  }

  async run(): Promise<MergeResult> {
    const { args } = await this.parse(Merge)
    const r = await mergeRefs(await this.pgdv(), {
      dataset: args.dataset,
      from: args.from,
      into: this.flags.into,
      strategy: this.flags.strategy as 'ours' | 'theirs' | undefined,
      message: this.flags.message,
    })
    if (r.status === 'conflict') {
      if (this.jsonEnabled()) {
        this.logJson(r)
        this.exit(1)
      }
      this.log(formatTable(r.conflicts as unknown as Record<string, unknown>[], ['key', 'base', 'ours', 'theirs']))
      throw new PgdvError(`${r.conflicts.length} conflict${r.conflicts.length === 1 ? '' : 's'} merging ${r.from} into ${r.into} of "${r.dataset}"; nothing was committed`, {
        kind: 'conflict',
        hint: 'Resolve them on a branch and merge again, or pass --strategy ours|theirs',
      })
    }
    const what = {
      merged: `merged ${r.from} into ${r.into}: new version ${r.version_id}`,
      'fast-forward': `fast-forward: ${r.into} now at version ${r.version_id}`,
      'up-to-date': `${r.into} already contains ${r.from} (version ${r.version_id})`,
    }[r.status]
    this.log(what)
    return r
  }
}
