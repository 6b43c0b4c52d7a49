/**
 * The object-store interface behind pgdv's packs: a filesystem folder or an S3
 * bucket. Deliberately small (put/get/head/delete/list) so any S3-compatible
 * service or a future store fits; deduplication and the chunk index live in
 * PostgreSQL, never in store listings.
 */
import type { Readable } from 'node:stream';

export type StoreErrorCode =
  | 'not_found' // the object does not exist
  | 'auth' // credentials rejected or permission denied
  | 'no_bucket' // the bucket (or root folder) does not exist
  | 'network' // could not reach the service, or the connection broke
  | 'io' // any other read/write failure
  | 'disk_full' // no space left (ENOSPC, EDQUOT)
  | 'checksum' // bytes received do not match the declared size or SHA-256
  | 'invalid'; // a bad key, range or store spec: a caller bug or a typo

/** One-line errors naming the object and what to do; `code` is stable for callers. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    readonly key?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A body for put(). A function returning a fresh Readable lets the store retry an
 * upload from the beginning; a bare Readable can only be sent once.
 */
export type PutBody = Uint8Array | Readable | (() => Readable);

export interface PutOptions {
  /** Exact byte count; required for a one-shot Readable on some stores, checked by all. */
  size?: number;
  /** SHA-256 (hex) of the body: verified or sent to the server where it can check it. */
  sha256?: string;
}

/** Byte range, both ends inclusive (like HTTP Range and fs.createReadStream). */
export interface GetRange {
  start?: number;
  end?: number;
}

export interface ObjectInfo {
  key: string;
  size: number;
}

export type ProbeStep = 'write' | 'read' | 'list' | 'delete';

export interface ProbeResult {
  ok: boolean;
  /** The first step that failed, with its error. */
  failed?: { step: ProbeStep; error: StoreError };
  /** Milliseconds the whole probe took. */
  ms: number;
}

export interface ObjectStore {
  /** Atomic: once this resolves the whole object is readable; if it rejects, no object (or the previous one) is there. */
  put(key: string, body: PutBody, options?: PutOptions): Promise<void>;
  /**
   * Optional: moves a local file (consumed) into the store without copying, when the
   * store can (the filesystem store renames it). Same atomicity as put().
   */
  putFile?(key: string, file: string, options?: PutOptions): Promise<void>;
  /** Streams the object (or a byte range of it); rejects with code 'not_found' if absent. */
  get(key: string, range?: GetRange): Promise<Readable>;
  /**
   * Optional: reads bytes from `start` into `into`, for stores that can without a
   * stream (the filesystem store); resolves to the count read, fewer at the object's
   * end. Rejects with code 'not_found' if the object is absent.
   */
  readInto?(key: string, start: number, into: Uint8Array): Promise<number>;
  /** Size of the object, or null if absent. */
  head(key: string): Promise<{ size: number } | null>;
  /** Removes the object; deleting an absent object is not an error. */
  delete(key: string): Promise<void>;
  /** All objects whose key starts with prefix, in no guaranteed order. */
  list(prefix?: string): AsyncIterable<ObjectInfo>;
  /** Writes, reads back, lists and deletes a small probe object; reports the first step that failed. */
  probe(): Promise<ProbeResult>;
  /** A URL naming the store, without secrets (file:///..., s3://bucket/prefix?endpoint=...). */
  describe(): string;
  /** Releases connections. */
  close?(): Promise<void>;
}

const KEY_SEGMENT = /^[A-Za-z0-9_=+-][A-Za-z0-9._=+-]*$/;

/**
 * Keys are '/'-separated segments of [A-Za-z0-9._=+-], not starting with '.', so
 * they are safe as file paths and as S3 keys alike (no '..', no hidden temp names).
 */
export function validateKey(key: string): void {
  if (key.length === 0 || key.length > 512 || !key.split('/').every((s) => KEY_SEGMENT.test(s))) {
    throw new StoreError(
      'invalid',
      `object key ${JSON.stringify(key)} is invalid: use '/'-separated segments of letters, digits and ._=+- not starting with '.'`,
      key,
    );
  }
}

export function validateRange(key: string, range: GetRange | undefined): void {
  if (!range) return;
  const { start, end } = range;
  const bad =
    (start !== undefined && (!Number.isSafeInteger(start) || start < 0)) ||
    (end !== undefined && (!Number.isSafeInteger(end) || end < (start ?? 0)));
  if (bad) {
    throw new StoreError('invalid', `byte range ${start ?? ''}-${end ?? ''} of ${key} is invalid: need 0 <= start <= end (inclusive)`, key);
  }
}

/** Throws 'checksum' when the bytes received differ from what the caller declared. */
export function checkBody(key: string, size: number, sha256: string, options: PutOptions): void {
  if (options.size !== undefined && options.size !== size) {
    throw new StoreError('checksum', `upload of ${key} got ${size} bytes but ${options.size} were declared: the source changed or was truncated; retry`, key);
  }
  if (options.sha256 !== undefined && options.sha256.toLowerCase() !== sha256) {
    throw new StoreError('checksum', `upload of ${key} has SHA-256 ${sha256} but ${options.sha256} was declared: the source changed while uploading; retry`, key);
  }
}

/** Runs the shared probe sequence against any store. */
export async function runProbe(store: ObjectStore, keyPrefix = 'probe'): Promise<ProbeResult> {
  const t0 = performance.now();
  const key = `${keyPrefix}/pgdv-probe-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const body = Buffer.from(`pgdv probe ${new Date().toISOString()}\n`);
  let step: ProbeStep = 'write';
  try {
    await store.put(key, body, { size: body.length });
    step = 'read';
    const back = await readAll(await store.get(key));
    if (!back.equals(body)) {
      throw new StoreError('checksum', `probe object ${key} read back ${back.length} bytes that differ from the ${body.length} written: the store (or a proxy) alters objects`, key);
    }
    step = 'list';
    let listed = false;
    for await (const o of store.list(`${keyPrefix}/`)) if (o.key === key) listed = true;
    if (!listed) throw new StoreError('io', `probe object ${key} was written but not listed: the store's listing is inconsistent`, key);
    step = 'delete';
    await store.delete(key);
    if ((await store.head(key)) !== null) throw new StoreError('io', `probe object ${key} is still there after delete: check delete permission`, key);
    return { ok: true, ms: performance.now() - t0 };
  } catch (e) {
    const error = e instanceof StoreError ? e : new StoreError('io', `probe ${step} of ${key} failed: ${(e as Error).message}`, key, { cause: e });
    if (step !== 'write' && step !== 'delete') await store.delete(key).catch(() => undefined);
    return { ok: false, failed: { step, error }, ms: performance.now() - t0 };
  }
}

export async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(typeof p === 'string' ? Buffer.from(p) : Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  return Buffer.concat(parts);
}
