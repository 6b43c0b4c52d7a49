/**
 * PackWriter: gathers new chunks into pack objects of tens of MiB, because few large
 * objects keep S3 request counts (and costs) down, while PostgreSQL keeps the index
 * chunk → (pack, offset, length).
 *
 * Pack layout (format 1): the chunks' bytes back to back, then a footer so a pack can
 * be re-indexed without the database (disaster recovery, verify):
 *
 *   chunk bytes ... | footer JSON | footer length (uint32 LE) | magic "PGDVPAK1"
 *
 * footer JSON = {"v":1,"chunks":[["<sha256 hex>",offset,length],...]}.
 * The pack's key is packs/<SHA-256 of its footer (JSON + trailer)>. The footer lists
 * every chunk's SHA-256, offset and length, so it names the pack's bytes as surely
 * as a hash of all of them would (every chunk is verified against its hash on read),
 * without a third SHA-256 pass over every new byte: the chunker already hashed each
 * chunk and the file. Still content-addressed: an upload retried after a crash lands
 * on the same key and is harmless. The whole-pack SHA-256 is computed only for
 * stores that need it as an upload checksum (S3's x-amz-checksum-sha256); the
 * filesystem store takes the pack by rename.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { StoreError, type ObjectStore } from '../store/types.js';
import { tempPackName } from './temp.js';

export const PACK_MAGIC = 'PGDVPAK1';
export const PACK_TRAILER_SIZE = 4 + PACK_MAGIC.length;
export const DEFAULT_PACK_TARGET_SIZE = 32 * 1024 * 1024;
export const PACK_KEY_PREFIX = 'packs/';

export function packKey(packId: string): string {
  return `${PACK_KEY_PREFIX}${packId}`;
}

/** A pack's id: the SHA-256 of its footer (footer JSON, length and magic), hex. */
export function packIdOf(footer: Uint8Array): string {
  return createHash('sha256').update(footer).digest('hex');
}

export interface PackEntry {
  /** SHA-256 of the chunk, lowercase hex. */
  hash: string;
  offset: number;
  length: number;
}

export interface SealedPack {
  /** SHA-256 of the pack's footer (hex), which lists every chunk's hash; its key is packs/<packId>. */
  packId: string;
  /** Size of the pack object in bytes, footer included. */
  size: number;
  entries: PackEntry[];
}

export interface PackWriterOptions {
  store: ObjectStore;
  /** Folder for the pack being filled (one temp file at a time per writer, plus those uploading). */
  tempDir: string;
  /** Seal a pack once its chunk bytes reach this size (default 32 MiB). */
  targetSize?: number;
  /** Packs uploading concurrently while the next one fills (default 2). */
  maxUploads?: number;
  /**
   * Called once per sealed pack, after its upload succeeded, in sealing order. The
   * caller records the index rows here; a rejection fails the writer. add() waits for
   * it, which gives backpressure.
   */
  onPack?: (pack: SealedPack) => void | Promise<void>;
  /**
   * Called once per sealed pack before its upload starts (awaited; a rejection fails
   * the writer and nothing is uploaded). Ingest records the pack here, so a pack that
   * reaches the store but is never registered (a crash in between) stays findable.
   */
  onSeal?: (pack: SealedPack) => void | Promise<void>;
}

interface OpenPack {
  file: string;
  fh: FileHandle;
  /** Whole-pack SHA-256, only for stores that send it as an upload checksum (no putFile). */
  hash: ReturnType<typeof createHash> | undefined;
  size: number;
  entries: PackEntry[];
  /** Chunks not yet written to the temp file: small chunks are written in ~1 MiB pieces, not one write each. */
  pending: Uint8Array[];
  pendingBytes: number;
  /** Release callbacks of pending chunks (PackChunk.release), called once they are written. */
  releases: (() => void)[];
}

/** A chunk to append: its SHA-256 (hex) and bytes, and what to call once the bytes are no longer needed. */
export interface PackChunk {
  hash: string;
  data: Uint8Array;
  /** Called once the bytes are written to the pack (or the chunk is skipped as already stored). */
  release?: () => void;
}

const WRITE_BATCH = 1024 * 1024;

