/**
 * ChunkPool: chunks and hashes several files in parallel in worker threads.
 *
 * Chunking a file costs one SHA-256 pass plus the boundary scan, all on one core;
 * an ingest of many files is CPU-bound there, and bench/results/chunking.md measured
 * 1.4–2× with 2 workers on this project's 2-core machines. The main thread only
 * receives finished chunks and stays free for uploads and COPY.
 *
 * Chunk bytes live in the worker's shared memory regions (src/chunking/region.ts).
 * By default each chunk is copied out of it and the region freed at once, so a
 * chunk is the caller's to keep. With `zeroCopy`, chunks are views of the shared
 * memory and each must be released (Chunk.release) once its bytes are no longer
 * needed; a worker whose regions are all held waits, so hold at most a few regions'
 * worth (ingest releases them as chunks are packed or found stored).
 *
 *   const pool = new ChunkPool({ workers: 2 });
 *   // Read as many files at once as there are workers, or the workers wait:
 *   await Promise.all(twoPaths.map(async (p) => {
 *     const f = pool.chunkFile(p);
 *     for await (const c of f) await packWriter.add(c.hash, c.data);
 *     record(p, f.result());
 *   }));
 *   await pool.close();
 *
 * Each file runs at most `window` chunks ahead of its reader (memory stays bounded),
 * so a file nobody reads yet holds its worker after `window` chunks.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Chunk, ChunkerOptions, FileSummary } from './fastcdc.js';
import { regionSize } from './region.js';
import type { FromWorker, SmallFileJob, SmallFileResult, ToWorker, WorkerSetup } from './worker.js';

export interface ChunkPoolOptions {
  /** Worker threads (default: available cores, at most 4). */
  workers?: number;
  chunker?: ChunkerOptions;
  /** Chunks a worker may run ahead of the reader, per file (default 32, ~2 MiB at 64 KiB). */
  window?: number;
  /** Chunks are views of the workers' memory, to be released by the caller (see above). */
  zeroCopy?: boolean;
  /** Regions (of 4 MiB at the default chunk sizes) per worker (default 4; with zeroCopy, enough for what the caller holds). */
  regions?: number;
}

export class ChunkFileError extends Error {
  override readonly name = 'ChunkFileError';
  constructor(
    message: string,
    readonly path: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

interface FileJob {
  kind: 'file';
  id: number;
  path: string;
  file: PooledFile;
  plainSha256: boolean;
}

interface SmallJob {
  kind: 'small';
  id: number;
  files: SmallFileJob[];
  resolve: (r: SmallBatchResult) => void;
  reject: (e: Error) => void;
}

type Job = FileJob | SmallJob;

/** A small-file batch read by a worker: each file's bytes are buffer[start, start + length). */
export interface SmallBatchResult {
  buffer: ArrayBuffer;
  files: SmallFileResult[];
}

interface Slot {
  worker: Worker;
  job?: Job;
  /** The worker's shared memory, from its first message. */
  memory?: { buffer: SharedArrayBuffer; dataOffset: number; regionSize: number };
}

export class ChunkPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly chunkerOptions?: ChunkerOptions;
  private readonly window: number;
  private readonly zeroCopy: boolean;
  private readonly setup: WorkerSetup;
  private nextId = 1;
  private closed = false;

  constructor(options: ChunkPoolOptions = {}) {
    const n = options.workers ?? Math.min(availableParallelism(), 4);
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`ChunkPool workers=${n} is invalid: give at least 1`);
    this.chunkerOptions = options.chunker;
    this.window = options.window ?? 32;
    this.zeroCopy = options.zeroCopy ?? false;
    this.setup = { regions: options.regions ?? 4, regionSize: regionSize(options.chunker) };
    for (let i = 0; i < n; i++) this.slots.push(this.spawn());
  }

  /**
   * Starts chunking a file; iterate the result for its chunks, then call result().
   * plainSha256 also computes the file's plain SHA-256 (a second pass; blobs only).
   */
  chunkFile(path: string, options: { plainSha256?: boolean } = {}): PooledFile {
    if (this.closed) throw new Error('ChunkPool.chunkFile called after close: create a new pool');
    const id = this.nextId++;
    const file = new PooledFile(path, (n) => this.credit(id, n));
    this.queue.push({ kind: 'file', id, path, file, plainSha256: options.plainSha256 ?? false });
    this.dispatch();
    return file;
  }

