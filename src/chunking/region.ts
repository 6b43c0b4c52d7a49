/**
 * The chunking loop of a ChunkPool worker: files read straight into regions of one
 * shared WebAssembly memory (a GearScanner's, where the boundary scan runs), each
 * chunk hashed in place, and the file's content hash built from the chunk digests
 * (content-hash.ts): every byte is read once, scanned over ~39% of it, hashed once,
 * and never copied. The main thread takes the chunks as views of the same memory and
 * gives each region back once it has written (or skipped) every chunk in it.
 *
 * Why not copy them into a transferable buffer: a fresh 4 MiB buffer per region
 * costs page faults on every byte, which measured as much as the SHA-256 itself
 * (chunking + hashing fell from ~75% to ~34% of raw SHA-256 speed).
 *
 *   const ring = new RegionRing(16, REGION);      // one per thread
 *   const rc = new RegionChunker(ring, options);
 *   await rc.open();
 *   for (let eof = false; !eof; ) {
 *     const n = read(rc.buf, rc.fill);            // into rc.buf[rc.fill, rc.buf.length)
 *     eof = n === 0;
 *     rc.filled(n);
 *     const part = rc.take(eof);                  // its region now belongs to the reader
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

/** `count` regions of `size` bytes in one shared scanner memory, handed out one at a time. */
export class RegionRing {
  readonly scanner: GearScanner;
  private readonly free: number[] = [];
  private readonly waiters: ((region: number) => void)[] = [];

  constructor(
    readonly count: number,
    readonly size: number,
  ) {
    this.scanner = new GearScanner(count * size, { shared: true });
    for (let i = 0; i < count; i++) this.free.push(i);
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
    return this.scanner.buf.subarray(region * this.size, (region + 1) * this.size);
  }
}

export class RegionChunker {
  readonly params: ChunkerParams;
  /** Valid bytes in buf. */
  fill = 0;
  private region = -1;
  /** Chunked up to here in the current region (take's tail starts here). */
  private pos = 0;
  /** Whether the current region was handed out by take(). */
  private handed = false;
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
    this.plain = plainSha256 ? createHash('sha256') : undefined;
  }

  async open(): Promise<void> {
    this.region = await this.ring.acquire();
  }

  /** The current region: read into buf[fill, buf.length). */
  get buf(): Buffer {
    return this.ring.view(this.region);
  }

  /** Records n more bytes read into buf at fill. */
  filled(n: number): void {
    this.plain?.update(this.buf.subarray(this.fill, this.fill + n));
    this.fill += n;
  }

  /**
   * Cuts and hashes every chunk that can be cut now (all of them at eof). If any,
   * returns them with the region they are in, which from now on belongs to the
   * caller (release it once done with the chunks); call advance() before reading on.
   */
  take(eof: boolean): { region: number; chunks: RegionChunk[] } | undefined {
    const p = this.params;
    const at = this.region * this.ring.size;
    const buf = this.ring.scanner.buf;
    const fill = this.fill;
    const chunks: RegionChunk[] = [];
    let pos = 0;
    while (fill - pos >= p.maxSize || (eof && pos < fill)) {
      const end = this.ring.scanner.cut(at + pos, at + fill, p) - at;
      const digest = oneShotHash('sha256', buf.subarray(at + pos, at + end), 'buffer') as unknown as Buffer;
      this.content.add(digest);
      chunks.push({ offset: this.base + pos, start: pos, length: end - pos, hash: digest.toString('hex') });
      pos = end;
    }
    this.pos = pos;
    if (chunks.length === 0) return undefined;
    this.chunkCount += chunks.length;
    this.handed = true;
    return { region: this.region, chunks };
  }

  /** Moves the unfinished tail to the front of a region: a new one if take() handed the current one out. */
  async advance(): Promise<void> {
    const tail = this.fill - this.pos;
    if (this.handed) {
      const from = this.region;
      const to = await this.ring.acquire();
      // The handed-out region is only read by its new owner, and only its chunks, not the tail.
      this.ring.view(to).set(this.ring.view(from).subarray(this.pos, this.fill));
      this.region = to;
      this.handed = false;
    } else {
      this.buf.copyWithin(0, this.pos, this.fill);
    }
    this.base += this.pos;
    this.fill = tail;
    this.pos = 0;
  }

  /** Gives the current region back unless take() handed it out. */
  close(): void {
    if (this.region >= 0 && !this.handed) this.ring.release(this.region);
    this.region = -1;
  }

  /** Size and content hash (and plain SHA-256 if asked) once take(true) has run. */
  summary(): FileSummary {
    const s: FileSummary = { size: this.base + this.fill, hash: this.content.digest(), chunkCount: this.chunkCount };
    if (this.plain) s.sha256 = this.plain.digest('hex');
    return s;
  }
}
