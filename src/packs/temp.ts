/**
 * Temp packs: the file a PackWriter fills before a pack is sealed and uploaded. A
 * process killed mid-ingest leaves its ~1 MiB (up to the pack target size) behind in
 * <home>/tmp, so every name says who owns it:
 *
 *   pack-h<host hash>-p<pid>-s<process start>-<random>.tmp
 *
 * "process start" is the start time Linux keeps in /proc/<pid>/stat (clock ticks
 * since boot), so a pid reused by a later process does not keep a dead process's
 * file alive. A file is stale when its owner, on this host, is not running any more
 * (or is another process with the same pid). Files of other hosts (a home shared over
 * NFS) cannot be checked that way; they go once they have not been written to for a
 * day. A concurrent ingest's files are never touched: its process is alive.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';

const NAME = /^pack-h([0-9a-f]{8})-p(\d+)-s(\d+)-[0-9a-f]+\.tmp$/;
// Written by pgdv before owners were named: pid only.
const OLD_NAME = /^pack-(\d+)-[0-9a-f]+\.tmp$/;

/** How long a temp pack of another host (or of an unknown owner) may sit unwritten. */
export const FOREIGN_TEMP_MAX_AGE_MS = 24 * 3600 * 1000;

export function hostTag(host = hostname()): string {
  return createHash('sha256').update(host).digest('hex').slice(0, 8);
}

/**
 * Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat),
 * or 0 where there is no /proc or the process is gone. The command name (field 2) may
 * hold spaces and parentheses, so the fields are counted after its last ')'.
 */
export function processStart(pid: number | 'self'): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const v = Number(fields[19]);
    return Number.isSafeInteger(v) ? v : 0;
  } catch {
    return 0;
  }
}

let selfStart: number | undefined;

/** A temp pack name owned by this process. */
export function tempPackName(): string {
  selfStart ??= processStart('self');
  return `pack-h${hostTag()}-p${process.pid}-s${selfStart}-${randomBytes(6).toString('hex')}.tmp`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why a temp pack may be removed, or null while its owner may still be writing it. */
export function staleReason(name: string, mtimeMs: number, now = Date.now(), host = hostTag()): string | null {
  const m = NAME.exec(name);
  if (m) {
    const pid = Number(m[2]);
    const start = Number(m[3]);
    if (m[1] !== host) return now - mtimeMs > FOREIGN_TEMP_MAX_AGE_MS ? 'another host, untouched for a day' : null;
    if (!alive(pid)) return `process ${pid} is gone`;
    // start 0: written where /proc was missing; the pid alone has to do.
    const current = processStart(pid);
    if (start !== 0 && current !== 0 && current !== start) return `pid ${pid} now belongs to another process`;
    return null;
  }
  const old = OLD_NAME.exec(name);
  if (old) {
    const pid = Number(old[1]);
    if (!alive(pid)) return `process ${pid} is gone`;
    return now - mtimeMs > FOREIGN_TEMP_MAX_AGE_MS ? 'untouched for a day' : null;
  }
  return null;
}

export interface TempSweep {
  removed: number;
  bytes: number;
}

/**
 * Removes the temp packs in dir that no live process owns. Safe to run while other
 * ingests (in this or other processes) fill their own packs there. A dry run counts
 * what it would remove.
 */
export async function removeStaleTempPacks(dir: string, options: { dryRun?: boolean } = {}): Promise<TempSweep> {
  const out: TempSweep = { removed: 0, bytes: 0 };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return out; // no tmp folder yet
  }
  const now = Date.now();
  for (const name of names) {
    if (!name.startsWith('pack-') || !name.endsWith('.tmp')) continue;
    const file = path.join(dir, name);
    const st = await stat(file).catch(() => null);
    if (!st?.isFile() || staleReason(name, st.mtimeMs, now) === null) continue;
    if (options.dryRun) {
      out.removed++;
      out.bytes += st.size;
      continue;
    }
    try {
      await unlink(file);
      out.removed++;
      out.bytes += st.size;
    } catch {
      // Removed by another sweep at the same moment, or not ours to remove: leave it.
    }
  }
  return out;
}

/** Whether a process with this pid exists on this host (EPERM: it does, as another user's). */
export function processAlive(pid: number | null): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
