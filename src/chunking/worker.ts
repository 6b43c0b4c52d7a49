/**
 * Worker side of ChunkPool: chunks and hashes one file at a time (RegionChunker; the
 * chunks end up in regions of a shared memory the main thread reads them from) and sends the
 * chunks of each region in one message; the main thread sends the region back
 * ('free') once done with them. Runs at most about `window` chunks ahead of the
 * consumer, and at most `regions` regions, so a slow consumer (an S3 upload) bounds
 * the memory used. Also reads batches of small files (one chunk each) in one round trip.
 */
import { hash as oneShotHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { ContentHasher, EMPTY_CONTENT_HASH } from './content-hash.js';
import type { ChunkerOptions } from './fastcdc.js';
import { READ, RegionChunker, RegionRing } from './region.js';

/** What a worker is started with: its regions (count × size bytes of shared memory). */
export interface WorkerSetup {
  regions: number;
  regionSize: number;
}

export type ToWorker =
  | { type: 'job'; id: number; path: string; options?: ChunkerOptions; window: number; plainSha256?: boolean }
  | { type: 'small'; id: number; files: SmallFileJob[] }
  | { type: 'credit'; id: number; n: number }
  | { type: 'free'; region: number };

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

/**
 * 'memory' comes first: the shared memory whose region r holds bytes
 * [dataOffset + r × regionSize, + regionSize). 'chunks': chunks of one region, at
 * their start in it.
 */
export type FromWorker =
  | { type: 'memory'; memory: SharedArrayBuffer; dataOffset: number; regionSize: number }
  | { type: 'chunks'; id: number; region: number; chunks: { offset: number; start: number; length: number; hash: string }[] }
  | { type: 'done'; id: number; size: number; hash: string; chunkCount: number; sha256?: string }
  | { type: 'small'; id: number; buffer: ArrayBuffer; files: SmallFileResult[] }
  | { type: 'error'; id: number; message: string; code?: string };

const port = parentPort;
if (port) {
  const credits = new Map<number, { n: number; wake?: () => void }>();
  const setup = workerData as WorkerSetup;
  const ring = new RegionRing(setup.regions, setup.regionSize);
  port.postMessage({ type: 'memory', memory: ring.memory, dataOffset: 0, regionSize: ring.size } satisfies FromWorker);

  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'free') {
      ring.release(msg.region);
      return;
    }
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

  async function run(id: number, path: string, options?: ChunkerOptions, plainSha256?: boolean): Promise<void> {
    let rc: RegionChunker | undefined;
    try {
      rc = new RegionChunker(ring, options, plainSha256);
      const c = credits.get(id)!;
      const fh = await open(path, 'r');
      try {
        await rc.open();
        for (let eof = false; !eof; ) {
          const { bytesRead } = await fh.read(rc.buf, rc.fill, Math.min(READ, rc.buf.length - rc.fill), null);
          eof = bytesRead === 0;
          rc.filled(bytesRead);
          rc.cut(eof);
          if (!eof && rc.fill < rc.buf.length) continue;
          const part = rc.take(eof);
          if (part) {
            while (c.n <= 0) await new Promise<void>((r) => (c.wake = r));
            c.n -= part.chunks.length;
            send({ type: 'chunks', id, region: part.region, chunks: part.chunks });
          }
          if (!eof) await rc.advance();
        }
      } finally {
        await fh.close();
      }
      const s = rc.summary();
      send({ type: 'done', id, size: s.size, hash: s.hash, chunkCount: s.chunkCount, sha256: s.sha256 });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      send({ type: 'error', id, message: err.message ?? String(e), code: err.code });
    } finally {
      rc?.close();
    }
  }
}
