/**
 * The files lock: what keeps garbage collection and ingests apart (docs/files.md,
 * "Garbage collection"). Every ingest holds it shared for its whole life; gc holds it
 * exclusively while it marks, deletes index rows and deletes objects. An ingest
 * relies on chunks it found already stored (dedup) from its first batch to its
 * commit, and nothing records which those are until the commit: so gc must not run
 * in between, whatever the age of the packs involved.
 *
 * It is a PostgreSQL session-level advisory lock (dv.files_lock), held on a
 * connection of its own: it works across hosts that share the database, and a killed
 * process's connection closes, which releases it — no stale lock to clean up.
 */
import { hostname } from 'node:os';
import pg from 'pg';
import type { Db } from '../db/db.js';
import { PgdvError, toPgdvError } from '../lib/errors.js';

export type FilesLockMode = 'ingest' | 'gc';

export interface LockHolder {
  pid: number;
  mode: string;
  granted: boolean;
  application_name: string | null;
  backend_start: Date | null;
}

/** Ingests wait this long for a running gc before failing (gc's sweep is bounded; this is a backstop). */
export const INGEST_LOCK_WAIT_MS = 10 * 60 * 1000;

export class FilesLock {
  /** Set once the connection broke: the lock is gone with it. */
  private lost: unknown;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly client: pg.Client,
    readonly mode: FilesLockMode,
  ) {
    client.on('error', (e) => (this.lost ??= e));
    client.on('end', () => (this.lost ??= new Error('connection closed')));
  }

  /**
   * Runs fn in a transaction on the lock's own connection, one at a time. Work that
   * must only happen while the lock is held goes here: if the connection broke, the
   * lock went with it and this fails instead of writing. Ingests register packs this
   * way: a pack is content-addressed, so a gc that started after the lock was lost
   * could be deleting an object of the same key this ingest just uploaded again.
   */
  tx<T>(fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
    const run = this.chain.then(async () => {
      if (this.lost !== undefined) throw lostLock(this.mode, this.lost);
      try {
        await this.client.query('BEGIN');
        const out = await fn(this.client);
        await this.client.query('COMMIT');
        return out;
      } catch (e) {
        await this.client.query('ROLLBACK').catch(() => {});
        if (this.lost !== undefined) throw lostLock(this.mode, this.lost);
        throw toPgdvError(e);
      }
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Takes the lock on a new connection (not one of the pool's, so a pool of one
   * connection still works), waiting at most waitMs. label names the holder in
   * pg_stat_activity.application_name, which dv.files_lock_holders() shows.
   */
  static async acquire(db: Db, mode: FilesLockMode, waitMs: number, label: string): Promise<FilesLock> {
    const client = new pg.Client({ ...db.connection.config, application_name: label.slice(0, 63) });
    // A server restart while the lock is held surfaces at the holder's next query, not as an unhandled event.
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query(`SELECT set_config('lock_timeout', $1::text, false)`, [`${Math.max(0, Math.round(waitMs))}ms`]);
      if (waitMs <= 0) {
        const { rows } = await client.query<{ ok: boolean }>('SELECT dv.files_try_lock(p_mode => $1::text) AS ok', [mode]);
        if (!rows[0].ok) throw busy(mode, await holders(client), 0);
      } else {
        try {
          await client.query('SELECT dv.files_lock(p_mode => $1::text)', [mode]);
        } catch (e) {
          if ((e as { code?: string }).code === '55P03') throw busy(mode, await holders(client), waitMs);
          throw e;
        }
      }
      await client.query('RESET lock_timeout');
      return new FilesLock(client, mode);
    } catch (e) {
      await client.end().catch(() => {});
      throw toPgdvError(e);
    }
  }

  /** Releases the lock (closing its connection would too). */
  async release(): Promise<void> {
    this.lost ??= new Error('released');
    await this.chain;
    await this.client.end().catch(() => {});
  }
}

/** Holders of (and waiters for) the files lock, as dv.files_lock_holders() reports them. */
async function holders(c: pg.Client): Promise<LockHolder[]> {
  const { rows } = await c.query<LockHolder>('SELECT pid, mode, granted, application_name, backend_start FROM dv.files_lock_holders() WHERE pid <> pg_backend_pid()');
  return rows;
}

function busy(mode: FilesLockMode, hs: LockHolder[], waitMs: number): PgdvError {
  const waited = waitMs > 0 ? ` after waiting ${formatMs(waitMs)}` : '';
  const who = hs.filter((h) => h.granted).map((h) => `${h.application_name || 'a session'} (backend pid ${h.pid})`);
  const list = who.length ? `: ${who.slice(0, 3).join(', ')}${who.length > 3 ? ` and ${who.length - 3} more` : ''}` : '';
  if (mode === 'gc') {
    return new PgdvError(`gc cannot start${waited}: ingests are running${list}`, {
      kind: 'conflict',
      hint: 'Run gc again when they finish, or give it longer with --wait (e.g. --wait 30m)',
    });
  }
  return new PgdvError(`cannot start the ingest${waited}: gc is running${list}`, { kind: 'conflict', hint: 'Run the command again when gc has finished' });
}

function lostLock(mode: FilesLockMode, cause: unknown): PgdvError {
  return new PgdvError(`the ${mode === 'gc' ? 'gc' : 'ingest'} lost its hold on the files lock (its database connection closed: ${(cause as Error)?.message ?? String(cause)})`, {
    kind: 'connection',
    hint: 'Check the database connection and run the command again: it resumes',
    cause,
  });
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

/** The application_name an ingest's lock connection carries. */
export function ingestLabel(): string {
  return `pgdv ingest pid ${process.pid} on ${hostname()}`;
}
