/**
 * Filesystem object store: the embedded default (./.pgdv/objects) and a plain
 * folder on a NAS. Objects are files; a put writes a temp file in the target
 * folder, fsyncs it and renames it into place, so a reader (or a crash) sees either
 * the whole object or none.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Readable } from 'node:stream';
import {
  type GetRange,
  type ObjectInfo,
  type ObjectStore,
  type ProbeResult,
  type PutBody,
  type PutOptions,
  checkBody,
  runProbe,
  StoreError,
  validateKey,
  validateRange,
} from './types.js';

const TEMP_PREFIX = '.tmp-';

export interface FsStoreOptions {
  /** Create the root folder if missing (default true). */
  create?: boolean;
}

export class FsStore implements ObjectStore {
  readonly root: string;
  private readonly create: boolean;

  constructor(root: string, options: FsStoreOptions = {}) {
    this.root = path.resolve(root);
    this.create = options.create ?? true;
  }

  describe(): string {
    return pathToFileURL(this.root).href;
  }

  /**
   * packs/abcdef… → <root>/packs/ab/abcdef…: one fan-out level from the first two
   * characters of the last segment keeps folders to a few hundred entries with
   * hash-named objects. Every file sits in exactly one fan-out folder, which is what
   * lets list() map paths back to keys.
   */
  pathOf(key: string): string {
    validateKey(key);
    const segs = key.split('/');
    const name = segs.pop()!;
    const fan = name.length >= 2 ? name.slice(0, 2) : `${name}_`;
    return path.join(this.root, ...segs, fan, name);
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<void> {
    const file = this.pathOf(key);
    const dir = path.dirname(file);
    await this.ensureDir(dir, key);
    const tmp = path.join(dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}-${path.basename(file)}`);
    let fh;
    try {
      fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
    } catch (e) {
      throw mapFsError(e, key, 'write');
    }
    try {
      const hash = createHash('sha256');
      let size = 0;
      const source: AsyncIterable<Uint8Array> | Uint8Array[] =
        body instanceof Uint8Array ? [body] : typeof body === 'function' ? body() : (body as AsyncIterable<Uint8Array>);
      for await (const piece of source) {
        hash.update(piece);
        size += piece.length;
        // fh.write may write less than asked only on errors it then throws; loop anyway.
        let off = 0;
        while (off < piece.length) off += (await fh.write(piece, off, piece.length - off)).bytesWritten;
      }
      checkBody(key, size, hash.digest('hex'), options);
      await fh.sync();
      await fh.close();
      fh = undefined;
      await rename(tmp, file);
      await fsyncDir(dir);
    } catch (e) {
      await fh?.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw e instanceof StoreError ? e : mapFsError(e, key, 'write');
    }
  }

  /**
   * Moves a finished local file into the store by rename (no copy, no second read):
   * PackWriter's sealed packs, whose size and SHA-256 it computed while writing them.
   * The file is fsynced first, so the object is durable once this resolves. Falls back
   * to put() when the file is on another filesystem.
   */
  async putFile(key: string, source: string, options: PutOptions = {}): Promise<void> {
    const file = this.pathOf(key);
    const dir = path.dirname(file);
    await this.ensureDir(dir, key);
    try {
      const fh = await open(source, 'r+');
      try {
        const st = await fh.stat();
        if (options.size !== undefined && st.size !== options.size) {
          throw new StoreError('checksum', `upload of ${key} found ${st.size} bytes in ${source} but ${options.size} were declared: the file changed; retry`, key);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(source, file);
      await fsyncDir(dir);
    } catch (e) {
      if (isErrno(e, 'EXDEV')) {
        const { createReadStream } = await import('node:fs');
        await this.put(key, () => createReadStream(source), options);
        await unlink(source).catch(() => undefined);
        return;
      }
      throw e instanceof StoreError ? e : mapFsError(e, key, 'write');
    }
  }

  async get(key: string, range?: GetRange): Promise<Readable> {
    validateRange(key, range);
    const file = this.pathOf(key);
    try {
      // Open first so a missing object is a rejected promise, not a late stream error.
      const fh = await open(file, 'r');
      return fh.createReadStream({ start: range?.start, end: range?.end, autoClose: true });
    } catch (e) {
      throw mapFsError(e, key, 'read');
    }
  }

  /**
   * Reads into `into` from `start` without a stream: one read call for a whole range
   * (checkout reads each file's chunks this way, then writes them with one writev).
   */
  async readInto(key: string, start: number, into: Uint8Array): Promise<number> {
    validateRange(key, { start, end: start + Math.max(into.length, 1) - 1 });
    let fh;
    try {
      fh = await open(this.pathOf(key), 'r');
    } catch (e) {
      throw mapFsError(e, key, 'read');
    }
    try {
      let n = 0;
      while (n < into.length) {
        const { bytesRead } = await fh.read(into, n, into.length - n, start + n);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      return n;
    } catch (e) {
      throw mapFsError(e, key, 'read');
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async head(key: string): Promise<{ size: number } | null> {
    try {
      const s = await stat(this.pathOf(key));
      return { size: s.size };
    } catch (e) {
      if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) return null;
      throw mapFsError(e, key, 'read');
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(key);
    try {
      await unlink(file);
    } catch (e) {
      if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) return;
      throw mapFsError(e, key, 'delete');
    }
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    // Walk only the folder the prefix names (prefix "packs/ab" walks <root>/packs).
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash >= 0 ? prefix.slice(0, slash) : '';
    if (dirKey) validateKey(dirKey);
    yield* this.walk(path.join(this.root, ...(dirKey ? dirKey.split('/') : [])), dirKey, prefix);
  }

  private async *walk(dir: string, dirKey: string, prefix: string): AsyncGenerator<ObjectInfo> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return;
      throw mapFsError(e, dirKey || '(root)', 'list');
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const ent of entries) {
      if (ent.name.startsWith('.')) continue; // temp files of puts in progress
      const full = path.join(dir, ent.name);
      if (ent.isDirectory()) {
        const sub = dirKey ? `${dirKey}/${ent.name}` : ent.name;
        // A fan-out folder holds files only; a key folder may hold both.
        yield* this.walk(full, sub, prefix);
      } else if (ent.isFile()) {
        // The file's parent folder is its fan-out folder: drop it to get the key.
        const parentKey = dirKey.includes('/') ? dirKey.slice(0, dirKey.lastIndexOf('/')) : '';
        const key = parentKey ? `${parentKey}/${ent.name}` : ent.name;
        if (!key.startsWith(prefix)) continue;
        const s = await stat(full).catch(() => null);
        if (s) yield { key, size: s.size };
      }
    }
  }

  probe(): Promise<ProbeResult> {
    return runProbe(this);
  }

  private async ensureDir(dir: string, key: string): Promise<void> {
    if (!this.create) {
      try {
        await stat(this.root);
      } catch {
        throw new StoreError('no_bucket', `store folder ${this.root} does not exist: create it or run pgdv init`, key);
      }
    }
    try {
      await mkdir(dir, { recursive: true });
    } catch (e) {
      throw mapFsError(e, key, 'write');
    }
  }

  /** Removes temp files left by interrupted puts (older than maxAgeMs). */
  async removeStaleTemp(maxAgeMs = 24 * 3600 * 1000): Promise<number> {
    let removed = 0;
    const visit = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const ent of entries) {
        const full = path.join(dir, ent.name);
        if (ent.isDirectory()) await visit(full);
        else if (ent.name.startsWith(TEMP_PREFIX)) {
          const s = await stat(full).catch(() => null);
          if (s && Date.now() - s.mtimeMs > maxAgeMs) {
            await rm(full, { force: true });
            removed++;
          }
        }
      }
    };
    await visit(this.root);
    return removed;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  // Makes the rename itself durable. Some filesystems refuse fsync on a folder; the
  // data is still safe there, so that is not an error.
  const fh = await open(dir, 'r').catch(() => null);
  if (!fh) return;
  await fh.sync().catch(() => undefined);
  await fh.close();
}

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code;
}

function mapFsError(e: unknown, key: string, op: 'read' | 'write' | 'delete' | 'list'): StoreError {
  const code = (e as NodeJS.ErrnoException)?.code;
  const msg = (e as Error)?.message ?? String(e);
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new StoreError('not_found', `object ${key} not found in the store: it was never written or was deleted (run pgdv verify)`, key, { cause: e });
    case 'ENOSPC':
    case 'EDQUOT':
      return new StoreError('disk_full', `no space left to ${op} ${key}: free disk space or move the store`, key, { cause: e });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new StoreError('auth', `permission denied to ${op} ${key} (${code}): check the store folder's owner and mode`, key, { cause: e });
    default:
      return new StoreError('io', `${op} of ${key} failed: ${msg}`, key, { cause: e });
  }
}
