/**
 * Worker side of ChunkPool: chunks and hashes one file at a time and sends the
 * chunks back (their buffers transferred, not copied). Runs at most `window` chunks
 * ahead of the consumer, so a slow consumer (an S3 upload) bounds the memory used.
 */
import { createReadStream } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { Chunker, type ChunkerOptions } from './fastcdc.js';

export type ToWorker =
  | { type: 'job'; id: number; path: string; options?: ChunkerOptions; window: number }
  | { type: 'credit'; id: number; n: number };

export type FromWorker =
  | { type: 'chunk'; id: number; offset: number; length: number; hash: string; data: Uint8Array }
  | { type: 'done'; id: number; size: number; sha256: string; chunkCount: number }
  | { type: 'error'; id: number; message: string; code?: string };

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
      const chunker = new Chunker(options);
      const c = credits.get(id)!;
      const emit = async (chunk: { offset: number; length: number; hash: string; data: Buffer }): Promise<void> => {
        while (c.n <= 0) await new Promise<void>((r) => (c.wake = r));
        c.n--;
        // Chunk buffers own their ArrayBuffer (allocUnsafeSlow), so transferring is safe.
        send({ type: 'chunk', id, offset: chunk.offset, length: chunk.length, hash: chunk.hash, data: chunk.data }, [chunk.data.buffer as ArrayBuffer]);
      };
      for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
        for (const chunk of chunker.push(piece as Buffer)) await emit(chunk);
      }
      for (const chunk of chunker.finish()) await emit(chunk);
      send({ type: 'done', id, ...chunker.result() });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      send({ type: 'error', id, message: err.message ?? String(e), code: err.code });
    }
  }
}
