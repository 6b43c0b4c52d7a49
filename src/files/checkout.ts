/**
 * Checkout: writes file rows (path, size, content_hash, mode, link_target) back to a
 * folder. Chunk locations come from PostgreSQL in batches of files; chunks are
 * fetched with ranged reads (PackReader merges adjacent ones), several files at
 * once, each chunk verified against its SHA-256 and each file against its content
 * hash (made from the chunk digests: no second pass over the bytes).
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, readdir, rm, symlink, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { contentHashOf } from '../chunking/content-hash.js';
import type { Db } from '../db/db.js';
import { PgdvError } from '../lib/errors.js';
import { ChunkReadError, PackReader, type ChunkRef } from '../packs/index.js';
import { StoreError, type ObjectStore } from '../store/index.js';
import { storeError } from './store.js';

export interface FileRow {
  path: string;
  size: number;
  content_hash: string | null;
  mode: number | null;
  link_target: string | null;
}

export interface CheckoutProgress {
  files: number;
  bytes: number;
}

export interface CheckoutOptions {
  db: Db;
  store: ObjectStore;
  out: string;
  force?: boolean;
  /** Files written at once (default 4). */
  concurrency?: number;
  /** What the error names as the source ("dataset images at main"). */
  label?: string;
  onProgress?: (p: CheckoutProgress) => void;
}

export interface CheckoutStats {
  files: number;
  bytes: number;
  links: number;
}

/** Chunk locations of many contents in one query. */
export async function chunkRefs(db: Db, hashes: string[]): Promise<Map<string, ChunkRef[]>> {
  const map = new Map<string, ChunkRef[]>();
  for (const h of hashes) map.set(h, []);
  if (hashes.length === 0) return map;
  const rows = await db.query<{ content_hash: string; chunk_hash: string; pack_id: string; offset: string; length: number }>(
    `SELECT cc.content_hash, cc.chunk_hash, c.pack_id, c."offset", c.length
     FROM dv_files.content_chunks cc JOIN dv_files.chunks c ON c.hash = cc.chunk_hash
     WHERE cc.content_hash = ANY($1::text[]) ORDER BY cc.content_hash, cc.seq`,
    [hashes],
  );
  for (const r of rows) map.get(r.content_hash)!.push({ hash: r.chunk_hash, packId: r.pack_id, offset: Number(r.offset), length: r.length });
  return map;
}

/** Throws unless every content is known with its chunks (a version must never point to a missing content). */
export async function contentSizes(db: Db, hashes: string[]): Promise<Map<string, { size: number; chunkCount: number }>> {
  const rows = await db.query<{ hash: string; size: string; chunk_count: number }>(
    'SELECT hash, size, chunk_count FROM dv_files.contents WHERE hash = ANY($1::text[])',
    [hashes],
  );
  return new Map(rows.map((r) => [r.hash, { size: Number(r.size), chunkCount: r.chunk_count }]));
}

/**
 * How a content is verified. Its hash is normally made from its chunk list
 * (content-hash.ts): then the chunk list from the index is checked against it before
 * any byte is read, and each chunk against its own SHA-256 as it arrives (PackReader),
 * which verifies the file with one hash of each byte. A content stored before that
 * definition (hash = plain SHA-256 of the bytes) is hashed as it streams instead.
 */
function verifier(refs: ChunkRef[], hash: string, size: number, name: string): { plain?: Hash } {
  if (contentHashOf(refs.map((r) => r.hash)) !== hash) return { plain: createHash('sha256') };
  const total = refs.reduce((a, r) => a + r.length, 0);
  if (total !== size) {
    throw new PgdvError(`${name} is corrupt: its chunks give ${total} bytes, expected ${size}`, { kind: 'integrity', hint: 'Run `pgdv doctor` and re-add the file' });
  }
  return {};
}

/**
 * Streams one content into `dest`, verifying every chunk and the whole file (see
 * verifier); `name` is what errors call the file.
 */
