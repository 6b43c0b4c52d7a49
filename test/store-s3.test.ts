/**
 * S3Store against a real S3 HTTP server (s3rver) on 127.0.0.1, never a mocked
 * client: the checksum trap in COMPAT.md only shows on the wire.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkBuffer } from '../src/chunking/fastcdc.js';
import { PackReader } from '../src/packs/reader.js';
import { PackWriter } from '../src/packs/writer.js';
import { openStore } from '../src/store/index.js';
import { mapS3Error, S3Store } from '../src/store/s3.js';
import { readAll, StoreError } from '../src/store/types.js';

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverInstance;
// s3rver ships no types; this is the slice of its API the test uses.
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;

const BUCKET = 'pgdv-test';
let dir: string;
let server: S3rverInstance;
let endpoint: string;
const stores: S3Store[] = [];

function makeStore(over: Partial<ConstructorParameters<typeof S3Store>[0]> = {}): S3Store {
  const s = new S3Store({
    bucket: BUCKET,
    prefix: 'repo1',
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    partSize: 5 * 1024 * 1024,
    maxAttempts: 2,
    ...over,
  });
  stores.push(s);
  return s;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pgdv-s3rver-'));
  server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: [{ name: BUCKET }] });
  const addr = await server.run();
  endpoint = `http://127.0.0.1:${addr.port}`;
});

afterAll(async () => {
  for (const s of stores) await s.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('S3Store on s3rver', () => {
  it('round-trips a buffer and a stream byte for byte (no aws-chunked framing stored)', async () => {
    const s = makeStore();
    const a = randomBytes(300_000);
    await s.put('packs/aa01', a, { size: a.length, sha256: sha(a) });
    expect(await s.head('packs/aa01')).toEqual({ size: a.length });
    const back = await readAll(await s.get('packs/aa01'));
    expect(back.length).toBe(a.length);
    expect(back.equals(a)).toBe(true);

    const b = randomBytes(1_000_000);
    await s.put('packs/bb02', Readable.from([b.subarray(0, 12345), b.subarray(12345)]), { size: b.length, sha256: sha(b) });
    expect((await readAll(await s.get('packs/bb02'))).equals(b)).toBe(true);
  });

  it('refuses a body whose size or SHA-256 differs from the declared one', async () => {
    const s = makeStore();
    await expect(s.put('c/sha', Buffer.from('abc'), { sha256: sha(Buffer.from('abd')) })).rejects.toMatchObject({ code: 'checksum' });
    await expect(s.put('c/size', Readable.from([Buffer.from('abc')]), { size: 4 })).rejects.toMatchObject({ code: 'checksum' });
    expect(await s.head('c/sha')).toBeNull();
    expect(await s.head('c/size')).toBeNull();
  });

  it('reads byte ranges', async () => {
    const s = makeStore();
    const a = randomBytes(100_000);
    await s.put('r/obj', a);
    expect((await readAll(await s.get('r/obj', { start: 1000, end: 1999 }))).equals(a.subarray(1000, 2000))).toBe(true);
    expect((await readAll(await s.get('r/obj', { start: 99_990 }))).equals(a.subarray(99_990))).toBe(true);
    await expect(s.get('r/obj', { start: 200_000, end: 200_010 })).rejects.toMatchObject({ code: 'invalid' });
  });

  it('uploads a 20 MiB object in 5 MiB parts from a stream factory', async () => {
    const s = makeStore();
    const big = randomBytes(20 * 1024 * 1024 + 123);
    const parts: Buffer[] = [];
    for (let o = 0; o < big.length; o += 64 * 1024) parts.push(big.subarray(o, o + 64 * 1024));
    await s.put('packs/big', () => Readable.from(parts), { size: big.length, sha256: sha(big) });
    const back = await readAll(await s.get('packs/big'));
    expect(back.length).toBe(big.length);
    expect(sha(back)).toBe(sha(big));
    const mid = await readAll(await s.get('packs/big', { start: 10 * 1024 * 1024 - 10, end: 10 * 1024 * 1024 + 9 }));
    expect(mid.equals(big.subarray(10 * 1024 * 1024 - 10, 10 * 1024 * 1024 + 10))).toBe(true);
  });

  it('lists under the store prefix and deletes', async () => {
    const s = makeStore({ prefix: 'listing' });
    for (const k of ['x/1', 'x/2', 'y/3']) await s.put(k, Buffer.from(k));
    const keys: string[] = [];
    for await (const o of s.list('x/')) keys.push(`${o.key}:${o.size}`);
    expect(keys.sort()).toEqual(['x/1:3', 'x/2:3']);
    await s.delete('x/1');
    await s.delete('x/1'); // absent: not an error
    expect(await s.head('x/1')).toBeNull();
    const all: string[] = [];
    for await (const o of s.list()) all.push(o.key);
    expect(all.sort()).toEqual(['x/2', 'y/3']);
  });

  it('reports a missing object as not_found', async () => {
    const s = makeStore();
    await expect(s.get('packs/none')).rejects.toMatchObject({ code: 'not_found', key: 'packs/none' });
    expect(await s.head('packs/none')).toBeNull();
  });

  it('reports a missing bucket as no_bucket', async () => {
    const s = makeStore({ bucket: 'no-such-bucket' });
    const err = await s.put('k', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ code: 'no_bucket' });
    expect((err as Error).message).toMatch(/bucket no-such-bucket does not exist/);
    const probe = await s.probe();
    expect(probe.ok).toBe(false);
    expect(probe.failed).toMatchObject({ step: 'write', error: { code: 'no_bucket' } });
  });

  it('reports bad credentials as auth', async () => {
    // s3rver does not check V4 signatures, only that the access key exists.
    const s = makeStore({ accessKeyId: 'NOT-A-KEY' });
    const err = await s.put('k', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'auth' });
    expect((err as Error).message).toMatch(/denied \(InvalidAccessKeyId\): check AWS_ACCESS_KEY_ID/);
    // The mapping of the codes s3rver cannot produce, on the SDK's error shape.
    for (const name of ['SignatureDoesNotMatch', 'AccessDenied']) {
      expect(mapS3Error({ name, $metadata: { httpStatusCode: 403 } }, 'k', 'upload', BUCKET).code).toBe('auth');
    }
    expect(mapS3Error({ name: 'InternalError', $metadata: { httpStatusCode: 500 } }, 'k', 'upload', BUCKET).code).toBe('io');
  });

  it('reports an unreachable endpoint as network', async () => {
    const s = makeStore({ endpoint: 'http://127.0.0.1:1', maxAttempts: 1 });
    await expect(s.head('k')).rejects.toMatchObject({ code: 'network' });
  });

  it('retries an unreachable endpoint with backoff, then says how many attempts over how long', async () => {
    const s = makeStore({ endpoint: 'http://127.0.0.1:1', maxAttempts: 3, retryBaseMs: 10 });
    const err = await s.put('k', Buffer.from('x')).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('network');
    expect((err as StoreError).message).toMatch(/^could not reach the S3 endpoint http:\/\/127\.0\.0\.1:1 to upload k \(ECONNREFUSED, 3 attempts over \d+ s\)$/);
  });

  it('probes write, read, list and delete', async () => {
    const r = await makeStore().probe();
    expect(r.failed).toBeUndefined();
    expect(r.ok).toBe(true);
  });

  it('opens from an s3:// spec and describes itself without secrets', async () => {
    const s = openStore(`s3://${BUCKET}/spec-prefix?endpoint=${endpoint}`, { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }) as S3Store;
    stores.push(s);
    expect(s.describe()).toBe(`s3://${BUCKET}/spec-prefix?endpoint=${encodeURIComponent(endpoint)}&forcePathStyle=true`);
    expect(s.describe()).not.toMatch(/S3RVER/);
    await s.put('k', Buffer.from('via spec'));
    expect((await readAll(await s.get('k'))).toString()).toBe('via spec');
  });

  it('stores packs and reads chunks back verified with coalesced ranged GETs', async () => {
    const s = makeStore({ prefix: 'packs-test' });
    const data = randomBytes(3_000_000);
    const { chunks } = chunkBuffer(data, { avgSize: 16384 });
    const tempDir = await mkdtemp(path.join(tmpdir(), 'pgdv-s3-packs-'));
    const w = new PackWriter({ store: s, tempDir, targetSize: 1 << 20 });
    for (const c of chunks) await w.add(c.hash, c.data);
    const packs = await w.finish();
    expect(packs.length).toBeGreaterThan(1);
    const where = new Map(packs.flatMap((p) => p.entries.map((e) => [e.hash, { ...e, packId: p.packId }] as const)));
    const parts: Buffer[] = [];
    for await (const { data: d } of new PackReader(s).readChunks(chunks.map((c) => where.get(c.hash)!))) parts.push(d);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    await rm(tempDir, { recursive: true, force: true });
  });

  it('reads a one-byte chunk at the start of a pack (s3rver answers bytes=0-0 with the whole object)', async () => {
    const s = makeStore({ prefix: 'one-byte' });
    const tempDir = await mkdtemp(path.join(tmpdir(), 'pgdv-s3-one-'));
    const w = new PackWriter({ store: s, tempDir });
    const one = Buffer.from('x');
    const more = randomBytes(5000);
    await w.add(sha(one), one);
    await w.add(sha(more), more);
    const [p] = await w.finish();
    const got: Buffer[] = [];
    for await (const { data } of new PackReader(s).readChunks([{ hash: sha(one), packId: p!.packId, offset: 0, length: 1 }])) got.push(data);
    expect(got).toEqual([one]);
    await rm(tempDir, { recursive: true, force: true });
  });
});
