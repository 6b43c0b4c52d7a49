/**
 * Files benchmark: pgdv add / checkout side by side with restic and borg (Debian
 * packages; installed with apt-get when missing, or skipped), all on local
 * filesystem stores, plus chunking throughput, small files and many versions.
 *
 *   node --import tsx bench/files.ts [--quick] [--keep]
 *
 * --quick shrinks every data set (~5× smaller) for a smoke run; --only 1,2,3,5 runs some
 * sections (written to bench/results/files-rerun.md; asking for any of 1, 2, 3 runs
 * all three, as 2 and 3 build on 1). Prints each figure
 * next to its peer from the same run, the ratio and the bar, and writes
 * bench/results/files.md (full runs only unless --write).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init } from '../src/api/admin.js';
import { Pgdv } from '../src/api/client.js';
import { createDataset } from '../src/api/datasets.js';
import { addFiles, checkoutFiles, storageStats } from '../src/api/files.js';
import { stopServer } from '../src/api/server.js';
import { ChunkPool, findCutPoint, GearScanner, resolveChunkerOptions, KiB, MiB } from '../src/chunking/index.js';
import { READ, RegionChunker, RegionRing, regionSize } from '../src/chunking/region.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const keep = args.includes('--keep');
const write = !quick || args.includes('--write');
// --only 1,2,3,5 runs those sections (any of 1-3 runs all three: 2 and 3 need 1) and writes results/files-rerun.md.
const onlyArg = args.indexOf('--only');
const only = onlyArg >= 0 ? new Set(args[onlyArg + 1]!.split(',').map(Number)) : undefined;
const want = (n: number): boolean => !only || only.has(n);
const S = {
  bigFiles: quick ? 20 : 100,
  bigSize: 10 * MiB,
  editFiles: 10,
  newFiles: 5,
  smallFiles: quick ? 10_000 : 100_000,
  versions: quick ? 20 : 100,
  versionSize: quick ? 20 * MiB : 100 * MiB,
  cpuMiB: quick ? 128 : 512,
};

const lines: string[] = [];
const say = (s = ''): void => {
  console.log(s);
  lines.push(s);
};

function rnd(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let o = 0; o < size; o += 64 * KiB) randomFillSync(b, o, Math.min(64 * KiB, size - o));
  return b;
}

function du(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir]).toString().split('\t')[0]);
}

async function timed<T>(fn: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}

function run(cmd: string, argv: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): number {
  const t = performance.now();
  const r = spawnSync(cmd, argv, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed: ${r.stderr?.toString()}`);
  return performance.now() - t;
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function ensureTools(): { restic: boolean; borg: boolean } {
  if (!have('restic') || !have('borg')) {
    console.log('installing restic and borgbackup from Debian (apt-get)...');
    spawnSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq restic borgbackup'], { stdio: 'ignore' });
  }
  return { restic: have('restic'), borg: have('borg') };
}

const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);
const f1 = (n: number): string => n.toFixed(1);
const f2 = (n: number): string => n.toFixed(2);

interface Row {
  figure: string;
  pgdv: string;
  peer: string;
  ratio: string;
  bar: string;
  ok: boolean | null;
}
const rows: Row[] = [];

async function main(): Promise<void> {
  const tools = ensureTools();
  const base = await mkdtemp(path.join(tmpdir(), 'pgdv-bench-files-'));
  execFileSync('chmod', ['0755', base]);
  const home = path.join(base, 'home');
  const t0 = new Date();
  const load0 = loadavg().map(f2).join(' ');
  say(`# Files benchmark${quick ? ' (--quick)' : ''}`);
  say();
  say(`Date: ${t0.toISOString()}  `);
  say(`Machine: ${availableParallelism()} cores, ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}; load average at start ${load0}  `);
  say(`Command: \`node --import tsx bench/files.ts ${args.join(' ')}\`  `);
  say(`Peers: ${tools.restic ? execFileSync('restic', ['version']).toString().trim().split(' compiled')[0] : 'restic: not available, skipped'}; ${tools.borg ? execFileSync('borg', ['--version']).toString().trim() : 'borg: not available, skipped'}. All stores on the same local disk; all data read from the page cache.`);
  say();
  say('The machine is shared with other engineers\' builds and tests running at the same time (2 cores): absolute figures are noisy (±20% or worse); the ratios compare runs made back to back.');
  say();

  await init({ home });
  const pgdv = await Pgdv.open({ home });
  try {
    for (const name of ['big', 'small', 'versions']) await createDataset(pgdv, { name, kind: 'files' });
    const objects = path.join(home, 'objects');
    const restic = path.join(base, 'restic');
    const borg = path.join(base, 'borg');
    const renv = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: path.join(base, 'restic-cache') };
    const benv = { BORG_PASSPHRASE: '', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_BASE_DIR: path.join(base, 'borg-base') };
    if (tools.restic) run('restic', ['init', '--repo', restic, '-q'], renv);
    if (tools.borg) run('borg', ['init', '--encryption=none', borg], benv);

    // 1. First ingest: N × 10 MiB random files (2 and 3 build on it; 4 reads some of them).
    const src = path.join(base, 'src');
    await mkdir(src);
    const bigNeeded = want(1) || want(2) || want(3) ? S.bigFiles : want(4) ? Math.min(16, S.bigFiles) : 0;
    for (let i = 0; i < bigNeeded; i++) await writeFile(path.join(src, `f${String(i).padStart(3, '0')}.bin`), rnd(S.bigSize));
    const total1 = S.bigFiles * S.bigSize;
    if (want(1) || want(2) || want(3)) {
    const p1 = await timed(() => addFiles(pgdv, { dataset: 'big', paths: [src], message: 'v1' }));
    const r1 = tools.restic ? run('restic', ['-r', restic, 'backup', '-q', '--host', 'bench', src], renv) : NaN;
    const b1 = tools.borg ? run('borg', ['create', `${borg}::v1`, '.'], benv, src) : NaN;
    const size1 = { pgdv: du(objects), restic: tools.restic ? du(restic) : NaN, borg: tools.borg ? du(borg) : NaN };
    say(`## 1. First ingest: ${S.bigFiles} files × 10 MiB random (${f1(total1 / MiB)} MiB)`);
    say();
    say('| tool | wall s | MB/s | store bytes |');
    say('|---|---:|---:|---:|');
    say(`| pgdv add | ${f2(p1.ms / 1000)} | ${f1(mbps(total1, p1.ms))} | ${size1.pgdv} |`);
    say(`| restic backup | ${f2(r1 / 1000)} | ${f1(mbps(total1, r1))} | ${size1.restic} |`);
    say(`| borg create | ${f2(b1 / 1000)} | ${f1(mbps(total1, b1))} | ${size1.borg} |`);
    say();
    rows.push({ figure: `first ingest ${f1(total1 / 2 ** 30)} GiB, wall s`, pgdv: f2(p1.ms / 1000), peer: `restic ${f2(r1 / 1000)}, borg ${f2(b1 / 1000)}`, ratio: f2(p1.ms / r1), bar: '≤ 1.00 × restic', ok: tools.restic ? p1.ms <= r1 : null });

    // 2. v2: 100 bytes inserted in the middle of 10 files, 5 new files.
    for (let i = 0; i < S.editFiles; i++) {
      const f = path.join(src, `f${String(i * Math.floor(S.bigFiles / S.editFiles)).padStart(3, '0')}.bin`);
      const fh = await open(f, 'r+');
      const mid = S.bigSize / 2;
      const tail = Buffer.alloc(S.bigSize - mid);
      await fh.read(tail, 0, tail.length, mid);
      await fh.write(Buffer.concat([rnd(100), tail]), 0, tail.length + 100, mid);
      await fh.close();
    }
    for (let i = 0; i < S.newFiles; i++) await writeFile(path.join(src, `new${i}.bin`), rnd(S.bigSize));
    const p2 = await timed(() => addFiles(pgdv, { dataset: 'big', paths: [src], message: 'v2' }));
    const r2 = tools.restic ? run('restic', ['-r', restic, 'backup', '-q', '--host', 'bench', src], renv) : NaN;
    const b2 = tools.borg ? run('borg', ['create', `${borg}::v2`, '.'], benv, src) : NaN;
    const grow = { pgdv: du(objects) - size1.pgdv, restic: tools.restic ? du(restic) - size1.restic : NaN, borg: tools.borg ? du(borg) - size1.borg : NaN };
    const newRandom = S.newFiles * S.bigSize + S.editFiles * 100;
    say(`## 2. v2: 100 bytes inserted mid-file in ${S.editFiles} files + ${S.newFiles} new 10 MiB files`);
    say();
    say(`New random bytes: ${newRandom}; everything beyond that is the cost of the edits.`);
    say();
    say('| tool | store grew by | beyond the new bytes | wall s |');
    say('|---|---:|---:|---:|');
    say(`| pgdv add | ${grow.pgdv} | ${grow.pgdv - newRandom} | ${f2(p2.ms / 1000)} |`);
    say(`| restic backup | ${grow.restic} | ${grow.restic - newRandom} | ${f2(r2 / 1000)} |`);
    say(`| borg create | ${grow.borg} | ${grow.borg - newRandom} | ${f2(b2 / 1000)} |`);
    say();
    say('restic, borg and pgdv (its stat cache, docs/files.md) skip files whose metadata is unchanged since the previous backup or add; all three read the 15 changed and new files.');
    say();
    rows.push({ figure: 'v2 bytes added to the store', pgdv: String(grow.pgdv), peer: `restic ${grow.restic}, borg ${grow.borg}`, ratio: f2(grow.pgdv / grow.restic), bar: '≤ 1.20 × restic', ok: tools.restic ? grow.pgdv <= 1.2 * grow.restic : null });

    // 3. Checkout of v2.
    const total2 = total1 + S.newFiles * S.bigSize + S.editFiles * 100;
    const co = path.join(base, 'co-pgdv');
    const pc = await timed(() => checkoutFiles(pgdv, { dataset: 'big', ref: 'main', out: co }));
    await rm(co, { recursive: true, force: true });
    const rco = path.join(base, 'co-restic');
    const rc = tools.restic ? run('restic', ['-r', restic, 'restore', 'latest', '-q', '--target', rco], renv) : NaN;
    await rm(rco, { recursive: true, force: true });
    const bco = path.join(base, 'co-borg');
    await mkdir(bco);
    const bc = tools.borg ? run('borg', ['extract', `${borg}::v2`], benv, bco) : NaN;
    await rm(bco, { recursive: true, force: true });
    say(`## 3. Checkout of v2 (${f1(total2 / MiB)} MiB) to a local folder`);
    say();
    say('| tool | wall s | MB/s |');
    say('|---|---:|---:|');
    say(`| pgdv checkout | ${f2(pc.ms / 1000)} | ${f1(mbps(total2, pc.ms))} |`);
    say(`| restic restore | ${f2(rc / 1000)} | ${f1(mbps(total2, rc))} |`);
    say(`| borg extract | ${f2(bc / 1000)} | ${f1(mbps(total2, bc))} |`);
    say();
    rows.push({ figure: 'checkout of v2, MB/s', pgdv: f1(mbps(total2, pc.ms)), peer: `restic ${f1(mbps(total2, rc))}, borg ${f1(mbps(total2, bc))}`, ratio: f2(rc / pc.ms), bar: '≥ 1.00 × restic', ok: tools.restic ? pc.ms <= rc : null });
    }

    // 4. Chunking + hashing vs raw SHA-256, one core, in memory.
    if (want(4)) {
    const cpu = await chunkBench(S.cpuMiB * MiB);
    const pool1 = await poolBench(src, Math.min(16, S.bigFiles), 1);
    const poolN = await poolBench(src, Math.min(16, S.bigFiles), Math.min(availableParallelism(), 4));
    say(`## 4. Chunking + hashing throughput (${S.cpuMiB} MiB in memory; best of 3, CPU time of the one busy thread)`);
    say();
    say('| what | MB/s | vs raw SHA-256 (one core) |');
    say('|---|---:|---:|');
    say(`| raw SHA-256, node:crypto, one core | ${f1(cpu.sha)} | 100% |`);
    say(`| FastCDC boundaries only, JavaScript loop (reference) | ${f1(cpu.cdcJs)} | ${f1((100 * cpu.cdcJs) / cpu.sha)}% |`);
    say(`| FastCDC boundaries only, WebAssembly scan (what runs) | ${f1(cpu.cdcWasm)} | ${f1((100 * cpu.cdcWasm) / cpu.sha)}% |`);
    say(`| **chunking + hashing on one core**: the worker's loop (bytes copied into its region as a read would, FastCDC, SHA-256 per chunk, content hash) | ${f1(cpu.region)} | ${f1((100 * cpu.region) / cpu.sha)}% |`);
    say(`| ChunkPool, 1 worker, ${pool1.files} files from the page cache, wall time (what pgdv add runs) | ${f1(pool1.mbps)} | ${f1((100 * pool1.mbps) / cpu.sha)}% |`);
    say(`| ChunkPool, ${poolN.workers} workers, ${poolN.files} files from the page cache, wall time | ${f1(poolN.mbps)} | ${f1((100 * poolN.mbps) / cpu.sha)}% |`);
    say();
    say('Each byte is SHA-256-hashed once: a file\'s content hash is SHA-256 over its chunk digests (docs/files.md), so there is no second pass over the file. The boundary scan skips the first 56 KiB of each chunk (min 56 / avg 64 / max 256 KiB) and runs in WebAssembly. The one-core row is the bar\'s figure; the ChunkPool rows read real files (kernel copies, thread hand-off) and depend on the second core being free.');
    say();
    rows.push({ figure: 'chunking + hashing, one core, MB/s', pgdv: `${f1(cpu.region)} (pool: 1 worker ${f1(pool1.mbps)}, ${poolN.workers} workers ${f1(poolN.mbps)})`, peer: `sha256 ${f1(cpu.sha)}`, ratio: f2(cpu.region / cpu.sha), bar: '≥ 0.60 × sha256', ok: cpu.region >= 0.6 * cpu.sha });

    }

    // 5. Small files.
    if (want(5)) {
    const small = path.join(base, 'small');
    let smallBytes = 0;
    for (let d = 0; d < 100; d++) {
      const dir = path.join(small, `d${String(d).padStart(2, '0')}`);
      await mkdir(dir, { recursive: true });
      const writes: Promise<void>[] = [];
      for (let i = 0; i < S.smallFiles / 100; i++) {
        const n = 1024 + Math.floor(Math.random() * 9 * 1024);
        smallBytes += n;
        writes.push(writeFile(path.join(dir, `s${i}.bin`), rnd(n)));
        if (writes.length >= 64) await Promise.all(writes.splice(0));
      }
      await Promise.all(writes);
    }
    const ps = await timed(() => addFiles(pgdv, { dataset: 'small', paths: [small], message: 'small' }));
    const rs = tools.restic ? run('restic', ['-r', restic, 'backup', '-q', '--host', 'bench', small], renv) : NaN;
    const bs = tools.borg ? run('borg', ['create', `${borg}::small`, '.'], benv, small) : NaN;
    say(`## 5. ${S.smallFiles} small files of 1–10 KiB (${f1(smallBytes / MiB)} MiB)`);
    say();
    say('| tool | wall s | files/s |');
    say('|---|---:|---:|');
    say(`| pgdv add | ${f2(ps.ms / 1000)} | ${Math.round(S.smallFiles / (ps.ms / 1000))} |`);
    say(`| restic backup | ${f2(rs / 1000)} | ${Math.round(S.smallFiles / (rs / 1000))} |`);
    say(`| borg create | ${f2(bs / 1000)} | ${Math.round(S.smallFiles / (bs / 1000))} |`);
    say();
    const fps = S.smallFiles / (ps.ms / 1000);
    rows.push({ figure: `${S.smallFiles} small files, files/s`, pgdv: String(Math.round(fps)), peer: `restic ${Math.round(S.smallFiles / (rs / 1000))}`, ratio: f2(rs / ps.ms), bar: '≥ 5,000 files/s', ok: fps >= 5000 });

    }

    // 6. Many versions sharing 90%.
    if (want(6)) {
    const vdir = path.join(base, 'vers');
    await mkdir(vdir);
    const vfile = path.join(vdir, 'data.bin');
    await writeFile(vfile, rnd(S.versionSize));
    const slot = 2 * MiB;
    const slots = S.versionSize / slot;
    const perVersion = Math.round((0.1 * S.versionSize) / slot);
    let unique = S.versionSize;
    const before = (await storageStats(pgdv)).find((r) => r.dataset === null)!.stored_bytes;
    const duBefore = du(objects);
    const pv = await timed(async () => {
      for (let v = 0; v < S.versions; v++) {
        if (v > 0) {
          const picks = new Set<number>();
          while (picks.size < perVersion) picks.add(Math.floor(Math.random() * slots));
          const fh = await open(vfile, 'r+');
          for (const s of picks) await fh.write(rnd(slot), 0, slot, s * slot);
          await fh.close();
          unique += perVersion * slot;
        }
        await addFiles(pgdv, { dataset: 'versions', paths: [vdir], message: `v${v}` });
      }
    });
    const vst = (await storageStats(pgdv, 'versions'))[0]!;
    const storedV = (await storageStats(pgdv)).find((r) => r.dataset === null)!.stored_bytes - before;
    const duV = du(objects) - duBefore;
    say(`## 6. ${S.versions} versions of ${S.versionSize / MiB} MiB, each rewriting 10% (${perVersion} random 2 MiB regions) of the one before`);
    say();
    say(`| figure | bytes |`);
    say('|---|---:|');
    say(`| logical (all versions) | ${vst.logical_bytes} |`);
    say(`| unique bytes written | ${unique} |`);
    say(`| stored: new chunk bytes | ${storedV} |`);
    say(`| stored: pack objects on disk (du, with footers and fan-out folders) | ${duV} |`);
    say(`| wall time for the ${S.versions} adds | ${f2(pv.ms / 1000)} s |`);
    say();
    rows.push({ figure: `${S.versions} versions × ${S.versionSize / MiB} MiB, stored / unique`, pgdv: f2(duV / unique), peer: '—', ratio: f2(duV / unique), bar: '≤ 1.15', ok: duV <= 1.15 * unique });

    }

    say('## Summary: each figure next to its peer, the ratio and the bar');
    say();
    say('| figure | pgdv | peer (same run) | ratio | bar | met |');
    say('|---|---:|---|---:|---|---|');
    for (const r of rows) say(`| ${r.figure} | ${r.pgdv} | ${r.peer} | ${r.ratio} | ${r.bar} | ${r.ok === null ? 'skipped (no peer)' : r.ok ? 'yes' : '**no**'} |`);
    say();
    say(`Load average at the end: ${loadavg().map(f2).join(' ')}; total bench time ${f1((Date.now() - t0.getTime()) / 1000)} s.`);
  } finally {
    await pgdv.close();
    await stopServer({ home }).catch(() => undefined);
    if (!keep) await rm(base, { recursive: true, force: true });
  }
  if (write) {
    const out = fileURLToPath(new URL(only ? './results/files-rerun.md' : './results/files.md', import.meta.url));
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, lines.join('\n') + '\n');
    console.log(`\nwrote ${out}`);
  }
}

/** Best of n runs, in CPU milliseconds of this process (the measured work runs on this thread alone). */
async function best(n: number, fn: () => unknown): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < n; i++) {
    const t = process.cpuUsage();
    await fn();
    const u = process.cpuUsage(t);
    min = Math.min(min, (u.user + u.system) / 1000);
  }
  return min;
}

