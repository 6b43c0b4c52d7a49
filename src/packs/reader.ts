/**
 * PackReader: reads chunks back out of packs with ranged GETs, verifying each
 * chunk's SHA-256. Chunks of one file were written next to each other, so
 * consecutive requests for adjacent ranges of the same pack are merged into one GET:
 * a 1 GiB file is a few dozen requests, not sixteen thousand.
 */
import { hash as oneShotHash } from 'node:crypto';
import { StoreError, type ObjectStore } from '../store/types.js';
import { PACK_MAGIC, PACK_TRAILER_SIZE, packIdOf, packKey, type PackEntry } from './writer.js';
import { readAll } from '../store/types.js';

export interface ChunkRef {
  /** SHA-256 of the chunk, lowercase hex. */
  hash: string;
  packId: string;
  offset: number;
  length: number;
}

export type ChunkReadErrorCode = 'corrupt' | 'missing' | 'store';

/** Names the chunk and pack; the caller adds the file (and version) it was reading. */
export class ChunkReadError extends Error {
  override readonly name = 'ChunkReadError';
  constructor(
    readonly code: ChunkReadErrorCode,
    message: string,
    readonly chunkHash: string,
    readonly packId: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface PackReaderOptions {
  /** Largest merged GET in bytes (default 64 MiB); only bounds request length, not memory. */
  maxRangeSize?: number;
  /**
   * Unwanted bytes read through to merge two ranges of one pack (default 1 MiB):
   * on S3 one request's latency costs about as much as reading a few MiB.
   */
  maxGap?: number;
}

export class PackReader {
  private readonly maxRangeSize: number;
  private readonly maxGap: number;

  constructor(
    private readonly store: ObjectStore,
    options: PackReaderOptions = {},
  ) {
    this.maxRangeSize = options.maxRangeSize ?? 64 * 1024 * 1024;
    this.maxGap = options.maxGap ?? 1024 * 1024;
  }

  /**
   * Yields each chunk's verified bytes in the order given. Memory: one chunk at a
   * time plus the stream's buffer, whatever the merged range's size.
   */
  async *readChunks(refs: Iterable<ChunkRef> | AsyncIterable<ChunkRef>): AsyncGenerator<{ ref: ChunkRef; data: Buffer }> {
    let run: ChunkRef[] = [];
    let runEnd = 0;
    for await (const ref of refs) {
      const last = run[run.length - 1];
      if (
        last &&
        ref.packId === last.packId &&
        ref.offset >= runEnd &&
        ref.offset - runEnd <= this.maxGap &&
        ref.offset + ref.length - run[0]!.offset <= this.maxRangeSize
      ) {
        run.push(ref);
        runEnd = ref.offset + ref.length;
        continue;
      }
      if (run.length) yield* this.readRun(run);
      run = [ref];
      runEnd = ref.offset + ref.length;
    }
    if (run.length) yield* this.readRun(run);
  }

  /**
   * Yields the verified chunks in the order given, a group at a time: views of one
   * buffer, valid until the next group is asked for (write them first, e.g. with one
   * writev). With a store that reads into buffers (readInto: the filesystem store),
   * each group is one read of adjacent chunks of one pack, at most `groupBytes` long,
   * into `scratch.buf` (allocated or grown as needed and left there for the caller's
   * next file: no allocation per group); otherwise chunks come from readChunks,
   * gathered up to `groupBytes`.
   */
  async *readGroups(refs: ChunkRef[], options: { groupBytes?: number; scratch?: { buf?: Buffer } } = {}): AsyncGenerator<Buffer[]> {
    const limit = options.groupBytes ?? 8 * 1024 * 1024;
    const readInto = this.store.readInto?.bind(this.store);
    if (!readInto) {
      let group: Buffer[] = [];
      let bytes = 0;
      for await (const { data } of this.readChunks(refs)) {
        group.push(data);
        bytes += data.length;
        if (bytes >= limit) {
          yield group;
          group = [];
          bytes = 0;
        }
      }
      if (group.length) yield group;
      return;
    }
    const scratch = options.scratch ?? {};
    for (let i = 0; i < refs.length; ) {
      // The longest run of back-to-back chunks of one pack from i that fits the limit (at least one chunk).
      const first = refs[i]!;
      let j = i + 1;
      let end = first.offset + first.length;
      while (j < refs.length) {
        const r = refs[j]!;
        if (r.packId !== first.packId || r.offset !== end || r.offset + r.length - first.offset > limit) break;
        end = r.offset + r.length;
        j++;
      }
      const span = end - first.offset;
      if (!scratch.buf || scratch.buf.length < span) scratch.buf = Buffer.allocUnsafeSlow(Math.max(span, Math.min(limit, 1 << 20)));
      const buf = scratch.buf.subarray(0, span);
      let got;
      try {
        got = span === 0 ? 0 : await readInto(packKey(first.packId), first.offset, buf);
      } catch (e) {
        throw wrapStoreError(e, first);
      }
      const group: Buffer[] = [];
      for (let k = i; k < j; k++) {
        const ref = refs[k]!;
        const at = ref.offset - first.offset;
        if (at + ref.length > got) {
          throw new ChunkReadError('corrupt', `chunk ${ref.hash} in pack ${ref.packId} is truncated: the pack ended before offset ${ref.offset + ref.length}; run pgdv verify and re-ingest the files that use it`, ref.hash, ref.packId);
        }
        group.push(verify(ref, buf.subarray(at, at + ref.length)));
      }
      yield group;
      i = j;
    }
  }

  /** One verified chunk. */
  async readChunk(ref: ChunkRef): Promise<Buffer> {
    for await (const { data } of this.readRun([ref])) return data;
    throw new Error('unreachable');
  }

  private async *readRun(run: ChunkRef[]): AsyncGenerator<{ ref: ChunkRef; data: Buffer }> {
    const first = run[0]!;
    const last = run[run.length - 1]!;
    const start = first.offset;
    const end = last.offset + last.length; // exclusive
    if (end === start) {
      // Empty chunks (an empty file's only chunk): nothing to fetch, still verify.
      for (const ref of run) yield { ref, data: verify(ref, Buffer.alloc(0)) };
      return;
    }
    let stream;
    try {
      stream = await this.store.get(packKey(first.packId), { start, end: end - 1 });
    } catch (e) {
      throw wrapStoreError(e, first);
    }
    let i = 0;
    let pos = start; // pack offset of the next byte from the stream
    let cur: Buffer | undefined;
    let filled = 0;
    try {
      reading: for await (const piece of stream as AsyncIterable<Buffer>) {
        let off = 0;
        while (off < piece.length) {
          const ref = run[i];
          if (!ref) {
            // Every wanted chunk arrived, verified. From offset 0 the extra bytes are only
            // more of the same pack (s3rver 3.7 answers bytes=0-0 with the whole object):
            // stop reading. From further in, a store that ignored the range sent the
            // pack's start instead, and would have failed verification already.
            if (start === 0) break reading;
            throw new ChunkReadError('corrupt', `pack ${first.packId} returned more bytes than asked for at ${start}-${end - 1}: the store ignored the range; check the S3 endpoint`, last.hash, first.packId);
          }
          if (pos < ref.offset) {
            // A gap between two wanted chunks: read through it rather than pay another request.
            const skip = Math.min(piece.length - off, ref.offset - pos);
            off += skip;
            pos += skip;
            continue;
          }
          cur ??= Buffer.allocUnsafe(ref.length);
          const n = Math.min(piece.length - off, ref.length - filled);
          piece.copy(cur, filled, off, off + n);
          filled += n;
          off += n;
          pos += n;
          if (filled === ref.length) {
            const data = verify(ref, cur);
            cur = undefined;
            filled = 0;
            i++;
            yield { ref, data };
          }
        }
      }
    } catch (e) {
      if (e instanceof ChunkReadError) throw e;
      throw wrapStoreError(e, run[Math.min(i, run.length - 1)]!);
    } finally {
      // Stop the download when the consumer stops early or verification failed.
      (stream as { destroy?: () => void }).destroy?.();
    }
    if (i < run.length) {
      const ref = run[i]!;
      throw new ChunkReadError('corrupt', `chunk ${ref.hash} in pack ${ref.packId} is truncated: the pack ended before offset ${ref.offset + ref.length}; run pgdv verify and re-ingest the files that use it`, ref.hash, ref.packId);
    }
  }
}

function verify(ref: ChunkRef, data: Buffer): Buffer {
  const got = oneShotHash('sha256', data, 'hex');
  if (got !== ref.hash) {
    throw new ChunkReadError(
      'corrupt',
      `chunk ${ref.hash} in pack ${ref.packId} (offset ${ref.offset}, ${ref.length} bytes) is corrupt: its bytes hash to ${got}; run pgdv verify and re-ingest the files that use it`,
      ref.hash,
      ref.packId,
    );
  }
  return data;
}

function wrapStoreError(e: unknown, ref: ChunkRef): ChunkReadError {
  if (e instanceof ChunkReadError) return e;
  if (e instanceof StoreError && e.code === 'not_found') {
    return new ChunkReadError('missing', `chunk ${ref.hash}: its pack ${ref.packId} is missing from the store; run pgdv verify, and restore the pack or re-ingest the files that use it`, ref.hash, ref.packId, { cause: e });
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new ChunkReadError('store', `chunk ${ref.hash} in pack ${ref.packId} could not be read: ${msg}`, ref.hash, ref.packId, { cause: e });
}

/**
 * Reads a pack's own index from its footer, without the database: for verify and
 * for rebuilding the chunk index after a disaster. The footer is checked against the
 * pack's id (its SHA-256).
 */
export async function readPackIndex(store: ObjectStore, packId: string): Promise<PackEntry[]> {
  const key = packKey(packId);
  const head = await store.head(key);
  if (!head) throw new StoreError('not_found', `pack ${packId} is missing from ${store.describe()}: restore it or re-ingest`, key);
  if (head.size < PACK_TRAILER_SIZE) throw bad(packId, 'too small to hold a footer');
  const trailer = await readAll(await store.get(key, { start: head.size - PACK_TRAILER_SIZE, end: head.size - 1 }));
  if (trailer.toString('latin1', 4) !== PACK_MAGIC) throw bad(packId, `no ${PACK_MAGIC} trailer`);
  const jsonLen = trailer.readUInt32LE(0);
  const jsonStart = head.size - PACK_TRAILER_SIZE - jsonLen;
  if (jsonStart < 0) throw bad(packId, 'footer length past the start of the pack');
  const json = await readAll(await store.get(key, { start: jsonStart, end: head.size - PACK_TRAILER_SIZE - 1 }));
  // The pack's id is the SHA-256 of its footer: a damaged footer cannot index it.
  if (packIdOf(Buffer.concat([json, trailer])) !== packId) throw bad(packId, 'its footer does not hash to its id');
  try {
    const parsed = JSON.parse(json.toString('utf8')) as { v: number; chunks: [string, number, number][] };
    if (parsed.v !== 1) throw new Error(`format ${parsed.v}`);
    return parsed.chunks.map(([hash, offset, length]) => ({ hash, offset, length }));
  } catch (e) {
    throw bad(packId, `unreadable footer (${(e as Error).message})`);
  }
}

function bad(packId: string, why: string): StoreError {
  return new StoreError('checksum', `pack ${packId} is damaged: ${why}; run pgdv verify`, packKey(packId));
}