  /**
   * Reads and hashes a batch of files expected to be one chunk each (at most the
   * chunker's minSize), in one round trip to a worker.
   */
  readSmall(files: SmallFileJob[]): Promise<SmallBatchResult> {
    if (this.closed) return Promise.reject(new Error('ChunkPool.readSmall called after close: create a new pool'));
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'small', id: this.nextId++, files, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private spawn(): Slot {
    const slot: Slot = { worker: startWorker(this.setup) };
    slot.worker.unref();
    slot.worker.on('message', (m: FromWorker) => {
      if (m.type === 'memory') {
        slot.memory = { buffer: m.memory, dataOffset: m.dataOffset, regionSize: m.regionSize };
        return;
      }
      const job = slot.job;
      if (!job || job.id !== m.id) return;
      if (job.kind === 'small') {
        slot.job = undefined;
        if (m.type === 'small') {
          job.resolve({ buffer: m.buffer, files: m.files });
        } else {
          job.reject(new Error(`reading small files failed: ${m.type === 'error' ? m.message : m.type}`));
        }
        this.dispatch();
        return;
      }
      if (m.type === 'small') return;
      if (m.type === 'chunks') {
        this.deliver(slot, job.file, m.region, m.chunks);
        return;
      }
      slot.job = undefined;
      if (m.type === 'done') job.file.end({ size: m.size, hash: m.hash, chunkCount: m.chunkCount, ...(m.sha256 ? { sha256: m.sha256 } : {}) });
      else job.file.fail(new ChunkFileError(`chunking ${job.path} failed: ${m.message}`, job.path, m.code));
      this.dispatch();
    });
    slot.worker.on('error', (e) => {
      // A crashed worker fails its job and is replaced, so one bad file cannot stall the pool.
      const job = slot.job;
      if (job?.kind === 'file') job.file.fail(new ChunkFileError(`chunking ${job.path} failed: worker crashed: ${e.message}`, job.path));
      else job?.reject(new Error(`reading small files failed: worker crashed: ${e.message}`));
      slot.job = undefined;
      const i = this.slots.indexOf(slot);
      if (i >= 0 && !this.closed) {
        this.slots[i] = this.spawn();
        this.dispatch();
      }
    });
    return slot;
  }

  private deliver(slot: Slot, file: PooledFile, region: number, chunks: { offset: number; start: number; length: number; hash: string }[]): void {
    const mem = slot.memory!;
    const at = mem.dataOffset + region * mem.regionSize;
    const worker = slot.worker;
    const free = (): void => worker.postMessage({ type: 'free', region } satisfies ToWorker);
    if (!this.zeroCopy) {
      for (const c of chunks) {
        const data = Buffer.allocUnsafeSlow(c.length);
        data.set(new Uint8Array(mem.buffer, at + c.start, c.length));
        file.deliver({ offset: c.offset, length: c.length, hash: c.hash, data });
      }
      free();
      return;
    }
    // The region goes back to its worker once every chunk in it was released.
    let left = chunks.length;
    for (const c of chunks) {
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        if (--left === 0) free();
      };
      file.deliver({ offset: c.offset, length: c.length, hash: c.hash, data: Buffer.from(mem.buffer, at + c.start, c.length), release });
    }
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.job || this.queue.length === 0) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      const msg: ToWorker =
        job.kind === 'small'
          ? { type: 'small', id: job.id, files: job.files }
          : { type: 'job', id: job.id, path: job.path, options: this.chunkerOptions, window: this.window, plainSha256: job.plainSha256 };
      slot.worker.postMessage(msg);
    }
  }

  private credit(id: number, n: number): void {
    const slot = this.slots.find((s) => s.job?.id === id);
    if (slot) slot.worker.postMessage({ type: 'credit', id, n } satisfies ToWorker);
  }
}

/** Starts worker.js next to this module; under tsx (running .ts sources) registers tsx in the worker first. */
function startWorker(setup: WorkerSetup): Worker {
  const self = import.meta.url;
  if (self.endsWith('.ts')) {
    // Development and tests run the TypeScript sources; tsx's --import hook does not
    // reach worker threads, so the worker registers it before loading worker.ts.
    const url = new URL('./worker.ts', self).href;
    return new Worker(`require('tsx/esm/api').register(); import(${JSON.stringify(url)});`, { eval: true, workerData: setup });
  }
  return new Worker(new URL('./worker.js', self), { workerData: setup });
}

/** One file's chunks as they arrive from a worker. */
export class PooledFile implements AsyncIterable<Chunk> {
  private readonly ready: Chunk[] = [];
  private summary?: FileSummary;
  private error?: Error;
  private wake?: () => void;
  private iterated = false;

  constructor(
    readonly path: string,
    private readonly credit: (n: number) => void,
  ) {}

  /** @internal */
  deliver(chunk: Chunk): void {
    this.ready.push(chunk);
    this.notify();
  }

  /** @internal */
  end(summary: FileSummary): void {
    this.summary = summary;
    this.notify();
  }

  /** @internal */
  fail(error: Error): void {
    this.error = error;
    this.notify();
  }

  private notify(): void {
    this.wake?.();
    this.wake = undefined;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Chunk, void, undefined> {
    if (this.iterated) throw new Error(`chunks of ${this.path} can be iterated only once`);
    this.iterated = true;
    for (;;) {
      const chunk = this.ready.shift();
      if (chunk) {
        this.credit(1);
        yield chunk;
        continue;
      }
      if (this.error) throw this.error;
      if (this.summary) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  /** Size and content hash of the whole file, once its chunks have all been read. */
  result(): FileSummary {
    if (!this.summary) throw new Error(`result() of ${this.path} called before its chunks were all read`);
    return this.summary;
  }
}