async function writeAll(fh: FileHandle, bufs: Uint8Array[]): Promise<void> {
  if (bufs.length > 1 && bufs.length <= 64) {
    // Gathered write of a few large chunks: no copy into one buffer first.
    const total = bufs.reduce((a, b) => a + b.length, 0);
    const { bytesWritten } = await fh.writev(bufs);
    if (bytesWritten === total) return;
    bufs = [Buffer.concat(bufs).subarray(bytesWritten)];
  }
  const data = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
  let off = 0;
  while (off < data.length) off += (await fh.write(data, off, data.length - off)).bytesWritten;
}

export class PackWriter {
  private readonly store: ObjectStore;
  private readonly tempDir: string;
  private readonly targetSize: number;
  private readonly maxUploads: number;
  private readonly onPack?: (pack: SealedPack) => void | Promise<void>;
  private readonly onSeal?: (pack: SealedPack) => void | Promise<void>;
  private current: OpenPack | undefined;
  /** Per sealed pack: its upload then its onPack call; oldest first. */
  private pending: Promise<void>[] = [];
  /** Serializes onPack calls in sealing order. */
  private callbackChain: Promise<void> = Promise.resolve();
  private failure: unknown;
  private readonly sealed: SealedPack[] = [];
  /**
   * Chunks written by this writer, so a chunk repeated within one ingest is stored
   * once (~100 bytes per chunk: about 1.5 MB per GiB of new data at 64 KiB chunks).
   */
  private readonly seen = new Set<string>();
  private finished = false;
  private lock: Promise<void> = Promise.resolve();

  constructor(options: PackWriterOptions) {
    this.store = options.store;
    this.tempDir = options.tempDir;
    this.targetSize = options.targetSize ?? DEFAULT_PACK_TARGET_SIZE;
    this.maxUploads = options.maxUploads ?? 2;
    this.onPack = options.onPack;
    this.onSeal = options.onSeal;
    if (!Number.isSafeInteger(this.targetSize) || this.targetSize <= 0) {
      throw new RangeError(`pack targetSize=${this.targetSize} is invalid: give a positive byte count (default ${DEFAULT_PACK_TARGET_SIZE})`);
    }
  }

  /**
   * Appends a chunk (its hash must be the SHA-256 of data: the caller got both from
   * the chunker). Returns false if this writer already stored that chunk.
   */
  async add(hash: string, data: Uint8Array): Promise<boolean> {
    return (await this.addMany([{ hash, data }])).chunks === 1;
  }

