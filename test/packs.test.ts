import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkBuffer } from '../src/chunking/fastcdc.js';
import { ChunkReadError, PackReader, readPackIndex, type ChunkRef } from '../src/packs/reader.js';
import { PACK_TRAILER_SIZE, PackWriter, packKey, type SealedPack } from '../src/packs/writer.js';
import { FsStore } from '../src/store/fs.js';
import { readAll, type GetRange, type ObjectStore, type PutBody, type PutOptions } from '../src/store/types.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pgdv-packs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Counts GETs so the test can see ranges being coalesced. */
class CountingStore extends FsStore {
  gets: { key: string; range?: GetRange }[] = [];
  override get(key: string, range?: GetRange) {
    this.gets.push({ key, range });
    return super.get(key, range);
  }
}

/** Writes files' chunks into packs; returns each file's chunk refs in order (the index the database would keep). */
async function ingest(store: ObjectStore, files: Buffer[], targetSize: number) {
  const packs: SealedPack[] = [];
  const writer = new PackWriter({ store, tempDir: path.join(dir, 'tmp'), targetSize, onPack: (p) => void packs.push(p) });
  const fileChunks: string[][] = [];
  for (const f of files) {
    const { chunks } = chunkBuffer(f, { minSize: 2048, avgSize: 8192, maxSize: 32768 });
    for (const c of chunks) await writer.add(c.hash, c.data);
    fileChunks.push(chunks.map((c) => c.hash));
  }
  const sealed = await writer.finish();
  expect(sealed).toEqual(packs);
  const where = new Map<string, ChunkRef>();
  for (const p of packs) for (const e of p.entries) where.set(e.hash, { ...e, packId: p.packId });
  return { packs, refs: fileChunks.map((hs) => hs.map((h) => where.get(h)!)) };
}

