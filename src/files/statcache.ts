/**
 * The stat cache of `pgdv add`: what each file looked like (size, mtime, ctime,
 * inode, device) when a successful add last read it, and its content hash, so the
 * next add of the same branch can skip reading files that did not change, as
 * restic and borg do with their parent snapshot.
 *
 * One JSON file per dataset and branch under <home>/cache/files/. It is a local
 * cache: missing, unreadable or from another pgdv, it is ignored and every file is
 * read. A cached hash is used only when all of these hold:
 *
 * - the cache was written for the version that is the branch's head now (an add
 *   from another machine or process moved it: everything is read);
 * - size, mtime, ctime, inode and device all equal the cached ones. mtime
 *   can be set back by a program (touch -d, tar, rsync -t), but ctime cannot: any
 *   write or utimes() sets it to the current time; a file replaced by another
 *   (rename over it) has another inode;
 * - the file was not modified within 2 seconds before the add that cached it read
 *   the tree: a write in the same clock tick as the read leaves size and mtime as
 *   read while the bytes differ (git's "racy" entries), so such entries are kept
 *   but never trusted;
 * - the content is still in dv_files.contents (checked in one query).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { WalkEntry } from './walk.js';

const FORMAT = 1;
/** Files modified less than this before the walk are not trusted next time (clock ticks, coarse timestamps). */
const RACY_MS = 2000;

export interface StatEntry {
  size: number;
  /** Milliseconds with their fraction, as lstat gives them (~100 ns resolution in a double). */
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  hash: string;
  /** Modified too close to the read to be trusted. */
  racy?: boolean;
}

interface CacheFile {
  format: number;
  datasetId: string;
  branch: string;
  /** The version these entries describe (the branch head after the add). */
  versionId: string;
  entries: Record<string, StatEntry>;
}

function cachePath(home: string, datasetId: string, branch: string): string {
  // Branch names are arbitrary text: hex keeps the file name safe.
  return path.join(home, 'cache', 'files', `${datasetId}-${Buffer.from(branch, 'utf8').toString('hex')}.json`);
}

/** The entries for datasetId/branch if they describe `headVersionId`, else none. */
export async function loadStatCache(home: string, datasetId: string, branch: string, headVersionId: string | null): Promise<Map<string, StatEntry>> {
  if (headVersionId === null) return new Map();
  let parsed: CacheFile;
  try {
    parsed = JSON.parse(await readFile(cachePath(home, datasetId, branch), 'utf8')) as CacheFile;
  } catch {
    return new Map();
  }
  if (parsed.format !== FORMAT || parsed.datasetId !== datasetId || parsed.branch !== branch || parsed.versionId !== headVersionId) return new Map();
  return new Map(Object.entries(parsed.entries ?? {}));
}

/** The cached content hash of a walked file, if it may be trusted (see the top of this file). */
export function cachedHash(cache: Map<string, StatEntry>, e: WalkEntry): string | undefined {
  const c = cache.get(e.abs);
  if (!c || c.racy) return undefined;
  if (c.size !== e.size || c.mtimeMs !== e.mtimeMs || c.ctimeMs !== e.ctimeMs || c.ino !== e.ino || c.dev !== e.dev) return undefined;
  return c.hash;
}

/** Writes the entries of the files just added (atomically: a killed write leaves the old cache or none). */
export async function saveStatCache(
  home: string,
  datasetId: string,
  branch: string,
  versionId: string,
  files: { entry: WalkEntry; hash: string }[],
  walkStartedMs: number,
): Promise<void> {
  const entries: Record<string, StatEntry> = {};
  for (const { entry: e, hash } of files) {
    const racy = Math.max(e.mtimeMs, e.ctimeMs) >= walkStartedMs - RACY_MS;
    entries[e.abs] = { size: e.size, mtimeMs: e.mtimeMs, ctimeMs: e.ctimeMs, ino: e.ino, dev: e.dev, hash, ...(racy ? { racy } : {}) };
  }
  const file = cachePath(home, datasetId, branch);
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  const body: CacheFile = { format: FORMAT, datasetId, branch, versionId, entries };
  try {
    await writeFile(tmp, JSON.stringify(body));
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}
