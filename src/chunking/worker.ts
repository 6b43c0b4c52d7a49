/**
 * Worker side of ChunkPool: chunks and hashes one file at a time and sends the
 * chunks back. Runs at most about `window` chunks ahead of the consumer, so a slow
 * consumer (an S3 upload) bounds the memory used.
 *
 * No byte is copied on the way: the file is read straight into a region buffer
 * (4 MiB), its chunks are cut as views of that region, and once no further chunk can
 * be cut from it, the region's ArrayBuffer is transferred to the main thread with all
 * its chunks in one message; only the unfinished tail (< maxSize) is copied into the
 * next region. The boundaries are exactly those of Chunker (same cut rule: cut while
 * at least maxSize bytes are buffered, then the rest at end of file), which
 * test/chunker.test.ts checks against the in-thread chunker.
 */
import { createHash, hash as oneShotHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { findCutPoint, resolveChunkerOptions, type ChunkerOptions } from './fastcdc.js';

export type ToWorker =
  | { type: 'job'; id: number; path: string; options?: ChunkerOptions; window: number }
  | { type: 'credit'; id: number; n: number };

/** Chunks of one region: views of `buffer` (transferred) at the given offsets in it. */
export type FromWorker =
  | { type: 'chunks'; id: number; buffer: ArrayBuffer; chunks: { offset: number; start: number; length: number; hash: string }[] }
  | { type: 'done'; id: number; size: number; sha256: string; chunkCount: number }
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
    credits.set(msg.id, { n: msg.window });
    void run(msg.id, msg.path, msg.options).finally(() => credits.delete(msg.id));
  });

  const send = (m: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

  async function run(id: number, path: string, options?: ChunkerOptions): Promise<void> {
    try {
      const p = resolveChunkerOptions(options);
      const regionSize = Math.max(REGION, 2 * p.maxSize);
      const c = credits.get(id)!;
      const fileHash = createHash('sha256');
      let buf = Buffer.allocUnsafeSlow(regionSize);
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
              fileHash.update(buf.subarray(fill, fill + bytesRead));
              fill += bytesRead;
            }
          }
          const chunks: { offset: number; start: number; length: number; hash: string }[] = [];
          while (fill - pos >= p.maxSize || (eof && pos < fill)) {
            const end = findCutPoint(buf, pos, fill, p);
            chunks.push({ offset: base + pos, start: pos, length: end - pos, hash: oneShotHash('sha256', buf.subarray(pos, end), 'hex') });
            pos = end;
          }
          chunkCount += chunks.length;
          // The unfinished tail goes to the next region; this one is handed over whole.
          const next = eof && pos === fill ? undefined : Buffer.allocUnsafeSlow(regionSize);
          if (next) buf.copy(next, 0, pos, fill);
          if (chunks.length) {
            while (c.n <= 0) await new Promise<void>((r) => (c.wake = r));
            c.n -= chunks.length;
            // allocUnsafeSlow: the region owns its ArrayBuffer, so transferring it is safe.
            send({ type: 'chunks', id, buffer: buf.buffer as ArrayBuffer, chunks }, [buf.buffer as ArrayBuffer]);
          }
          if (!next) break;
          base += pos;
          fill -= pos;
          pos = 0;
          buf = next;
        }
      } finally {
        await fh.close();
      }
      send({ type: 'done', id, size: base + fill, sha256: fileHash.digest('hex'), chunkCount });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      send({ type: 'error', id, message: err.message ?? String(e), code: err.code });
    }
  }
}
