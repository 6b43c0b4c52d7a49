/**
 * The chunking loop of a ChunkPool worker: a file is read, a few hundred KiB at a
 * time, straight into a GearScanner's region (WebAssembly memory, where the boundary
 * scan runs); each chunk is hashed in place while still in the CPU's cache, and the
 * file's content hash is built from the chunk digests (content-hash.ts), so every
 * byte is read once, scanned over ~29% of it and hashed once. A full region's chunks
 * are copied, each right after it is hashed, into a region of a SharedArrayBuffer
 * ring that the main thread reads the chunks from as views, and gives back once
 * done with them.
 *
 * Why this shape, measured in memory on one core (bench/files.ts section 4):
 * - copying each region into a fresh transferable buffer instead of a reused ring
 *   costs page faults on every byte, as much as the SHA-256 itself (~34% of raw
 *   SHA-256 speed instead of ~65%);
 * - reading straight into shared WebAssembly memory and handing that out (no copy at
 *   all) halves the scan's speed: V8's code for loads from shared memory is slower,
 *   and the scan is all loads.
 *
 *   const ring = new RegionRing(16, REGION);      // one per thread; its memory is shared
 *   const rc = new RegionChunker(ring, options);
 *   await rc.open();
 *   for (let eof = false; !eof; ) {
 *     const n = read(rc.buf, rc.fill, READ);      // a piece into rc.buf[rc.fill, ...)
 *     eof = n === 0;
 *     rc.filled(n);
 *     rc.cut(eof);                                // scan, hash, copy into the ring while in cache
 *     if (!eof && rc.fill < rc.buf.length) continue;
 *     const part = rc.take(eof);                  // the ring region now belongs to the reader,
 *     if (part) hand(part);                       // ...who calls ring.release(part.region)
 *     if (!eof) await rc.advance();
 *   }
 *   rc.close();
 *
 * The boundaries are exactly Chunker's (same rule: cut while at least maxSize bytes
 * are buffered, then the rest at end of file), which test/chunker.test.ts checks.
 */
import { createHash, hash as oneShotHash, type Hash } from 'node:crypto';
import { ContentHasher } from './content-hash.js';
import { resolveChunkerOptions, type ChunkerOptions, type ChunkerParams, type FileSummary } from './fastcdc.js';
import { GearScanner } from './gear.js';

/** Region size: at least 2 × maxSize, so a region always yields a chunk before it is full. */
export const REGION = 4 * 1024 * 1024;
/** Bytes read at a time into a region: small enough to stay in L2 cache until scanned and hashed. */
export const READ = 256 * 1024;

/** The region size for these chunker options. */
export function regionSize(options?: ChunkerOptions): number {
  return Math.max(REGION, 2 * resolveChunkerOptions(options).maxSize);
}

export interface RegionChunk {
  /** Offset of the chunk in the file. */
  offset: number;
  /** Where the chunk starts in its region. */
  start: number;
  length: number;
  /** SHA-256 of the chunk, lowercase hex. */
  hash: string;
}

/** `count` regions of `size` bytes of one SharedArrayBuffer, handed out one at a time. */
export class RegionRing {
  readonly memory: SharedArrayBuffer;
  private readonly free: number[] = [];
  private readonly waiters: ((region: number) => void)[] = [];

  constructor(
    readonly count: number,
    readonly size: number,
  ) {
    this.memory = new SharedArrayBuffer(count * size);
    for (let i = count - 1; i >= 0; i--) this.free.push(i);
  }

