/**
 * The FastCDC boundary scan (findCutPoint's gear-hash loop) in WebAssembly.
 *
 * The scan is one dependent add-and-shift per byte plus a table lookup and a mask
 * test. V8 runs the JavaScript loop at ~0.75 GB/s on this project's machines (bounds
 * checks on both array reads, no unrolling), about half of what node:crypto's
 * SHA-256 does; chunking + hashing could not reach 60% of raw SHA-256 throughput
 * that way, however the hashing was arranged. The same loop in WebAssembly, four
 * bytes per iteration, runs at ~3.2 GB/s (bench/results/chunking.md).
 *
 * The module is assembled here from its instructions (below, one helper per
 * instruction), not loaded from a binary: there is no build step, nothing opaque in
 * the tree, and the code can be read next to findCutPoint, which stays the reference
 * implementation (test/chunker.test.ts checks both give the same boundaries).
 *
 * Memory layout of an instance: the 256 gear entries (uint32, little endian) at
 * byte 0, then the data region at DATA_OFFSET. A scanner owns its instance; the
 * caller puts bytes into `buf` (a view of the region) and asks for cut points in it.
 */
import type { ChunkerParams } from './fastcdc.js';

/** Seed of the gear table's PRNG: the ASCII bytes of "pgdv". */
export const GEAR_SEED = 0x70676476;

/**
 * mulberry32, a small public-domain 32-bit PRNG: the table only needs well-mixed,
 * reproducible bits, not cryptographic ones, and this makes it regenerable from a
 * single documented seed instead of a 256-number literal nobody can check.
 */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** The 256-entry gear table drawn from mulberry32(seed). */
export function gearTable(seed: number = GEAR_SEED): Uint32Array {
  const next = mulberry32(seed);
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) table[i] = next();
  return table;
}

export const GEAR: Uint32Array = gearTable();

/** Where the data region starts in the instance's memory (after the 1 KiB gear table). */
const DATA_OFFSET = 1024;
const PAGE = 65536;
/** Bytes per loop iteration; 4 measured 30% faster than 1, 8 no better than 4. */
const UNROLL = 4;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'utf8')];

// The instructions used (WebAssembly 1.0 binary opcodes).
const I32 = 0x7f;
const VOID = 0x40;
const block = [0x02, VOID];
const loop = [0x03, VOID];
const ifThen = [0x04, VOID];
const end = [0x0b];
const brIf = (depth: number): number[] => [0x0d, ...uleb(depth)];
const ret = [0x0f];
const get = (local: number): number[] => [0x20, ...uleb(local)];
const tee = (local: number): number[] => [0x22, ...uleb(local)];
const i32Load = (offset: number): number[] => [0x28, 0x02, ...uleb(offset)];
const i32Load8u = (offset: number): number[] => [0x2d, 0x00, ...uleb(offset)];
const i32 = (n: number): number[] => [0x41, ...sleb(n)];
const eqz = [0x45];
const ltU = [0x49];
const gtU = [0x4b];
const leU = [0x4d];
const geU = [0x4f];
const add = [0x6a];
const and = [0x71];
const shl = [0x74];

// scan(i, normal, limit, maskS, maskL) -> end: the locals of the one function.
const I = 0;
const NORMAL = 1;
const LIMIT = 2;
const MASK_S = 3;
const MASK_L = 4;
const H = 5;

/** One byte at i + k: h = (h << 1) + gear[data[i + k]]; return i + k + 1 if (h & mask) == 0. */
function step(mask: number, k: number): number[] {
  return [
    ...get(H), ...i32(1), ...shl,
    ...get(I), ...i32Load8u(DATA_OFFSET + k), ...i32(2), ...shl, ...i32Load(0),
    ...add, ...tee(H),
    ...get(mask), ...and, ...eqz,
    ...ifThen, ...get(I), ...i32(k + 1), ...add, ...ret, ...end,
  ];
}

/** Scans i up to the local `bound` (exclusive) with `mask`: UNROLL bytes at a time, then one at a time. */
function scanTo(bound: number, mask: number): number[] {
  const unrolled: number[] = [];
  for (let k = 0; k < UNROLL; k++) unrolled.push(...step(mask, k));
  return [
    // while (i + UNROLL <= bound) { UNROLL steps; i += UNROLL }
    ...block,
    ...get(I), ...i32(UNROLL), ...add, ...get(bound), ...gtU, ...brIf(0),
    ...loop,
    ...unrolled,
    ...get(I), ...i32(UNROLL), ...add, ...tee(I), ...i32(UNROLL), ...add, ...get(bound), ...leU, ...brIf(0),
    ...end,
    ...end,
    // while (i < bound) { one step; i += 1 }
    ...block,
    ...get(I), ...get(bound), ...geU, ...brIf(0),
    ...loop,
    ...step(mask, 0),
    ...get(I), ...i32(1), ...add, ...tee(I), ...get(bound), ...ltU, ...brIf(0),
    ...end,
    ...end,
  ];
}

function moduleBytes(pages: number): Uint8Array {
  const body = [...vec([[1, I32]]), ...scanTo(NORMAL, MASK_S), ...scanTo(LIMIT, MASK_L), ...get(LIMIT), ...end];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32]]), ...vec([[I32]])]])), // type: (i32 ×5) -> i32
    ...section(3, vec([[0]])), // function 0 has type 0
    ...section(5, vec([[0x00, ...uleb(pages)]])), // memory: `pages` pages, not growable
    ...section(7, vec([[...name('scan'), 0x00, 0], [...name('memory'), 0x02, 0]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

type ScanFn = (i: number, normal: number, limit: number, maskS: number, maskL: number) => number;

// The project's TypeScript libs (no DOM) do not declare the WebAssembly globals; the
// little used here is typed by hand.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: { scan: ScanFn; memory: { buffer: ArrayBuffer } } };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** Compiled modules by page count: compiling is per thread, instantiating per scanner. */
const modules = new Map<number, object>();

/**
 * A data region of `capacity` bytes in WebAssembly memory and the gear scan over it.
 * cut() has exactly findCutPoint's contract, on `buf`.
 */
export class GearScanner {
  /** The data region: fill it, then call cut() with indexes into it. */
  readonly buf: Buffer;
  private readonly scan: ScanFn;

  constructor(readonly capacity: number) {
    // Not shared memory: V8's loads from shared WebAssembly memory made the scan ~2× slower.
    const pages = Math.ceil((DATA_OFFSET + capacity) / PAGE);
    let mod = modules.get(pages);
    if (!mod) modules.set(pages, (mod = new wasm.Module(moduleBytes(pages))));
    const instance = new wasm.Instance(mod);
    const memory = instance.exports.memory;
    // WebAssembly memory is little endian whatever the host is.
    const table = new DataView(memory.buffer, 0, 1024);
    for (let i = 0; i < 256; i++) table.setUint32(4 * i, GEAR[i]!, true);
    this.buf = Buffer.from(memory.buffer, DATA_OFFSET, capacity);
    this.scan = instance.exports.scan;
  }

  /**
   * The end (exclusive) of the chunk starting at `start`, given the bytes
   * buf[start, end): as findCutPoint(buf, start, end, p).
   */
  cut(start: number, end: number, p: ChunkerParams): number {
    const n = end - start;
    if (n <= p.minSize) return end;
    const limit = n > p.maxSize ? start + p.maxSize : end;
    const normal = start + p.avgSize < limit ? start + p.avgSize : limit;
    // The hash restarts at minSize, as in findCutPoint.
    return this.scan(start + p.minSize, normal, limit, p.maskS, p.maskL);
  }
}