  /**
   * Appends chunks in order, skipping those this writer already stored; returns how
   * many it stored and their bytes. One call for a batch costs one promise, not one
   * per chunk (100,000 small files are 100,000 chunks).
   */
  addMany(chunks: readonly PackChunk[]): Promise<{ chunks: number; bytes: number }> {
    // Serialized: several files may be chunked concurrently (ChunkPool) and feed one
    // writer; entries' offsets must match the order bytes land in the pack file.
    const run = this.lock.then(() => this.addNow(chunks));
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async addNow(chunks: readonly PackChunk[]): Promise<{ chunks: number; bytes: number }> {
    let stored = 0;
    let bytes = 0;
    for (const { hash, data, release } of chunks) {
      this.throwIfFailed();
      if (this.finished) throw new Error('PackWriter.add called after finish: create a new PackWriter');
      if (this.seen.has(hash)) {
        release?.();
        continue;
      }
      this.seen.add(hash);
      const p = this.current ?? (this.current = await this.openPack());
      p.pending.push(data);
      if (release) p.releases.push(release);
      p.pendingBytes += data.length;
      if (p.pendingBytes >= WRITE_BATCH) await this.drain(p);
      p.hash?.update(data);
      p.entries.push({ hash, offset: p.size, length: data.length });
      p.size += data.length;
      stored++;
      bytes += data.length;
      if (p.size >= this.targetSize) await this.seal();
    }
    return { chunks: stored, bytes };
  }

  /** Seals the last pack, waits for every upload and callback; returns all packs sealed. */
  async finish(): Promise<SealedPack[]> {
    await this.lock;
    if (!this.finished) {
      this.finished = true;
      if (this.current) await this.seal();
      await Promise.allSettled(this.pending);
    }
    this.throwIfFailed();
    return this.sealed;
  }

  /** Drops the pack being filled (its temp file) after a failure; uploads in flight still finish. */
  async abort(): Promise<void> {
    await this.lock;
    this.finished = true;
    const p = this.current;
    this.current = undefined;
    if (p) {
      for (const r of p.releases) r();
      await p.fh.close().catch(() => undefined);
      await unlink(p.file).catch(() => undefined);
    }
    await Promise.allSettled(this.pending);
  }

  private async openPack(): Promise<OpenPack> {
    await mkdir(this.tempDir, { recursive: true });
    // Named after its owner (pid, start time), so a later ingest can tell a killed run's leftovers from a live one's.
    const file = path.join(this.tempDir, tempPackName());
    const fh = await open(file, 'wx');
    return { file, fh, hash: this.store.putFile ? undefined : createHash('sha256'), size: 0, entries: [], pending: [], pendingBytes: 0, releases: [] };
  }

  private async drain(p: OpenPack): Promise<void> {
    const bufs = p.pending;
    const releases = p.releases;
    p.pending = [];
    p.pendingBytes = 0;
    p.releases = [];
    try {
      if (bufs.length) await writeAll(p.fh, bufs);
    } finally {
      for (const r of releases) r();
    }
  }

  private async seal(): Promise<void> {
    const p = this.current!;
    this.current = undefined;
    await this.drain(p);
    const json = Buffer.from(JSON.stringify({ v: 1, chunks: p.entries.map((e) => [e.hash, e.offset, e.length]) }));
    const trailer = Buffer.alloc(PACK_TRAILER_SIZE);
    trailer.writeUInt32LE(json.length, 0);
    trailer.write(PACK_MAGIC, 4, 'latin1');
    const footer = Buffer.concat([json, trailer]);
    await p.fh.write(footer);
    p.hash?.update(footer);
    await p.fh.close();
    const pack: SealedPack = { packId: packIdOf(footer), size: p.size + footer.length, entries: p.entries };
    const bodySha256 = p.hash?.digest('hex');

    // Bound the packs on local disk and in flight: wait for the oldest to be
    // uploaded and called back (so a slow onPack slows add() down too).
    while (this.pending.length >= this.maxUploads) {
      await this.pending.shift()!.catch(() => undefined);
      if (this.failure !== undefined) {
        await unlink(p.file).catch(() => undefined);
        throw this.failure;
      }
    }
    if (this.onSeal) {
      try {
        await this.onSeal(pack);
      } catch (e) {
        await unlink(p.file).catch(() => undefined);
        this.fail(e);
        throw e;
      }
    }
    const upload = this.upload(p.file, pack, bodySha256);
    upload.catch((e: unknown) => this.fail(e));
    const done = this.callbackChain.then(async () => {
      const uploaded = await upload;
      if (this.failure !== undefined) return;
      this.sealed.push(uploaded);
      if (this.onPack) await this.onPack(uploaded);
    });
    done.catch((e: unknown) => this.fail(e));
    this.callbackChain = done.catch(() => undefined);
    this.pending.push(done);
  }

  private async upload(file: string, pack: SealedPack, bodySha256: string | undefined): Promise<SealedPack> {
    try {
      // A factory, not a stream: the store can then retry the upload from the start.
      if (this.store.putFile) {
        // The filesystem store takes the temp file by rename: no second read and hash of every byte.
        await this.store.putFile(packKey(pack.packId), file, { size: pack.size });
      } else {
        // The whole-pack SHA-256 computed while writing: S3 verifies it on arrival.
        await this.store.put(packKey(pack.packId), () => createReadStream(file), { size: pack.size, sha256: bodySha256 });
      }
      return pack;
    } catch (e) {
      // The store already retried what it could: name the pack and the store in the one line a user sees.
      if (!(e instanceof StoreError)) throw e;
      const where = this.store.describe().replace(/\?.*$/, '');
      throw new StoreError(e.code, `uploading pack ${pack.packId.slice(0, 12)} to ${where} failed: ${e.message}`, e.key, { cause: e });
    } finally {
      await unlink(file).catch(() => undefined);
    }
  }

  private fail(e: unknown): void {
    this.failure ??= e;
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