export async function streamContent(reader: PackReader, refs: ChunkRef[], hash: string, size: number, dest: Writable, name: string): Promise<void> {
  const { plain } = verifier(refs, hash, size, name);
  let written = 0;
  async function* bytes(): AsyncGenerator<Buffer> {
    try {
      for await (const { data } of reader.readChunks(refs)) {
        plain?.update(data);
        written += data.length;
        yield data;
      }
    } catch (e) {
      throw readError(e, name);
    }
    checkWhole(name, written, size, plain?.digest('hex') ?? hash, hash);
  }
  await pipeline(Readable.from(bytes()), dest);
}

/** A content read to its end: its size and (plain-hashed contents) its hash must match. */
function checkWhole(name: string, written: number, size: number, got: string, hash: string): void {
  if (written !== size || got !== hash) {
    throw new PgdvError(`${name} is corrupt: its chunks give ${written} bytes with hash ${got}, expected ${size} bytes with ${hash}`, {
      kind: 'integrity',
      hint: 'Run `pgdv doctor` and re-add the file',
    });
  }
}

/**
 * Writes one content into an open file, verified as streamContent does: each group
 * of chunks is one read from the store (the filesystem store reads a whole run of
 * adjacent chunks with one call into `scratch`) and one writev, with no stream and
 * no copy per chunk in between.
 */
export async function writeContent(
  reader: PackReader,
  refs: ChunkRef[],
  hash: string,
  size: number,
  fh: FileHandle,
  name: string,
  scratch: { buf?: Buffer } = {},
): Promise<void> {
  const { plain } = verifier(refs, hash, size, name);
  let written = 0;
  try {
    for await (const group of reader.readGroups(refs, { scratch })) {
      for (const b of group) {
        plain?.update(b);
        written += b.length;
      }
      await writevAll(fh, group);
    }
  } catch (e) {
    throw readError(e, name);
  }
  checkWhole(name, written, size, plain?.digest('hex') ?? hash, hash);
}

/** writev of every buffer, however many and however the kernel splits the writes. */
async function writevAll(fh: FileHandle, bufs: Buffer[]): Promise<void> {
  for (let i = 0; i < bufs.length; ) {
    // At most 1024 buffers per call (IOV_MAX on Linux).
    const part = bufs.slice(i, i + 1024);
    i += part.length;
    let done = (await fh.writev(part)).bytesWritten;
    // A short write: the rest one buffer at a time.
    for (const b of part) {
      if (done >= b.length) {
        done -= b.length;
        continue;
      }
      let off = done;
      done = 0;
      while (off < b.length) off += (await fh.write(b, off, b.length - off)).bytesWritten;
    }
  }
}

function readError(e: unknown, name: string): unknown {
  if (e instanceof ChunkReadError) {
    return new PgdvError(`cannot check out ${name}: ${e.message}`, { kind: 'integrity', cause: e });
  }
  if (e instanceof StoreError) return storeError(e, `cannot check out ${name}`);
  return e;
}

async function refuseNonEmpty(out: string, force: boolean | undefined): Promise<void> {
  let names: string[];
  try {
    names = await readdir(out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new PgdvError(`checkout folder ${out} is a file`, { hint: 'Choose a folder with --out' });
    throw new PgdvError(`cannot read checkout folder ${out} (${code})`, { kind: 'io', hint: 'Check its permissions' });
  }
  if (names.length > 0 && !force) {
    throw new PgdvError(`checkout folder ${out} is not empty (${names.length} entries)`, {
      kind: 'conflict',
      hint: 'Choose an empty or new folder, or pass --force to write over it',
    });
  }
}

function diskError(e: unknown, file: string): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new PgdvError(`the disk is full: could not write ${file}`, { kind: 'io', hint: 'Free some space (or choose another --out) and run the checkout again', cause: e });
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new PgdvError(`cannot write ${file} (${code})`, { kind: 'io', hint: 'Choose a writable --out folder', cause: e });
  }
  return e;
}