  /** A free region (waits until one is released). */
  acquire(): Promise<number> {
    const r = this.free.pop();
    if (r !== undefined) return Promise.resolve(r);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(region: number): void {
    const w = this.waiters.shift();
    if (w) w(region);
    else this.free.push(region);
  }

  /** Region `region`'s bytes. */
  view(region: number): Buffer {
    return Buffer.from(this.memory, region * this.size, this.size);
  }
}

/** The scanner of this thread: a thread runs one RegionChunker at a time (a worker chunks one file at a time). */
let shared: GearScanner | undefined;

export class RegionChunker {
  readonly params: ChunkerParams;
  /** The region to read into, at fill. */
  readonly buf: Buffer;
  /** Valid bytes in buf. */
  fill = 0;
  private readonly scanner: GearScanner;
  /** Chunked up to here in buf. */
  private pos = 0;
  /** Chunks cut in buf, not yet handed out. */
  private chunks: RegionChunk[] = [];
  /** The ring region the chunks are copied into, at their offsets in buf. */
  private region = -1;
  private out: Buffer = Buffer.alloc(0);
  /** File offset of buf[0]. */
  private base = 0;
  private chunkCount = 0;
  private readonly content = new ContentHasher();
  private readonly plain: Hash | undefined;

  /** plainSha256: also the plain SHA-256 of the whole file (a second pass; blobs only). */
  constructor(
    private readonly ring: RegionRing,
    options?: ChunkerOptions,
    plainSha256 = false,
  ) {
    this.params = resolveChunkerOptions(options);
    if (ring.size < 2 * this.params.maxSize) throw new RangeError(`region size ${ring.size} is below 2 × maxSize (${this.params.maxSize})`);
    if (!shared || shared.capacity < ring.size) shared = new GearScanner(ring.size);
    this.scanner = shared;
    this.buf = shared.buf.subarray(0, ring.size);
    this.plain = plainSha256 ? createHash('sha256') : undefined;
  }

  /** Takes a ring region for the first chunks (waits for one). */
  async open(): Promise<void> {
    this.region = await this.ring.acquire();
    this.out = this.ring.view(this.region);
  }

  /** Records n more bytes read into buf at fill. */
  filled(n: number): void {
    this.plain?.update(this.buf.subarray(this.fill, this.fill + n));
    this.fill += n;
  }

  /**
   * Cuts and hashes every chunk that can be cut now (all of them at eof) and copies
   * each into the ring region right after hashing it, while it is still in cache
   * (one copy of the whole region at the end measured ~15 points of raw SHA-256
   * speed slower); take() hands them out. Called after each read of a few hundred
   * KiB, so bytes are scanned and hashed while still in cache too.
   */
  cut(eof: boolean): void {
    const p = this.params;
    const buf = this.buf;
    const out = this.out;
    const fill = this.fill;
    let pos = this.pos;
    while (fill - pos >= p.maxSize || (eof && pos < fill)) {
      const end = this.scanner.cut(pos, fill, p);
      const chunk = buf.subarray(pos, end);
      const digest = oneShotHash('sha256', chunk, 'buffer') as unknown as Buffer;
      out.set(chunk, pos);
      this.content.add(digest);
      this.chunks.push({ offset: this.base + pos, start: pos, length: end - pos, hash: digest.toString('hex') });
      pos = end;
    }
    this.pos = pos;
  }

  /**
   * Cuts what can be cut (cut(eof)) and, if there are chunks, returns them with
   * their ring region, which belongs to the caller from now on (release it once done
   * with the chunks). Call advance() before reading on.
   */
  take(eof: boolean): { region: number; chunks: RegionChunk[] } | undefined {
    this.cut(eof);
    if (this.chunks.length === 0) return undefined;
    const chunks = this.chunks;
    this.chunks = [];
    this.chunkCount += chunks.length;
    const region = this.region;
    this.region = -1;
    return { region, chunks };
  }

  /** Moves the unfinished tail to the front of buf and takes a new ring region if take() handed the last one out (waits for one). */
  async advance(): Promise<void> {
    this.buf.copyWithin(0, this.pos, this.fill);
    this.base += this.pos;
    this.fill -= this.pos;
    this.pos = 0;
    if (this.region < 0) await this.open();
  }

  /** Gives the ring region back unless take() handed it out. */
  close(): void {
    if (this.region >= 0) this.ring.release(this.region);
    this.region = -1;
  }

  /** Size and content hash (and plain SHA-256 if asked) once take(true) has run. */
  summary(): FileSummary {
    const s: FileSummary = { size: this.base + this.fill, hash: this.content.digest(), chunkCount: this.chunkCount };
    if (this.plain) s.sha256 = this.plain.digest('hex');
    return s;
  }
}
