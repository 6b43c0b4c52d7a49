// `pgdv gc`: garbage collection of file chunks and packs (src/files/gc.ts holds the
// procedure, sql/migrations/007-files-gc.sql the mark and sweep), and of first-load
// staging tables whose session ended without committing them (dv.drop_stale_loads).

import path from 'node:path'
import { collectGarbage, type GcResult as FilesGcResult } from '../files/gc.js'
import { openHomeStore } from '../files/store.js'
import type { Pgdv } from './client.js'
import type { FilesContext } from './files.js'

export type { GcPack } from '../files/gc.js'

/** A dv.stage_first table whose session ended before it was committed. */
export interface StaleLoad {
  dataset: string
  staging_table: string
  created_at: string
}

export interface GcResult extends FilesGcResult {
  /** Stale first-load staging tables dropped (in a dry run: that would be). */
  stale_loads: StaleLoad[]
}

export interface GcInput extends Pick<FilesContext, 'store'> {
  /** Keep packs written less than this long ago (default one hour). */
  graceMs?: number
  /** Only report what would be deleted. */
  dryRun?: boolean
  /** Wait this long for running ingests (default 60 s). */
  waitMs?: number
}

export const DEFAULT_GRACE_MS = 3600_000

/**
 * Deletes packs nothing references any more (and packs ingests sealed but never
 * registered) once older than the grace period; keeps packs that mix live and dead
 * chunks. Never touches a pack a version, blob or model artifact references. Also drops
 * first-load staging tables whose session ended without committing them.
 */
export async function gc(pgdv: Pgdv, input: GcInput = {}): Promise<GcResult> {
  const store = input.store ?? openHomeStore(pgdv.home, pgdv.config)
  try {
    const files = await collectGarbage({
      db: pgdv.db,
      store,
      graceMs: input.graceMs ?? DEFAULT_GRACE_MS,
      dryRun: input.dryRun,
      waitMs: input.waitMs,
      tempDir: path.join(pgdv.home, 'tmp'),
    })
    const staleLoads = await pgdv.db.query<{ dataset: string; staging_table: string; created_at: Date }>(
      'SELECT * FROM dv.drop_stale_loads(p_dry_run => $1::boolean)',
      [input.dryRun ?? false],
    )
    return { ...files, stale_loads: staleLoads.map((r) => ({ ...r, created_at: new Date(r.created_at).toISOString() })) }
  } finally {
    if (!input.store) await store.close?.()
  }
}