describe('packs', () => {
  it('writes chunks into several content-addressed packs and reads every file back verified', async () => {
    const store = new CountingStore(path.join(dir, 'store1'));
    const files = Array.from({ length: 6 }, () => randomBytes(700_000));
    files.push(Buffer.concat([files[0]!, files[1]!])); // duplicate content: no new chunks
    const { packs, refs } = await ingest(store, files, 1 << 20);
    expect(packs.length).toBeGreaterThanOrEqual(4);
    const stored = new Set(packs.flatMap((p) => p.entries.map((e) => e.hash)));
    expect(packs.reduce((n, p) => n + p.entries.length, 0)).toBe(stored.size); // each chunk stored once

    for (const p of packs) {
      const obj = await readAll(await store.get(packKey(p.packId)));
      expect(obj.length).toBe(p.size);
      // The id is the SHA-256 of the footer (JSON + trailer), which lists every chunk's hash.
      const jsonLen = obj.readUInt32LE(obj.length - PACK_TRAILER_SIZE);
      expect(sha(obj.subarray(obj.length - PACK_TRAILER_SIZE - jsonLen))).toBe(p.packId);
      expect(await readPackIndex(store, p.packId)).toEqual(p.entries);
    }
    // Temp pack files are gone once uploaded.
    expect(await readdir(path.join(dir, 'tmp'))).toEqual([]);

    const reader = new PackReader(store);
    for (const [i, fileRefs] of refs.entries()) {
      store.gets = [];
      const parts: Buffer[] = [];
      for await (const { ref, data } of reader.readChunks(fileRefs)) {
        expect(sha(data)).toBe(ref.hash);
        parts.push(data);
      }
      expect(Buffer.concat(parts).equals(files[i]!)).toBe(true);
      // Adjacent chunks of one pack come in one ranged GET: at most one per pack touched
      // for a freshly written file.
      if (i < 6) expect(store.gets.length).toBeLessThanOrEqual(new Set(fileRefs.map((r) => r.packId)).size);
    }
  });

  it('sends the whole-pack SHA-256 as the upload checksum to a store without putFile (S3), and checks the footer against the id', async () => {
    // An FsStore seen through put() only, as S3 is: the FsStore verifies the declared SHA-256.
    const fs = new FsStore(path.join(dir, 'store-put'));
    const declared: { key: string; sha256?: string }[] = [];
    const store: ObjectStore = {
      put: (key: string, body: PutBody, options: PutOptions = {}) => {
        declared.push({ key, sha256: options.sha256 });
        return fs.put(key, body, options);
      },
      get: (key, range) => fs.get(key, range),
      head: (key) => fs.head(key),
      delete: (key) => fs.delete(key),
      list: (prefix) => fs.list(prefix),
      probe: () => fs.probe(),
      describe: () => fs.describe(),
    };
    const { packs } = await ingest(store, [randomBytes(500_000), randomBytes(500_000)], 1 << 18);
    expect(declared.length).toBe(packs.length);
    for (const p of packs) {
      const obj = await readAll(await store.get(packKey(p.packId)));
      expect(declared.find((d) => d.key === packKey(p.packId))?.sha256).toBe(sha(obj));
    }
    // A footer that does not hash to the pack's id is refused.
    const victim = packs[0]!;
    const fh = await open(fs.pathOf(packKey(victim.packId)), 'r+');
    const { size } = await fh.stat();
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, size - PACK_TRAILER_SIZE - 3);
    b[0] = b[0]! ^ 0x01;
    await fh.write(b, 0, 1, size - PACK_TRAILER_SIZE - 3);
    await fh.close();
    await expect(readPackIndex(store, victim.packId)).rejects.toThrow(/does not hash to its id/);
  });

  it('merges reads of nearby chunks of one pack across small gaps', async () => {
    const store = new CountingStore(path.join(dir, 'store7'));
    const { packs, refs } = await ingest(store, [randomBytes(600_000)], 1 << 30);
    expect(packs).toHaveLength(1);
    const every2nd = refs[0]!.filter((_, i) => i % 2 === 0);
    const check = async (reader: PackReader): Promise<number> => {
      store.gets = [];
      const got: string[] = [];
      for await (const { ref, data } of reader.readChunks(every2nd)) {
        expect(sha(data)).toBe(ref.hash);
        got.push(ref.hash);
      }
      expect(got).toEqual(every2nd.map((r) => r.hash));
      return store.gets.length;
    };
    expect(await check(new PackReader(store))).toBe(1);
    expect(await check(new PackReader(store, { maxGap: 0 }))).toBe(every2nd.length);
  });

  it('fails naming the chunk and pack when one byte of a stored pack is flipped', async () => {
    const store = new FsStore(path.join(dir, 'store2'));
    const file = randomBytes(300_000);
    const { packs, refs } = await ingest(store, [file], 1 << 20);
    const pack = packs[0]!;
    const victim = pack.entries[3]!;
    const fh = await open(store.pathOf(packKey(pack.packId)), 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, victim.offset + 10);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, victim.offset + 10);
    await fh.close();

    const reader = new PackReader(store);
    const seen: string[] = [];
    const err = await (async () => {
      for await (const { ref } of reader.readChunks(refs[0]!)) seen.push(ref.hash);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChunkReadError);
    expect(err).toMatchObject({ code: 'corrupt', chunkHash: victim.hash, packId: pack.packId });
    expect((err as Error).message).toContain(`chunk ${victim.hash} in pack ${pack.packId}`);
    // The chunks before the damaged one were delivered, none after.
    expect(seen).toEqual(pack.entries.slice(0, 3).map((e) => e.hash));
    await expect(reader.readChunk({ ...victim, packId: pack.packId })).rejects.toMatchObject({ code: 'corrupt' });
    expect((await reader.readChunk({ ...pack.entries[0]!, packId: pack.packId })).length).toBe(pack.entries[0]!.length);
  });

  it('fails naming the chunk and pack when the pack is missing', async () => {
    const store = new FsStore(path.join(dir, 'store3'));
    const { packs, refs } = await ingest(store, [randomBytes(50_000)], 1 << 20);
    await store.delete(packKey(packs[0]!.packId));
    const ref = refs[0]![0]!;
    await expect(new PackReader(store).readChunk(ref)).rejects.toMatchObject({
      code: 'missing',
      chunkHash: ref.hash,
      packId: ref.packId,
      message: expect.stringMatching(new RegExp(`chunk ${ref.hash}: its pack ${ref.packId} is missing`)),
    });
  });

  it('reports a failed upload from add/finish and leaves no pack behind', async () => {
    const failing: ObjectStore = Object.assign(new FsStore(path.join(dir, 'store4')), {
      put: () => Promise.reject(new Error('bucket on fire')),
      putFile: () => Promise.reject(new Error('bucket on fire')),
    });
    const w = new PackWriter({ store: failing, tempDir: path.join(dir, 'tmp4'), targetSize: 10_000 });
    const chunk = randomBytes(20_000);
    await w.add(sha(chunk), chunk); // seals and starts the (failing) upload
    await expect(w.finish()).rejects.toThrow(/bucket on fire/);
    expect(await readdir(path.join(dir, 'tmp4'))).toEqual([]);
  });

  it('keeps offsets right when several files add chunks concurrently', async () => {
    const store = new FsStore(path.join(dir, 'store6'));
    const w = new PackWriter({ store, tempDir: path.join(dir, 'tmp6'), targetSize: 200_000 });
    const chunks = Array.from({ length: 40 }, (_, i) => randomBytes(5_000 + i * 97));
    await Promise.all([0, 1].map(async (half) => {
      for (const c of chunks.filter((_, i) => i % 2 === half)) await w.add(sha(c), c);
    }));
    const packs = await w.finish();
    const refs = packs.flatMap((p) => p.entries.map((e) => ({ ...e, packId: p.packId })));
    expect(refs).toHaveLength(40);
    for await (const { ref, data } of new PackReader(store).readChunks(refs)) expect(sha(data)).toBe(ref.hash);
  });

  it('skips a chunk it already wrote and rejects a bad target size', async () => {
    const store = new FsStore(path.join(dir, 'store5'));
    const w = new PackWriter({ store, tempDir: path.join(dir, 'tmp5') });
    const c = Buffer.from('same bytes');
    expect(await w.add(sha(c), c)).toBe(true);
    expect(await w.add(sha(c), c)).toBe(false);
    const [pack] = await w.finish();
    expect(pack!.entries).toEqual([{ hash: sha(c), offset: 0, length: c.length }]);
    expect(() => new PackWriter({ store, tempDir: dir, targetSize: 0 })).toThrow(/targetSize=0 is invalid/);
  });
});
