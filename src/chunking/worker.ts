/**
 * Worker side of ChunkPool: chunks and hashes one file at a time and sends the
 * chunks back. Runs at most about `window` chunks ahead of the consumer, so a slow
 * consumer (an S3 upload) bounds the memory used.
 *
 * The file is read straight into the region of a GearScanner (4 MiB of WebAssembly
 * memory, where the boundary scan runs); each chunk is hashed in place, and the file's
 * content hash is built from the chunk digests (content-hash.ts), so every byte is
 * hashed once. Once no further chunk can be cut from the region, its finished part is
 * copied into one transferable buffer and sent with all its chunks in one message
 * (one memcpy per byte: WebAssembly memory cannot be transferred); the unfinished
 * tail (< maxSize) moves to the front of the region. The boundaries are exactly those
 * of Chunker (same cut rule: cut while at least maxSize bytes are buffered, then the
 * rest at end of file), which test/chunker.test.ts checks against the in-thread chunker.
 */
import { createHash, hash as oneShotHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { ContentHasher, EMPTY_CONTENT_HASH } from './content-hash.js';
import { resolveChunkerOptions, type ChunkerOptions } from './fastcdc.js';
import { GearScanner } from './gear.js';

export type ToWorker =
  | { type: 'job'; id: number; path: string; options?: ChunkerOptions; window: number; plainSha256?: boolean }
  | { type: 'small'; id: number; files: SmallFileJob[] }
  | { type: 'credit'; id: number; n: number };

/** A file expected to be one chunk, with the size and mtime the walk saw. */
export interface SmallFileJob {
  path: string;
  size: number;
  mtimeMs: number;
}

/**
 * What became of one file of a small-file batch: its bytes (buffer[start, start +
 * length)) and hashes, or why not. `changed`: its size or mtime differ from the
 * walk's, or it grew while read; the caller reads it again the general way.
 */
export type SmallFileResult =
  | { ok: true; start: number; length: number; chunk: string; content: string }
  | { ok: false; changed: true }
  | { ok: false; changed: false; code?: string; message: string };

/** Chunks of one region: views of `buffer` (transferred) at the given offsets in it. */
export type FromWorker =
  | { type: 'chunks'; id: number; buffer: ArrayBuffer; chunks: { offset: number; start: number; length: number; hash: string }[] }
  | { type: 'done'; id: number; size: number; hash: string; chunkCount: number; sha256?: string }
  | { type: 'small'; id: number; buffer: ArrayBuffer; files: SmallFileResult[] }
  | { type: 'error'; id: number; message: string; code?: string };

/** Region size: at least 2 × maxSize, so a region always yields a chunk before it is full. */
const REGION = 4 * 1024 * 1024;

const port = parentPort;
if (port) {
  const credits = new Map<number, { n: number; wake?: () => void }>();

  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'credit') {
      const c = credits.get(msg.id);
      if (c) {
        c.n += msg.n;
        c.wake?.();
        c.wake = undefined;
      }
      return;
    }
    if (msg.type === 'small') {
      readSmall(msg.id, msg.files);
      return;
    }
    credits.set(msg.id, { n: msg.window });
    void run(msg.id, msg.path, msg.options, msg.plainSha256).finally(() => credits.delete(msg.id));
  });

  const send = (m: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

  /**
   * Reads a batch of small files (each at most minSize: one chunk) with synchronous
   * calls and hashes them, all in one message each way. A file of a few KiB costs
   * four system calls from the page cache; going through libuv's thread pool with a
   * promise per call cost ~10× that on the main thread, which capped pgdv add at
   * ~1,200 small files/s. Bytes go back in one transferred buffer.
   */
  function readSmall(id: number, files: SmallFileJob[]): void {
    // One byte more per file than the walk saw, to notice a file that grew.
    let total = 0;
    for (const f of files) total += f.size + 1;
    const buf = Buffer.allocUnsafeSlow(total);
    const results: SmallFileResult[] = [];
    let at = 0;
    for (const f of files) {
      let fd: number | undefined;
      try {
        fd = openSync(f.path, 'r');
        let n = 0;
        for (;;) {
          const got = readSync(fd, buf, at + n, f.size + 1 - n, null);
          if (got === 0) break;
          n += got;
          if (n === f.size + 1) break;
        }
        const st = fstatSync(fd);
        if (n !== f.size || st.size !== f.size || st.mtimeMs !== f.mtimeMs) {
          results.push({ ok: false, changed: true });
          continue;
        }
        const view = buf.subarray(at, at + n);
        const digest = oneShotHash('sha256', view, 'buffer') as unknown as Buffer;
        const content = n === 0 ? EMPTY_CONTENT_HASH : new ContentHasher().add(digest).digest();
        results.push({ ok: true, start: at, length: n, chunk: digest.toString('hex'), content });
        at += n;
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        results.push({ ok: false, changed: false, code: err.code, message: err.message ?? String(e) });
      } finally {
        if (fd !== undefined) {
          try {
            closeSync(fd);
          } catch {
            // the bytes were read and checked; a failing close loses nothing
          }
        }
      }
    }
    send({ type: 'small', id, buffer: buf.buffer as ArrayBuffer, files: results }, [buf.buffer as ArrayBuffer]);
  }

  /** One scanner per thread, reused by its files (jobs run one at a time per worker). */
  let scanner: GearScanner | undefined;

  async function run(id: number, path: string, options?: ChunkerOptions, plainSha256?: boolean): Promise<void> {
    try {
      const p = resolveChunkerOptions(options);
      const regionSize = Math.max(REGION, 2 * p.maxSize);
      if (!scanner || scanner.capacity < regionSize) scanner = new GearScanner(regionSize);
      const sc = scanner;
      const buf = sc.buf;
      const c = credits.get(id)!;
      const content = new ContentHasher();
      const plain = plainSha256 ? createHash('sha256') : undefined;
      /** Chunked up to pos; valid bytes up to fill. */
      let pos = 0;
      let fill = 0;
      /** File offset of buf[0]. */
      let base = 0;
      let chunkCount = 0;
      let eof = false;
      const fh = await open(path, 'r');
      try {
        while (!eof || pos < fill) {
          while (!eof && fill < buf.length) {
            const { bytesRead } = await fh.read(buf, fill, buf.length - fill, null);
            if (bytesRead === 0) eof = true;
            else {
              plain?.update(buf.subarray(fill, fill + bytesRead));
              fill += bytesRead;
            }
          }
          const chunks: { offset: number; start: number; length: number; hash: string }[] = [];
          while (fill - pos >= p.maxSize || (eof && pos < fill)) {
            const end = sc.cut(pos, fill, p);
            const digest = oneShotHash('sha256', buf.subarray(pos, end), 'buffer') as unknown as Buffer;
            content.add(digest);
            chunks.push({ offset: base + pos, start: pos, length: end - pos, hash: digest.toString('hex') });
            pos = end;
          }
          chunkCount += chunks.length;
          if (chunks.length) {
            // allocUnsafeSlow: the copy owns its ArrayBuffer, so transferring it is safe.
            const out = Buffer.allocUnsafeSlow(pos);
            buf.copy(out, 0, 0, pos);
            while (c.n <= 0) await new Promise<void>((r) => (c.wake = r));
            c.n -= chunks.length;
            send({ type: 'chunks', id, buffer: out.buffer as ArrayBuffer, chunks }, [out.buffer as ArrayBuffer]);
          }
          if (eof && pos === fill) break;
          // The unfinished tail moves to the front of the region.
          buf.copyWithin(0, pos, fill);
          base += pos;
          fill -= pos;
          pos = 0;
        }
      } finally {
        await fh.close();
      }
      send({ type: 'done', id, size: base + fill, hash: content.digest(), chunkCount, sha256: plain?.digest('hex') });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      send({ type: 'error', id, message: err.message ?? String(e), code: err.code });
    }
  }
}
