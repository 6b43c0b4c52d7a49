/**
 * Garbage collection of chunks and packs: mark-and-sweep in SQL (dv.gc_plan,
 * dv.gc_sweep in sql/migrations/007-files-gc.sql), object deletes here. The order
 * is what keeps it safe:
 *
 *   files lock, exclusive (no ingest is running; new ones wait)
 *   → one transaction: forget unreferenced contents, remove doomed packs' index rows,
 *     queue their objects (dv_files.gc_queue)
 *   → delete the queued objects from the store, then their queue rows
 *   → release the lock.
 *
 * Once a pack's rows are gone no ingest can find its chunks, so deleting the object
 * afterwards cannot break anything; a gc killed after the commit leaves the queue,
 * which the next gc finishes (re-checking that no ingest has written the same
 * content-addressed pack again in between).
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import type { Db } from '../db/db.js';
import { PgdvError } from '../lib/errors.js';
import { processAlive, removeStaleTempPacks } from '../packs/temp.js';
import { FsStore, StoreError, type ObjectStore } from '../store/index.js';
import { FilesLock } from './lock.js';
import { storeError } from './store.js';

export interface GcOptions {
  db: Db;
  store: ObjectStore;
  /** Packs (and unregistered packs) written less than this long ago are kept. */
  graceMs: number;
  /** Report what would be deleted; change nothing (takes no lock). */
  dryRun?: boolean;
  /** How long to wait for running ingests to finish (default 60 s); 0 fails at once. */
  waitMs?: number;
  /** The pgdv home's tmp folder: stale temp packs of killed ingests are removed too. */
  tempDir?: string;
  /** Object deletes in flight (default 8). */
  concurrency?: number;
}

export interface GcPack {
  pack_id: string;
  object_key: string;
  size: number | null;
  /** unreferenced: no live chunk; mixed: live and dead chunks; unregistered: sealed by an ingest, never registered. */
  kind: 'unreferenced' | 'mixed' | 'unregistered';
  chunks: number | null;
  live_chunks: number | null;
  dead_bytes: number | null;
  written_at: Date;
  action: 'delete' | 'keep';
  reason: string;
}

export interface GcResult {
  dry_run: boolean;
  grace_seconds: number;
  /** Packs deleted from the store (in a dry run: that would be), unregistered ones included. */
  deleted_packs: number;
  deleted_bytes: number;
  /** Of deleted_packs, those an ingest sealed but never registered. */
  deleted_unregistered: number;
  /** Unreferenced or unregistered packs kept because they are younger than the grace period. */
  kept_young: number;
  /** Packs kept because they mix live and dead chunks (not repacked yet), and the dead bytes they hold. */
  kept_mixed: number;
  mixed_dead_bytes: number;
  /** Registered packs every chunk of which is live. */
  live_packs: number;
  /** Ingest sessions whose process was found gone (this host) and marked failed. */
  failed_sessions: number;
  /** Temp packs of killed ingests removed from the home's tmp folder. */
  temp_packs_removed: number;
  /** Every pack that is not wholly live, with what gc did (or would do) and why. */
  packs: GcPack[];
}

interface PlanRow {
  pack_id: string;
  object_key: string;
  size: string | null;
  kind: GcPack['kind'];
  chunks: number | null;
  live_chunks: number | null;
  dead_bytes: string | null;
  written_at: Date;
  action: GcPack['action'];
  reason: string;
}

export const DEFAULT_GC_WAIT_MS = 60_000;

export async function collectGarbage(opts: GcOptions): Promise<GcResult> {
  const grace = `${Math.max(0, Math.round(opts.graceMs))} milliseconds`;
  if (opts.dryRun) return dryRun(opts, grace);

  const lock = await FilesLock.acquire(opts.db, 'gc', opts.waitMs ?? DEFAULT_GC_WAIT_MS, `pgdv gc pid ${process.pid} on ${hostname()}`);
  try {
    const { failed, rows, total } = await lock.tx(async (c) => {
      const failed = await failDeadSessions(c);
      const rows = (await c.query<PlanRow>('SELECT * FROM dv.gc_sweep(p_grace => $1::interval)', [grace])).rows;
      const total = Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM dv_files.packs')).rows[0]!.n);
      return { failed, rows, total };
    });
    const packs = rows.map(toPack);
    await deleteObjects(lock, opts.store, packs.filter((p) => p.action === 'delete'), opts.concurrency ?? 8);
    const temp = opts.tempDir ? await removeStaleTempPacks(opts.tempDir) : { removed: 0 };
    // Temp files of puts a killed process left in a filesystem store (not packs: those are renamed in).
    if (opts.store instanceof FsStore) await opts.store.removeStaleTemp(Math.max(opts.graceMs, 3600_000));
    return summarize(packs, total, false, opts.graceMs, failed, temp.removed);
  } finally {
    await lock.release();
  }
}