/** Refuses dataset paths that would escape the checkout folder. */
function target(out: string, rel: string): string {
  const p = path.resolve(out, ...rel.split('/'));
  if (rel.startsWith('/') || rel.split('/').includes('..') || !p.startsWith(path.resolve(out) + path.sep)) {
    throw new PgdvError(`dataset path ${JSON.stringify(rel)} would be written outside ${out}`, { kind: 'integrity', hint: 'The version is damaged; re-add it' });
  }
  return p;
}

/** Writes the rows (a version's files) under opts.out. */
export async function checkoutRows(rows: AsyncIterable<FileRow> | Iterable<FileRow>, opts: CheckoutOptions): Promise<CheckoutStats> {
  const out = path.resolve(opts.out);
  await refuseNonEmpty(out, opts.force);
  try {
    await mkdir(out, { recursive: true });
  } catch (e) {
    throw diskError(e, out);
  }
  const reader = new PackReader(opts.store);
  const stats: CheckoutStats = { files: 0, bytes: 0, links: 0 };
  const concurrency = opts.concurrency ?? 4;
  // One read buffer per concurrent file, reused from file to file.
  const scratches = Array.from({ length: concurrency }, () => ({}) as { buf?: Buffer });
  const made = new Set<string>();
  const ensureDir = async (dir: string): Promise<void> => {
    if (made.has(dir)) return;
    await mkdir(dir, { recursive: true });
    made.add(dir);
  };
  const label = opts.label ? ` of ${opts.label}` : '';

  const writeOne = async (row: FileRow, refs: ChunkRef[], scratch: { buf?: Buffer }): Promise<void> => {
    const file = target(out, row.path);
    try {
      await ensureDir(path.dirname(file));
      if (row.link_target !== null && row.link_target !== undefined) {
        if (opts.force) await unlink(file).catch(() => undefined);
        await symlink(row.link_target, file);
        stats.links++;
        return;
      }
      if (opts.force) await rm(file, { force: true, recursive: true }).catch(() => undefined);
      const fh = await open(file, 'wx', (row.mode ?? 0o644) & 0o777);
      try {
        await writeContent(reader, refs, row.content_hash!, Number(row.size), fh, `${row.path}${label}`, scratch);
        // open's mode went through the umask; set the recorded bits exactly.
        if (row.mode !== null) await fh.chmod(row.mode & 0o7777);
      } catch (e) {
        await fh.close().catch(() => undefined);
        await unlink(file).catch(() => undefined);
        throw e;
      }
      await fh.close();
    } catch (e) {
      throw diskError(e, file);
    }
    stats.files++;
    stats.bytes += Number(row.size);
    opts.onProgress?.({ files: stats.files, bytes: stats.bytes });
  };

  // Batches of files: one query for their chunk lists, then `concurrency` writers.
  const BATCH = 256;
  let batch: FileRow[] = [];
  const runBatch = async (rowsNow: FileRow[]): Promise<void> => {
    const hashes = [...new Set(rowsNow.filter((r) => r.link_target === null || r.link_target === undefined).map((r) => r.content_hash!))];
    const refs = await chunkRefs(opts.db, hashes);
    const sizes = await contentSizes(opts.db, hashes);
    for (const h of hashes) {
      const s = sizes.get(h);
      if (!s || refs.get(h)!.length !== s.chunkCount) {
        const r = rowsNow.find((x) => x.content_hash === h)!;
        throw new PgdvError(`${r.path}${label}: its content ${h} is not in the chunk index`, { kind: 'integrity', hint: 'Re-add the file' });
      }
    }
    let i = 0;
    const workers = Array.from({ length: Math.min(concurrency, rowsNow.length) }, async (_, w) => {
      while (i < rowsNow.length) {
        const row = rowsNow[i++]!;
        await writeOne(row, refs.get(row.content_hash ?? '') ?? [], scratches[w]!);
      }
    });
    const results = await Promise.allSettled(workers);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  };
  for await (const row of rows) {
    batch.push(row);
    if (batch.length >= BATCH) {
      await runBatch(batch);
      batch = [];
    }
  }
  if (batch.length) await runBatch(batch);
  return stats;
}

/** A pass-through that counts bytes (progress of cat). */
export function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}
