import { Flags } from '@oclif/core'
import { gc, type GcResult } from '../api/gc.js'
import { DEFAULT_GC_WAIT_MS, parseDuration } from '../files/gc.js'
import { formatTable, PgdvCommand } from '../lib/base.js'

const SHOWN = 50

export default class Gc extends PgdvCommand<typeof Gc> {
  static summary = 'Delete file packs no version, blob or model references any more (SQL: dv.gc_plan, dv.gc_sweep).'
  static description = `Mark and sweep: a pack all of whose chunks are unreferenced (e.g. after dataset drop), or that an ingest sealed but never registered, is deleted from the object store once it was written longer than --grace ago. A pack mixing live and dead chunks is kept whole (repacking is not implemented yet).
gc waits (up to --wait) for running ingests to finish and holds new ones back while it sweeps; nothing a committed version references is ever deleted. Also removes temp packs that killed ingests left in the home's tmp folder, and drops dv.stage_first staging tables whose session ended without committing them (SQL: dv.drop_stale_loads).`
  static examples = ['<%= config.bin %> gc --dry-run', '<%= config.bin %> gc', '<%= config.bin %> gc --grace 0 --json']

  static flags = {
    'dry-run': Flags.boolean({ char: 'n', description: 'report what would be deleted; change nothing' }),
    grace: Flags.string({ description: 'keep packs written less than this long ago (e.g. 1h, 30m, 0)', default: '1h' }),
    wait: Flags.string({ description: 'wait this long for running ingests to finish (e.g. 1m, 30m, 0)', default: `${DEFAULT_GC_WAIT_MS / 1000}s` }),
  }

  async run(): Promise<GcResult> {
    const graceMs = parseDuration(this.flags.grace, '--grace')
    const waitMs = parseDuration(this.flags.wait, '--wait')
    const r = await gc(await this.pgdv(), { graceMs, waitMs, dryRun: this.flags['dry-run'] })
    const mb = (n: number) => (n / 1e6).toFixed(1)
    const verb = r.dry_run ? 'would delete' : 'deleted'
    if (r.packs.length) {
      // Deletions first; a store with many mixed packs would otherwise bury them. --json has every row.
      const rows = [...r.packs].sort((a, b) => (a.action === b.action ? 0 : a.action === 'delete' ? -1 : 1))
      this.log(
        formatTable(
          rows.slice(0, SHOWN).map((p) => ({ ...p, pack: p.pack_id.slice(0, 12), mb: p.size === null ? '' : mb(p.size) })),
          ['pack', 'kind', 'mb', 'action', 'reason'],
        ),
      )
      if (rows.length > SHOWN) this.log(`... and ${rows.length - SHOWN} more (--json lists them all)`)
    }
    this.log(
      `${r.dry_run ? 'dry run: ' : ''}${verb} ${r.deleted_packs} pack(s), ${mb(r.deleted_bytes)} MB` +
        (r.deleted_unregistered ? ` (${r.deleted_unregistered} never registered)` : '') +
        `; ${r.dry_run ? 'would keep' : 'kept'} ${r.live_packs} live, ${r.kept_young} within the grace period, ${r.kept_mixed} mixed (${mb(r.mixed_dead_bytes)} MB dead in them)` +
        (r.temp_packs_removed ? `; ${r.dry_run ? 'would remove' : 'removed'} ${r.temp_packs_removed} stale temp pack(s)` : '') +
        (r.stale_loads.length ? `; ${r.dry_run ? 'would drop' : 'dropped'} ${r.stale_loads.length} staging table(s) of loads that never committed` : ''),
    )
    return r
  }
}
