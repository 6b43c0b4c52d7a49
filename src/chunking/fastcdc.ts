/**
 * FastCDC content-defined chunking (Xia et al., "FastCDC: a Fast and Efficient
 * Content-Defined Chunking Approach for Data Deduplication", USENIX ATC 2016).
 *
 * A chunk boundary depends only on the bytes just before it, so inserting a byte
 * into a file moves the boundaries around the insertion and nowhere else; fixed-size
 * chunks would all shift. Boundaries are found with a gear rolling hash and
 * "normalized chunking": a harder mask (more bits) before the average size and an
 * easier one after it, which narrows the chunk-size distribution.
 *
 * The gear table and the masks are part of the on-disk format in effect: changing
 * either changes every boundary, so files stored before and after the change would
 * no longer share chunks (nothing breaks, dedup just stops working across the
 * change). They are pinned by golden tests.
 */
import { createHash, hash as oneShotHash, type Hash } from 'node:crypto';
import { ContentHasher } from './content-hash.js';
import { GEAR, GearScanner } from './gear.js';

export { GEAR, GEAR_SEED, gearTable } from './gear.js';

export interface ChunkerOptions {
  /** No boundary is placed before this many bytes (except at end of file). */
  minSize?: number;
  /** The size the normalized masks aim for; must be a power of two. */
  avgSize?: number;
  /** A boundary is forced at this many bytes. */
  maxSize?: number;
}

export interface ChunkStreamOptions extends ChunkerOptions {
  /** Also compute the plain SHA-256 of the whole input (FileSummary.sha256): a second pass over every byte. */
  plainSha256?: boolean;
}

export interface ChunkerParams {
  minSize: number;
  avgSize: number;
  maxSize: number;
  /** Mask used before avgSize: avgBits + 2 one-bits (boundaries less likely). */
  maskS: number;
  /** Mask used from avgSize on: avgBits - 2 one-bits (boundaries more likely). */
  maskL: number;
}

export interface Chunk {
  /** Offset of the chunk in the file. */
  offset: number;
  length: number;
  /** SHA-256 of the chunk's bytes, lowercase hex. */
  hash: string;
  /** The chunk's bytes: a copy the caller owns and may keep (unless `release` is set). */
  data: Buffer;
  /**
   * Set on chunks of a ChunkPool with zeroCopy: `data` is a view of a worker's
   * memory, valid until release() is called, which must happen once it is no longer needed.
   */
  release?: () => void;
}

export interface FileSummary {
  size: number;
  /** The file's content hash (SHA-256 over its chunk digests, see content-hash.ts), lowercase hex. */
  hash: string;
  chunkCount: number;
  /** Plain SHA-256 of the whole file, lowercase hex: only when asked for (plainSha256). */
  sha256?: string;
}

export const KiB = 1024;
export const MiB = 1024 * KiB;

/**
 * Defaults; bench/results/chunking.md has the measurements behind them. The minimum
 * is 7/8 of the average (the FastCDC paper's examples use 1/4): no boundary can fall
 * in a chunk's first minSize bytes, so the gear scan skips them, and at 56 KiB it
 * scans ~29% of the bytes instead of ~78% at 16 KiB, which is what lets chunking +
 * hashing approach raw SHA-256 speed (48 KiB, ~39% scanned, measured ~2 points of
 * raw SHA-256 speed slower). It costs little dedup, simulated on random data: a
 * 100-byte insert into a 10 MiB file stores ~75 KiB of new chunks (~74 KiB at
 * 16 KiB), and 20 versions of 100 MiB each rewriting 10% store 1.059× the unique
 * bytes (1.039×). Normalization level 3 would scan less still but stored 1.15×.
 */
export const DEFAULT_CHUNKER_OPTIONS: Readonly<Required<ChunkerOptions>> = Object.freeze({
  minSize: 56 * KiB,
  avgSize: 64 * KiB,
  maxSize: 256 * KiB,
});

// The hot loop reads the gear table through an Int32Array: every value then fits
// V8's 32-bit integer representation and the sum never widens to a double.
const GEAR_I32 = new Int32Array(GEAR.buffer, GEAR.byteOffset, 256);

/** `bits` one-bits at the top of a 32-bit word, as an int32. */
function topMask(bits: number): number {
  // The gear hash shifts left, so bit k only depends on the last k+1 bytes: the
  // top bits see the widest window (32 bytes), the bottom bit only one byte.
  return (0xffffffff << (32 - bits)) | 0;
}

