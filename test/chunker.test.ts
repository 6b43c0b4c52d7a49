import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ChunkPool } from '../src/chunking/pool.js';
import { contentHashOf, ContentHasher, EMPTY_CONTENT_HASH } from '../src/chunking/content-hash.js';
import { GearScanner } from '../src/chunking/gear.js';
import {
  chunkBuffer,
  chunkStream,
  Chunker,
  DEFAULT_CHUNKER_OPTIONS,
  findCutPoint,
  GEAR,
  gearTable,
  resolveChunkerOptions,
  type Chunk,
  type ChunkerOptions,
} from '../src/chunking/fastcdc.js';

/** Seeded PRNG so every failure is reproducible from the seed in the test name. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function randomBytes(size: number, seed: number): Buffer {
  const next = prng(seed);
  const words = new Uint32Array(Math.ceil(size / 4));
  for (let i = 0; i < words.length; i++) words[i] = next();
  return Buffer.from(words.buffer, 0, size);
}

/** Splits data into pieces of random sizes between 1 and maxPiece bytes. */
function* pieces(data: Buffer, seed: number, maxPiece: number): Generator<Buffer> {
  const next = prng(seed);
  let off = 0;
  while (off < data.length) {
    // Skewed towards small pieces so tiny reads get exercised next to big ones.
    const r = next() / 2 ** 32;
    const n = 1 + Math.floor(r * r * r * maxPiece);
    yield data.subarray(off, off + n);
    off += n;
  }
}