async function chunkBench(size: number): Promise<{ sha: number; cdcJs: number; cdcWasm: number; region: number }> {
  const data = rnd(size);
  const PIECE = MiB;
  const p = resolveChunkerOptions();
  const sha = await best(3, () => {
    const h = createHash('sha256');
    for (let o = 0; o < size; o += PIECE) h.update(data.subarray(o, o + PIECE));
    h.digest();
  });
  const cdcJs = await best(3, () => {
    let pos = 0;
    while (pos < size) pos = findCutPoint(data, pos, size, p);
  });
  const scanner = new GearScanner(size);
  data.copy(scanner.buf);
  const cdcWasm = await best(3, () => {
    let pos = 0;
    while (pos < size) pos = scanner.cut(pos, size, p);
  });
  // The worker's loop (src/chunking/worker.ts) with the file read replaced by a copy from memory.
  const ring = new RegionRing(2, regionSize());
  const region = await best(3, async () => {
    const rc = new RegionChunker(ring);
    await rc.open();
    let o = 0;
    for (let eof = false; !eof; ) {
      const n = Math.min(READ, rc.buf.length - rc.fill, size - o);
      rc.buf.set(data.subarray(o, o + n), rc.fill);
      rc.filled(n);
      o += n;
      eof = o >= size;
      rc.cut(eof);
      if (!eof && rc.fill < rc.buf.length) continue;
      const part = rc.take(eof);
      if (part) ring.release(part.region);
      if (!eof) await rc.advance();
    }
    rc.close();
    rc.summary();
  });
  return { sha: mbps(size, sha), cdcJs: mbps(size, cdcJs), cdcWasm: mbps(size, cdcWasm), region: mbps(size, region) };
}

async function poolBench(dir: string, files: number, workers: number): Promise<{ workers: number; files: number; mbps: number }> {
  const names = (await readdir(dir)).filter((n) => n.startsWith('f')).slice(0, files);
  let bytes = 0;
  for (const n of names) bytes += (await stat(path.join(dir, n))).size;
  let bestMs = Infinity;
  for (let r = 0; r < 3; r++) {
    const pool = new ChunkPool({ workers, zeroCopy: true, regions: 8, window: 128 });
    // Started and loaded before the clock starts (under tsx a worker takes ~1 s to load).
    await Promise.all(Array.from({ length: workers }, async () => {
      for await (const c of pool.chunkFile(path.join(dir, names[0]!))) c.release?.();
    }));
    const t = performance.now();
    let i = 0;
    await Promise.all(
      Array.from({ length: workers }, async () => {
        while (i < names.length) {
          const f = pool.chunkFile(path.join(dir, names[i++]!));
          for await (const c of f) c.release?.();
        }
      }),
    );
    bestMs = Math.min(bestMs, performance.now() - t);
    await pool.close();
  }
  return { workers, files: names.length, mbps: mbps(bytes, bestMs) };
}

await main();