const MIN_AVG = 256;
const MAX_MAX = 1024 * MiB;

/** Validates options and derives the masks; throws a one-line error naming the bad option. */
export function resolveChunkerOptions(options: ChunkerOptions = {}): ChunkerParams {
  const avgSize = options.avgSize ?? DEFAULT_CHUNKER_OPTIONS.avgSize;
  // Min and max follow the average unless given, so {avgSize: 16384} alone is valid.
  const minSize = options.minSize ?? (options.avgSize === undefined ? DEFAULT_CHUNKER_OPTIONS.minSize : (avgSize / 8) * 7);
  const maxSize = options.maxSize ?? (options.avgSize === undefined ? DEFAULT_CHUNKER_OPTIONS.maxSize : avgSize * 4);
  for (const [name, v] of [['minSize', minSize], ['avgSize', avgSize], ['maxSize', maxSize]] as const) {
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new RangeError(`chunker option ${name}=${String(v)} is invalid: give a positive integer number of bytes`);
    }
  }
  if (avgSize < MIN_AVG || (avgSize & (avgSize - 1)) !== 0) {
    throw new RangeError(`chunker option avgSize=${avgSize} is invalid: give a power of two of at least ${MIN_AVG} (e.g. 65536)`);
  }
  if (!(minSize < avgSize && avgSize < maxSize)) {
    throw new RangeError(
      `chunker options minSize=${minSize}, avgSize=${avgSize}, maxSize=${maxSize} are invalid: need minSize < avgSize < maxSize`,
    );
  }
  if (maxSize > MAX_MAX) {
    throw new RangeError(`chunker option maxSize=${maxSize} is too large: give at most ${MAX_MAX} bytes`);
  }
  const bits = Math.round(Math.log2(avgSize));
  // Normalization level 2, as recommended by the FastCDC paper.
  return { minSize, avgSize, maxSize, maskS: topMask(bits + 2), maskL: topMask(bits - 2) };
}

/**
 * Finds the end (exclusive, absolute index) of the chunk starting at `start`, given
 * the bytes buf[start, end). `end - start` must be at least maxSize unless `end` is
 * the end of the file; then the result does not depend on how much lies past it.
 */
export function findCutPoint(buf: Uint8Array, start: number, end: number, p: ChunkerParams): number {
  const n = end - start;
  if (n <= p.minSize) return end;
  const limit = n > p.maxSize ? start + p.maxSize : end;
  const normal = start + p.avgSize < limit ? start + p.avgSize : limit;
  const maskS = p.maskS;
  const maskL = p.maskL;
  const gear = GEAR_I32;
  let h = 0;
  // The hash restarts at minSize: bytes before it can never end this chunk, and the
  // hash only remembers the last 32 bytes anyway, so skipping them loses nothing.
  let i = start + p.minSize;
  for (; i < normal; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0;
    if ((h & maskS) === 0) return i + 1;
  }
  for (; i < limit; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0;
    if ((h & maskL) === 0) return i + 1;
  }
  return limit;
}

/**
 * Push-based FastCDC over a stream of byte pieces of any sizes. The boundaries are
 * the same whatever the piece sizes: a chunk is only cut once maxSize bytes past
 * its start are buffered (or the input ended), which is all findCutPoint can look at.
 *
 * Memory: one buffer of 2 × maxSize for not-yet-chunked bytes (in a GearScanner's
 * WebAssembly memory, where the boundary scan runs), plus each chunk's copy handed
 * to the caller.
 */
export class Chunker {
  readonly params: ChunkerParams;
  private readonly scanner: GearScanner;
  private readonly buf: Buffer;
  /** Start of the unchunked bytes in buf. */
  private pos = 0;
  /** End of the valid bytes in buf. */
  private fill = 0;
  /** File offset of buf[pos]. */
  private offset = 0;
  private chunkCount = 0;
  private readonly contentHash = new ContentHasher();
  private readonly plainHash: Hash | undefined;
  private summary: FileSummary | undefined;
  private busy = false;

  constructor(options?: ChunkStreamOptions) {
    this.params = resolveChunkerOptions(options);
    this.scanner = new GearScanner(2 * this.params.maxSize);
    this.buf = this.scanner.buf;
    this.plainHash = options?.plainSha256 ? createHash('sha256') : undefined;
  }

