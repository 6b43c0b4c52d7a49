// `pgdv gc`: garbage collection of file chunks and packs (src/files/gc.ts holds the
// procedure, sql/migrations/007-files-gc.sql the mark and sweep).

import path from 'node:path'
import { collectGarbage, type GcResult } from '../files/gc.js'
import { openHomeStore } from '../files/store.js'
import type { Pgdv } from './client.js'
import type { FilesContext } from './files.js'

export type { GcResult, GcPack } from '../files/gc.js'

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
 * chunks. Never touches a pack a version, blob or model artifact references.
 */
export async function gc(pgdv: Pgdv, input: GcInput = {}): Promise<GcResult> {
  const store = input.store ?? openHomeStore(pgdv.home, pgdv.config)
  try {
    return await collectGarbage({
      db: pgdv.db,
      store,
      graceMs: input.graceMs ?? DEFAULT_GRACE_MS,
      dryRun: input.dryRun,
      waitMs: input.waitMs,
      tempDir: path.join(pgdv.home, 'tmp'),
    })
  } finally {
    if (!input.store) await store.close?.()
  }
}