function boundaries(chunks: Chunk[]): string {
  return chunks.map((c) => `${c.offset}+${c.length}`).join(',');
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const SMALL: ChunkerOptions = { minSize: 256, avgSize: 1024, maxSize: 4096 };

/** The content hash as docs/files.md defines it, written out independently of content-hash.ts. */
const listHash = (chunkHashes: string[]): string =>
  sha(Buffer.concat([Buffer.from('pgdv-content-v1\n', 'ascii'), ...chunkHashes.map((h) => Buffer.from(h, 'hex'))]));

describe('content hash', () => {
  it('is SHA-256 over the tag and the raw chunk digests, in order', () => {
    const a = sha(Buffer.from('a'));
    const b = sha(Buffer.from('b'));
    expect(contentHashOf([a, b])).toBe(listHash([a, b]));
    expect(contentHashOf([b, a])).not.toBe(contentHashOf([a, b]));
    expect(new ContentHasher().add(Buffer.from(a, 'hex')).add(b).digest()).toBe(listHash([a, b]));
    // Never the plain SHA-256 of the concatenated digests.
    expect(contentHashOf([a, b])).not.toBe(sha(Buffer.from(a + b, 'hex')));
  });
});

describe('GearScanner (WebAssembly boundary scan)', () => {
  it('finds exactly findCutPoint\'s boundaries, for several chunker sizes and buffer ends', () => {
    for (const [i, opts] of [SMALL, {}, { minSize: 2048, avgSize: 8192, maxSize: 65536 }, { minSize: 300, avgSize: 512, maxSize: 777 }].entries()) {
      const p = resolveChunkerOptions(opts);
      const data = randomBytes(3 << 20, 1000 + i);
      const scanner = new GearScanner(data.length);
      data.copy(scanner.buf);
      // Boundaries over the whole buffer, then with the input ending at odd places.
      for (const end of [data.length, data.length - 1, data.length - 3, (data.length >> 1) + 5]) {
        let pos = 0;
        while (pos < end) {
          const want = findCutPoint(data, pos, end, p);
          expect(scanner.cut(pos, end, p), `options ${i}, end ${end}, at ${pos}`).toBe(want);
          pos = want;
        }
      }
    }
    // Data without natural boundaries: every cut is forced at maxSize.
    const zeros = new GearScanner(1 << 20);
    zeros.buf.fill(0);
    const p = resolveChunkerOptions(SMALL);
    expect(zeros.cut(0, 1 << 20, p)).toBe(findCutPoint(Buffer.alloc(1 << 20), 0, 1 << 20, p));
  });
});

describe('gear table', () => {
  it('is the documented mulberry32 sequence from seed "pgdv" (changing it breaks dedup with stored data)', () => {
    expect(GEAR.length).toBe(256);
    expect(Array.from(GEAR.slice(0, 4))).toEqual([0x990a0e56, 0x31928a96, 0xad2a176e, 0x93892f41]);
    expect(gearTable(0x70676476)).toEqual(GEAR);
    expect(sha(Buffer.from(GEAR.buffer))).toMatchInlineSnapshot(`"c1e84e6b6bc37cbf510d831094854dca11a73f638720a4e43a151036bf9831ed"`);
  });

  it('pins chunk boundaries of a fixed input', () => {
    const { chunks } = chunkBuffer(randomBytes(1 << 20, 42), SMALL);
    expect(sha(Buffer.from(boundaries(chunks)))).toMatchInlineSnapshot(`"26a0de11ec96237dad9ce4c2bf26dd4b2ad92d5bd603f7321d4a1d1b75115300"`);
    const def = chunkBuffer(randomBytes(4 << 20, 7));
    expect(boundaries(def.chunks)).toMatchInlineSnapshot(`"0+72910,72910+82525,155435+112969,268404+87933,356337+65619,421956+76954,498910+74269,573179+92723,665902+72823,738725+72242,810967+70121,881088+67534,948622+78447,1027069+82414,1109483+77134,1186617+84128,1270745+94230,1364975+86194,1451169+75906,1527075+66136,1593211+65826,1659037+72740,1731777+68429,1800206+81435,1881641+91676,1973317+70520,2043837+72588,2116425+100257,2216682+95603,2312285+65714,2377999+79017,2457016+71477,2528493+68276,2596769+85544,2682313+66451,2748764+70983,2819747+81522,2901269+70321,2971590+83558,3055148+101515,3156663+61144,3217807+65976,3283783+68978,3352761+81099,3433860+78867,3512727+89580,3602307+89681,3691988+71445,3763433+82365,3845798+81974,3927772+91755,4019527+76587,4096114+67575,4163689+30615"`);
  });
});

describe('options', () => {
  it('defaults to 56/64/256 KiB', () => {
    const p = resolveChunkerOptions();
    expect([p.minSize, p.avgSize, p.maxSize]).toEqual([DEFAULT_CHUNKER_OPTIONS.minSize, DEFAULT_CHUNKER_OPTIONS.avgSize, DEFAULT_CHUNKER_OPTIONS.maxSize]);
    expect([p.minSize, p.avgSize, p.maxSize]).toEqual([56 * 1024, 64 * 1024, 256 * 1024]);
    expect(resolveChunkerOptions({ avgSize: 16384 })).toMatchObject({ minSize: 14336, maxSize: 65536 });
  });

  it.each([
    [{ avgSize: 1000 }, /avgSize=1000 .*power of two/],
    [{ avgSize: 128 }, /avgSize=128 .*at least 256/],
    [{ minSize: 0 }, /minSize=0 is invalid/],
    [{ maxSize: 1.5 }, /maxSize=1.5 is invalid/],
    [{ minSize: 70000 }, /need minSize < avgSize < maxSize/],
    [{ maxSize: 65536 }, /need minSize < avgSize < maxSize/],
    [{ maxSize: 2 ** 31 }, /maxSize=2147483648 is too large/],
  ])('rejects %o', (opts, msg) => {
    expect(() => new Chunker(opts)).toThrow(msg);
  });
});

describe('chunking', () => {
  it('covers the input exactly, respects min and max, and hashes chunks and file', () => {
    const data = randomBytes(3 << 20, 1);
    const { chunks, summary } = chunkBuffer(data, SMALL);
    let off = 0;
    for (const [i, c] of chunks.entries()) {
      expect(c.offset).toBe(off);
      expect(c.length).toBeLessThanOrEqual(4096);
      if (i < chunks.length - 1) expect(c.length).toBeGreaterThanOrEqual(256);
      expect(c.data.equals(data.subarray(off, off + c.length))).toBe(true);
      expect(c.hash).toBe(sha(c.data));
      off += c.length;
    }
    expect(off).toBe(data.length);
    expect(summary).toEqual({ size: data.length, hash: listHash(chunks.map((c) => c.hash)), chunkCount: chunks.length });
    expect(chunkBuffer(data, { ...SMALL, plainSha256: true }).summary.sha256).toBe(sha(data));
    // Normalized chunking keeps the mean near the target.
    const mean = data.length / chunks.length;
    expect(mean).toBeGreaterThan(700);
    expect(mean).toBeLessThan(2000);
  });

  it('forces a cut at maxSize on data without natural boundaries', () => {
    const { chunks } = chunkBuffer(Buffer.alloc(1 << 20), SMALL);
    expect(chunks.slice(0, -1).every((c) => c.length === 4096)).toBe(true);
    expect(new Set(chunks.map((c) => c.hash)).size).toBe(1);
  });

  it('handles empty and tiny inputs', () => {
    expect(chunkBuffer(Buffer.alloc(0))).toEqual({ chunks: [], summary: { size: 0, hash: EMPTY_CONTENT_HASH, chunkCount: 0 } });
    expect(EMPTY_CONTENT_HASH).toBe(sha(Buffer.from('pgdv-content-v1\n')));
    const one = chunkBuffer(Buffer.from('x'));
    expect(one.chunks).toHaveLength(1);
    expect(one.chunks[0]!.hash).toBe(sha(Buffer.from('x')));
    expect(one.summary.hash).toBe(listHash([sha(Buffer.from('x'))]));
  });

  it('gives the same chunks whatever the read sizes (many seeds, 1 byte to 1 MiB pieces)', async () => {
    for (let seed = 1; seed <= 24; seed++) {
      const size = 64 * 1024 + (prng(seed)() % (512 * 1024));
      const data = randomBytes(size, seed * 7919);
      const want = chunkBuffer(data, SMALL);
      const maxPiece = [1 << 20, 64 * 1024, 4096, 300, 16][seed % 5]!;
      const stream = chunkStream(Readable.from(pieces(data, seed, maxPiece)), SMALL);
      const got: Chunk[] = [];
      for await (const c of stream) got.push(c);
      expect(boundaries(got), `seed ${seed}, pieces up to ${maxPiece}`).toBe(boundaries(want.chunks));
      expect(got.map((c) => c.hash)).toEqual(want.chunks.map((c) => c.hash));
      expect(stream.result()).toEqual(want.summary);
    }
  });

  it('gives the same chunks with default sizes for 1-byte pieces and one big piece', () => {
    const data = randomBytes(1 << 20, 99);
    const whole = chunkBuffer(data);
    const c = new Chunker();
    const got: Chunk[] = [];
    for (let i = 0; i < data.length; i++) for (const ch of c.push(data.subarray(i, i + 1))) got.push(ch);
    for (const ch of c.finish()) got.push(ch);
    expect(boundaries(got)).toBe(boundaries(whole.chunks));
  });

  it('changes at most a few chunks when one byte is inserted in the middle of 8 MiB', () => {
    for (const seed of [3, 5, 11]) {
      const data = randomBytes(8 << 20, seed);
      const mid = data.length >> 1;
      const edited = Buffer.concat([data.subarray(0, mid), Buffer.from([0x5a]), data.subarray(mid)]);
      const before = new Set(chunkBuffer(data).chunks.map((c) => c.hash));
      const after = chunkBuffer(edited).chunks;
      const changed = after.filter((c) => !before.has(c.hash));
      expect(changed.length, `seed ${seed}`).toBeLessThanOrEqual(3);
      expect(changed.length).toBeGreaterThanOrEqual(1);
    }
  });

  it('rejects string pieces (a stream with an encoding set)', async () => {
    const s = Readable.from(['abc']);
    await expect(async () => {
      for await (const _ of chunkStream(s)) void _;
    }).rejects.toThrow(/without an encoding/);
  });

  it('refuses a push after a push that was not drained', () => {
    const c = new Chunker(SMALL);
    const first = c.push(randomBytes(100_000, 1));
    first.next(); // one chunk taken, the rest abandoned
    expect(() => [...c.push(randomBytes(10, 2))]).toThrow(/previous push\(\) was not iterated to its end/);
  });

  it('hands out chunk buffers the caller may keep', () => {
    const data = randomBytes(200_000, 5);
    const c = new Chunker(SMALL);
    const kept = [...c.push(data), ...c.finish()];
    expect(Buffer.concat(kept.map((k) => k.data)).equals(data)).toBe(true);
  });
});

describe('ChunkPool (worker threads)', () => {
  it('gives the same chunks and file hashes as the in-thread chunker, files read concurrently', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pgdv-pool-'));
    const pool = new ChunkPool({ workers: 2, chunker: SMALL, window: 4 });
    try {
      const datas = [randomBytes(300_000, 1), randomBytes(0, 2), randomBytes(1_000_000, 3), randomBytes(77, 4)];
      const paths = await Promise.all(datas.map(async (d, i) => {
        const p = path.join(dir, `f${i}`);
        await writeFile(p, d);
        return p;
      }));
      const results = await Promise.all(paths.map(async (p) => {
        const f = pool.chunkFile(p);
        const chunks: Chunk[] = [];
        for await (const c of f) chunks.push(c);
        return { chunks, summary: f.result() };
      }));
      for (const [i, r] of results.entries()) {
        const want = chunkBuffer(datas[i]!, SMALL);
        expect(boundaries(r.chunks)).toBe(boundaries(want.chunks));
        expect(r.chunks.map((c) => c.hash)).toEqual(want.chunks.map((c) => c.hash));
        expect(Buffer.concat(r.chunks.map((c) => c.data)).equals(datas[i]!)).toBe(true);
        expect(r.summary).toEqual(want.summary);
      }
      const missing = pool.chunkFile(path.join(dir, 'nope'));
      await expect(async () => {
        for await (const _ of missing) void _;
      }).rejects.toThrow(/chunking .*nope failed: ENOENT/);
    } finally {
      await pool.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('zeroCopy: chunks are views of the worker\'s regions, which come back as chunks are released (a file of 5× its regions)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pgdv-pool-'));
    const pool = new ChunkPool({ workers: 1, window: 8, zeroCopy: true, regions: 2 });
    try {
      const data = randomBytes(40 << 20, 21);
      await writeFile(path.join(dir, 'big'), data);
      const want = chunkBuffer(data);
      const f = pool.chunkFile(path.join(dir, 'big'));
      let i = 0;
      for await (const c of f) {
        const w = want.chunks[i++]!;
        expect(`${c.offset}+${c.length}`).toBe(`${w.offset}+${w.length}`);
        expect(c.hash).toBe(w.hash);
        expect(c.data.equals(w.data)).toBe(true);
        c.release!();
      }
      expect(i).toBe(want.chunks.length);
      expect(f.result()).toEqual(want.summary);
    } finally {
      await pool.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives the same chunks across its 4 MiB read regions (default sizes, files at and around region sizes)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pgdv-pool-'));
    const pool = new ChunkPool({ workers: 2, window: 3 });
    try {
      const datas = [randomBytes(4 << 20, 11), randomBytes((9 << 20) + 12345, 12), randomBytes((8 << 20) - 1, 13), randomBytes(300_000, 14)];
      const paths = await Promise.all(datas.map(async (d, i) => {
        const p = path.join(dir, `g${i}`);
        await writeFile(p, d);
        return p;
      }));
      const results = await Promise.all(paths.map(async (p) => {
        const f = pool.chunkFile(p);
        const chunks: Chunk[] = [];
        for await (const c of f) chunks.push(c);
        return { chunks, summary: f.result() };
      }));
      for (const [i, r] of results.entries()) {
        const want = chunkBuffer(datas[i]!);
        expect(boundaries(r.chunks)).toBe(boundaries(want.chunks));
        expect(r.chunks.map((c) => c.hash)).toEqual(want.chunks.map((c) => c.hash));
        expect(Buffer.concat(r.chunks.map((c) => c.data)).equals(datas[i]!)).toBe(true);
        expect(r.summary).toEqual(want.summary);
      }
    } finally {
      await pool.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