  /**
   * Feeds the next piece of the file; yields the chunks it completes. Lazy like any
   * generator: the piece is only consumed as the result is iterated, so drain it
   * before the next push (the piece may be reused by the caller afterwards).
   */
  *push(data: Uint8Array): Generator<Chunk, void, undefined> {
    if (this.summary) throw new Error('Chunker.push called after finish: create a new Chunker per file');
    this.enter();
    this.plainHash?.update(data);
    const max = this.params.maxSize;
    let src = 0;
    while (src < data.length) {
      if (this.fill === this.buf.length) this.compact();
      const n = Math.min(data.length - src, this.buf.length - this.fill);
      this.buf.set(data.subarray(src, src + n), this.fill);
      this.fill += n;
      src += n;
      while (this.fill - this.pos >= max) yield this.cut();
    }
    this.busy = false;
  }

  private enter(): void {
    // An abandoned push() leaves part of its piece unread: boundaries after it would be wrong.
    if (this.busy) throw new Error('Chunker: the previous push() was not iterated to its end; drain each push() before the next one');
    this.busy = true;
  }

  /** Ends the file: yields the remaining chunks; `result()` is available afterwards. */
  *finish(): Generator<Chunk, void, undefined> {
    if (this.summary) return;
    this.enter();
    while (this.fill > this.pos) yield this.cut();
    this.busy = false;
    this.summary = { size: this.offset, hash: this.contentHash.digest(), chunkCount: this.chunkCount };
    if (this.plainHash) this.summary.sha256 = this.plainHash.digest('hex');
  }

  /** Size and content hash of the whole file; only after finish() has been drained. */
  result(): FileSummary {
    if (!this.summary) throw new Error('Chunker.result called before finish() was drained: iterate finish() first');
    return this.summary;
  }

  private cut(): Chunk {
    const end = this.scanner.cut(this.pos, this.fill, this.params);
    const view = this.buf.subarray(this.pos, end);
    const digest = oneShotHash('sha256', view, 'buffer') as unknown as Buffer;
    this.contentHash.add(digest);
    const data = Buffer.allocUnsafeSlow(view.length);
    view.copy(data);
    const chunk: Chunk = { offset: this.offset, length: data.length, hash: digest.toString('hex'), data };
    this.offset += data.length;
    this.pos = end;
    this.chunkCount++;
    return chunk;
  }

  private compact(): void {
    // Fewer than maxSize bytes remain here (we cut whenever maxSize are available),
    // so with a 2 × maxSize buffer each copy makes room for at least maxSize more.
    this.buf.copyWithin(0, this.pos, this.fill);
    this.fill -= this.pos;
    this.pos = 0;
  }
}

export type ByteSource = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>;

/**
 * Chunks a stream (a Readable, or any async iterable of byte pieces).
 *
 *   const chunks = chunkStream(createReadStream(path));
 *   for await (const c of chunks) { ... }
 *   const { size, hash } = chunks.result();
 */
export function chunkStream(source: ByteSource, options?: ChunkStreamOptions): ChunkStream {
  return new ChunkStream(source, options);
}

export class ChunkStream implements AsyncIterable<Chunk> {
  private readonly chunker: Chunker;
  private started = false;

  constructor(
    private readonly source: ByteSource,
    options: ChunkStreamOptions = {},
  ) {
    this.chunker = new Chunker(options);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Chunk, void, undefined> {
    if (this.started) throw new Error('ChunkStream can be iterated only once: call chunkStream() again');
    this.started = true;
    for await (const piece of this.source) {
      // A Readable with an encoding set yields strings: that would corrupt binary data.
      if (typeof piece === 'string') {
        throw new TypeError('chunkStream got a string piece: read the file without an encoding (no setEncoding)');
      }
      yield* this.chunker.push(piece);
    }
    yield* this.chunker.finish();
  }

  /** Size and content hash of the whole input, once iteration has finished. */
  result(): FileSummary {
    return this.chunker.result();
  }
}

/** Chunks an in-memory buffer (tests, small files). */
export function chunkBuffer(data: Uint8Array, options?: ChunkStreamOptions): { chunks: Chunk[]; summary: FileSummary } {
  const chunker = new Chunker(options);
  const chunks = [...chunker.push(data), ...chunker.finish()];
  return { chunks, summary: chunker.result() };
}
