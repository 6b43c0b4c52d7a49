import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsStore } from '../src/store/fs.js';
import { openStore, parseStoreSpec } from '../src/store/index.js';
import { readAll, StoreError } from '../src/store/types.js';

let dir: string;
let store: FsStore;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pgdv-fs-store-'));
  store = new FsStore(path.join(dir, 'objects'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function allFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  return out;
}

describe('FsStore', () => {
  it('round-trips buffers, streams and stream factories', async () => {
    const a = randomBytes(100_000);
    await store.put('packs/aa11', a, { size: a.length, sha256: sha(a) });
    expect((await readAll(await store.get('packs/aa11'))).equals(a)).toBe(true);

    const b = randomBytes(300_000);
    await store.put('packs/bb22', Readable.from([b.subarray(0, 1000), b.subarray(1000)]), { size: b.length });
    expect((await readAll(await store.get('packs/bb22'))).equals(b)).toBe(true);

    await store.put('x', () => Readable.from([Buffer.from('hello')]));
    expect((await readAll(await store.get('x'))).toString()).toBe('hello');
    // Keys fan out into a folder named after the first two characters.
    expect(store.pathOf('packs/aa11')).toBe(path.join(dir, 'objects', 'packs', 'aa', 'aa11'));
  });

  it('reads byte ranges (inclusive ends)', async () => {
    const a = Buffer.from('0123456789');
    await store.put('r/digits', a);
    expect((await readAll(await store.get('r/digits', { start: 2, end: 4 }))).toString()).toBe('234');
    expect((await readAll(await store.get('r/digits', { start: 7 }))).toString()).toBe('789');
    expect((await readAll(await store.get('r/digits', { end: 0 }))).toString()).toBe('0');
    await expect(store.get('r/digits', { start: 5, end: 2 })).rejects.toMatchObject({ code: 'invalid' });
  });

  it('heads, lists by prefix and deletes', async () => {
    await store.put('l/one', Buffer.from('1'));
    await store.put('l/two', Buffer.from('22'));
    await store.put('l/sub/three', Buffer.from('333'));
    await store.put('lx', Buffer.from('4444'));
    expect(await store.head('l/two')).toEqual({ size: 2 });
    expect(await store.head('l/none')).toBeNull();
    const listed: string[] = [];
    for await (const o of store.list('l/')) listed.push(`${o.key}:${o.size}`);
    expect(listed.sort()).toEqual(['l/one:1', 'l/sub/three:3', 'l/two:2']);
    const withT: string[] = [];
    for await (const o of store.list('l/t')) withT.push(o.key);
    expect(withT).toEqual(['l/two']);
    await store.delete('l/one');
    await store.delete('l/one'); // absent: not an error
    expect(await store.head('l/one')).toBeNull();
    const all: string[] = [];
    for await (const o of store.list()) all.push(o.key);
    expect(all).toContain('lx');
    expect(all).toContain('packs/aa11');
    expect(all).not.toContain('l/one');
  });

  it('reports a missing object as not_found naming the key', async () => {
    const err = await store.get('packs/nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ code: 'not_found', key: 'packs/nope' });
    expect((err as Error).message).toMatch(/packs\/nope not found/);
  });

  it('rejects unsafe keys', async () => {
    for (const k of ['', '../etc/passwd', 'a//b', '/abs', 'a/.tmp-x', 'a b']) {
      await expect(store.put(k, Buffer.from('x')), k).rejects.toMatchObject({ code: 'invalid' });
    }
  });

  it('leaves no partial object when the body stream fails midway', async () => {
    async function* failing(): AsyncGenerator<Buffer> {
      yield randomBytes(64 * 1024);
      throw new Error('source disk unplugged');
    }
    await expect(store.put('atomic/obj', Readable.from(failing()))).rejects.toThrow(/source disk unplugged/);
    expect(await store.head('atomic/obj')).toBeNull();
    // No temp file left behind either.
    expect(await allFiles(path.join(dir, 'objects', 'atomic'))).toEqual([]);

    // An existing object survives a failed overwrite untouched.
    await store.put('atomic/obj', Buffer.from('v1'));
    await expect(store.put('atomic/obj', Readable.from(failing()))).rejects.toThrow();
    expect((await readAll(await store.get('atomic/obj'))).toString()).toBe('v1');
  });

  it('refuses a body whose size or SHA-256 differs from the declared one', async () => {
    const a = Buffer.from('abc');
    await expect(store.put('c/size', a, { size: 4 })).rejects.toMatchObject({ code: 'checksum' });
    await expect(store.put('c/sha', a, { sha256: sha(Buffer.from('abd')) })).rejects.toMatchObject({ code: 'checksum' });
    expect(await store.head('c/size')).toBeNull();
    expect(await store.head('c/sha')).toBeNull();
  });

  it('ignores temp files in listings', async () => {
    await store.put('t/real', Buffer.from('x'));
    await writeFile(path.join(path.dirname(store.pathOf('t/real')), '.tmp-123-real'), 'partial');
    const keys: string[] = [];
    for await (const o of store.list('t/')) keys.push(o.key);
    expect(keys).toEqual(['t/real']);
  });

  it('probes write, read, list and delete', async () => {
    const r = await store.probe();
    expect(r).toMatchObject({ ok: true });
    // A root below a regular file can never be created.
    await writeFile(path.join(dir, 'plain-file'), 'x');
    const ro = new FsStore(path.join(dir, 'plain-file', 'objects'));
    const bad = await ro.probe();
    expect(bad.ok).toBe(false);
    expect(bad.failed?.step).toBe('write');
  });

  it('reports a missing root as no_bucket when told not to create it', async () => {
    const s = new FsStore(path.join(dir, 'absent-root'), { create: false });
    await expect(s.put('k', Buffer.from('x'))).rejects.toMatchObject({ code: 'no_bucket' });
  });

  it('removes stale temp files of interrupted puts', async () => {
    const s = new FsStore(path.join(dir, 'stale-root'));
    await s.put('stale/obj', Buffer.from('x'));
    const tmp = path.join(path.dirname(s.pathOf('stale/obj')), '.tmp-dead-obj');
    await writeFile(tmp, 'partial');
    expect(await s.removeStaleTemp(60_000)).toBe(0); // too recent: a put may still be writing it
    expect(await s.removeStaleTemp(0)).toBe(1);
    expect(await s.head('stale/obj')).toEqual({ size: 1 });
  });

  it('describes itself as a file URL', () => {
    expect(store.describe()).toBe(`file://${path.join(dir, 'objects')}`);
  });
});

describe('parseStoreSpec', () => {
  const env = {};
  it('parses paths and file URLs', () => {
    expect(parseStoreSpec('file:///var/pgdv', {}, env)).toEqual({ kind: 'fs', root: '/var/pgdv' });
    expect(parseStoreSpec('.pgdv/objects', {}, env, '/home/me')).toEqual({ kind: 'fs', root: '/home/me/.pgdv/objects' });
    expect(parseStoreSpec('/abs/dir', {}, env)).toEqual({ kind: 'fs', root: '/abs/dir' });
  });

  it('parses s3 URLs with query settings, options and environment in that order', () => {
    expect(parseStoreSpec('s3://my-bucket/data/pgdv/', {}, env)).toMatchObject({ kind: 's3', bucket: 'my-bucket', prefix: 'data/pgdv' });
    expect(parseStoreSpec('s3://my-bucket', {}, env)).toMatchObject({ bucket: 'my-bucket', prefix: '' });
    const e = {
      PGDV_S3_ENDPOINT: 'http://minio:9000',
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'AK',
      AWS_SECRET_ACCESS_KEY: 'SK',
      PGDV_S3_FORCE_PATH_STYLE: 'false',
    };
    expect(parseStoreSpec('s3://b-1/p', {}, e)).toEqual({
      kind: 's3', bucket: 'b-1', prefix: 'p', endpoint: 'http://minio:9000', region: 'eu-west-1',
      forcePathStyle: false, accessKeyId: 'AK', secretAccessKey: 'SK', partSize: undefined,
    });
    expect(parseStoreSpec('s3://b-1/p?endpoint=http://127.0.0.1:4569&region=us-east-2&partSize=6291456', { region: 'ap-south-1' }, e)).toMatchObject({
      endpoint: 'http://127.0.0.1:4569', region: 'ap-south-1', partSize: 6291456, forcePathStyle: false,
    });
    // A custom endpoint implies path-style unless told otherwise.
    expect(parseStoreSpec('s3://b-1?endpoint=http://localhost:9000', {}, env)).toMatchObject({ forcePathStyle: true });
  });

  it.each([
    ['', /empty/],
    ['s3://', /not a valid S3 URL/],
    ['s3://Bad_Bucket/x', /bucket name "Bad_Bucket"/],
    ['s3://bucket/x?secret=1', /unknown setting secret/],
    ['s3://bucket/x?endpoint=minio:9000', /endpoint "minio:9000" is invalid/],
    ['s3://bucket/x?forcePathStyle=maybe', /forcePathStyle=maybe is not a boolean/],
    ['gs://bucket/x', /unsupported scheme/],
  ])('rejects %j', (spec, msg) => {
    expect(() => parseStoreSpec(spec, {}, {})).toThrow(msg);
  });

  it('opens the store a spec names', () => {
    expect(openStore(path.join(dir, 'o2'))).toBeInstanceOf(FsStore);
    expect(openStore(path.join(dir, 'o2')).describe()).toBe(`file://${path.join(dir, 'o2')}`);
  });
});