async function dryRun(opts: GcOptions, grace: string): Promise<GcResult> {
  return opts.db.withClient(async (c) => {
    // gc_plan fills a temp table; the rollback drops it: nothing is changed.
    await c.query('BEGIN');
    try {
      const rows = (await c.query<PlanRow>('SELECT * FROM dv.gc_plan(p_grace => $1::interval)', [grace])).rows;
      // Objects a killed gc left queued: the next gc deletes them.
      const queued = (
        await c.query<PlanRow>(
          `SELECT q.pack_id, q.object_key, q.size, q.kind, NULL::int AS chunks, NULL::int AS live_chunks, NULL::bigint AS dead_bytes,
                  q.queued_at AS written_at, 'delete' AS action, 'queued by an earlier gc that did not finish' AS reason
           FROM dv_files.gc_queue q WHERE NOT EXISTS (SELECT 1 FROM dv_files.packs p WHERE p.id = q.pack_id)`,
        )
      ).rows;
      const total = Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM dv_files.packs')).rows[0].n);
      const seen = new Set(rows.map((r) => r.object_key));
      const packs = [...rows, ...queued.filter((q) => !seen.has(q.object_key))].map(toPack);
      const temp = opts.tempDir ? await removeStaleTempPacks(opts.tempDir, { dryRun: true }) : { removed: 0 };
      return summarize(packs, total, true, opts.graceMs, 0, temp.removed);
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
    }
  });
}

function toPack(r: PlanRow): GcPack {
  const n = (v: string | number | null): number | null => (v === null ? null : Number(v));
  return { ...r, size: n(r.size), chunks: n(r.chunks), live_chunks: n(r.live_chunks), dead_bytes: n(r.dead_bytes) };
}

function summarize(packs: GcPack[], totalRegistered: number, dry: boolean, graceMs: number, failed: number, tempRemoved: number): GcResult {
  const del = packs.filter((p) => p.action === 'delete');
  const mixed = packs.filter((p) => p.kind === 'mixed');
  // Registered packs gc did not list are wholly live; in a real run the deleted ones are gone from the count already.
  const listedRegistered = packs.filter((p) => p.kind !== 'unregistered' && (dry || p.action === 'keep')).length;
  return {
    dry_run: dry,
    grace_seconds: Math.round(graceMs / 1000),
    deleted_packs: del.length,
    deleted_bytes: del.reduce((a, p) => a + (p.size ?? 0), 0),
    deleted_unregistered: del.filter((p) => p.kind === 'unregistered').length,
    kept_young: packs.filter((p) => p.action === 'keep' && p.kind !== 'mixed').length,
    kept_mixed: mixed.length,
    mixed_dead_bytes: mixed.reduce((a, p) => a + (p.dead_bytes ?? 0), 0),
    live_packs: Math.max(0, totalRegistered - listedRegistered),
    failed_sessions: failed,
    temp_packs_removed: tempRemoved,
    packs,
  };
}

/**
 * Deletes the queued objects, then their queue rows. Deleting an absent object is not
 * an error (an unregistered pack that never reached the store, or a retry). A store
 * failure stops the run with the rest still queued for the next gc.
 */
async function deleteObjects(lock: FilesLock, store: ObjectStore, packs: GcPack[], concurrency: number): Promise<void> {
  let next = 0;
  let deleted = 0;
  let failure: unknown;
  const done: string[] = [];
  const flush = async (): Promise<void> => {
    if (!done.length) return;
    const keys = done.splice(0);
    await lock.tx((c) => c.query('SELECT dv.gc_done(p_object_keys => $1::text[])', [keys]));
  };
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < packs.length) {
      const p = packs[next++]!;
      try {
        await store.delete(p.object_key);
        done.push(p.object_key);
        deleted++;
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, packs.length) }, worker));
  await flush();
  if (failure !== undefined) {
    if (failure instanceof StoreError) {
      const e = storeError(failure, 'gc deleting a pack');
      throw new PgdvError(e.message, {
        kind: e.kind,
        hint: `${e.hint ? `${e.hint}; ` : ''}the index no longer uses the ${packs.length - deleted} pack(s) left: run pgdv gc again to finish deleting them`,
        cause: failure,
      });
    }
    throw failure;
  }
}

/**
 * Ingest sessions of this host still marked running whose process is gone were
 * killed: mark them failed (the files lock tells gc that no live ingest holds them;
 * the mark just keeps dv_files.ingest_sessions truthful).
 */
async function failDeadSessions(c: pg.ClientBase): Promise<number> {
  const { rows } = await c.query<{ id: string; pid: number | null }>(
    `SELECT id, pid FROM dv_files.ingest_sessions WHERE state = 'running' AND host = $1::text`,
    [hostname()],
  );
  const dead = rows.filter((r) => !processAlive(r.pid)).map((r) => r.id);
  if (dead.length === 0) return 0;
  const res = await c.query(`UPDATE dv_files.ingest_sessions SET state = 'failed', finished_at = now() WHERE id = ANY($1::bigint[]) AND state = 'running'`, [dead]);
  return res.rowCount ?? 0;
}

/**
 * Parses a duration flag: 90s, 15m, 1h, 2d, 1h30m, or 0. Pure, for --grace and --wait.
 */
export function parseDuration(text: string, flag: string): number {
  const s = text.trim().toLowerCase();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * unit[m[2]!]!;
    end = re.lastIndex;
  }
  if (s.length === 0 || end !== s.length) {
    throw new PgdvError(`${flag} ${JSON.stringify(text)} is not a duration`, { kind: 'usage', hint: `Give e.g. ${flag} 1h, ${flag} 30m, ${flag} 90s or ${flag} 0` });
  }
  return Math.round(total);
}
