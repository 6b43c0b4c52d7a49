// Crash safety of `add`: a child process ingesting a folder is SIGKILLed at random
// moments (at least 20 times). After each kill no new version is visible and every
// registered pack is in the store, and the temp packs of earlier killed runs are gone
// (each run removes those of dead processes); a final run completes, resumes from what
// the killed runs stored, leaves no temp pack, and checks out byte for byte.

import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { checkoutFiles } from '../src/api/files.js'
import { createDataset } from '../src/api/datasets.js'
import { packKey } from '../src/packs/index.js'
import { FsStore } from '../src/store/index.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'

const KILLS = Number(process.env.PGDV_CRASH_KILLS ?? 20)
const root = fileURLToPath(new URL('..', import.meta.url))
let t: TestDatabase
let pgdv: Pgdv
let src: string
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
  await createDataset(pgdv, { name: 'crashy', kind: 'files' })
  src = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-crash-src-'))
  for (let i = 0; i < 12; i++) await fs.writeFile(path.join(src, `f${String(i).padStart(2, '0')}.bin`), randomBytes(1_500_000 + i * 1000))
  for (let i = 0; i < 40; i++) await fs.writeFile(path.join(src, `small-${i}.txt`), randomBytes(500 + i))
})
afterAll(async () => {
  await pgdv?.close()
  await t?.drop()
  await fs.rm(src, { recursive: true, force: true })
})

interface Run {
  pid: number
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  ms: number
}

/** Runs the child; killAfterMs (counted from its "ready") SIGKILLs it. */
function runChild(killAfterMs?: number, dataset = 'crashy', dir = src): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now()
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/add-child.ts', t.home, t.url, dataset, dir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let readyAt = 0
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
      if (!readyAt && stdout.includes('ready\n')) {
        readyAt = Date.now()
        if (killAfterMs !== undefined) setTimeout(() => child.kill('SIGKILL'), killAfterMs)
      }
    })
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`child failed (${code}): ${stderr}`))
      else resolve({ pid: child.pid!, code, signal, stdout, ms: Date.now() - (readyAt || t0) })
    })
  })
}

/** Temp packs in the home's tmp folder, by the pid their name carries. */
async function tempPacks(): Promise<{ name: string; pid: number }[]> {
  const names = await fs.readdir(path.join(t.home, 'tmp')).catch(() => [] as string[])
  return names.filter((n) => /^pack-.*\.tmp$/.test(n)).map((name) => ({ name, pid: Number(/-p(\d+)-/.exec(name)?.[1] ?? /^pack-(\d+)-/.exec(name)?.[1]) }))
}

async function committedSessions(): Promise<number> {
  const r = await pgdv.db.one<{ n: string }>("SELECT count(*) AS n FROM dv_files.ingest_sessions s JOIN dv.datasets d ON d.id = s.dataset_id WHERE d.name = 'crashy' AND s.state = 'committed'")
  return Number(r.n)
}

async function versions(): Promise<number> {
  const r = await pgdv.db.one<{ n: string }>("SELECT count(*) AS n FROM dv.versions v JOIN dv.datasets d ON d.id = v.dataset_id WHERE d.name = 'crashy'")
  return Number(r.n)
}

describe('add killed at random moments', () => {
  it(`leaves no version after each of ${KILLS} SIGKILLs, then resumes and checks out byte-identical`, async () => {
    const store = new FsStore(path.join(t.home, 'objects'))
    const total = (await Promise.all((await fs.readdir(src)).map(async (n) => (await fs.stat(path.join(src, n))).size))).reduce((a, b) => a + b, 0)
    // A whole ingest's duration, measured on a copy of the same shape with other bytes.
    const probe = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-crash-probe-'))
    for (const n of await fs.readdir(src)) await fs.writeFile(path.join(probe, n), randomBytes((await fs.stat(path.join(src, n))).size))
    await createDataset(pgdv, { name: 'probe', kind: 'files' })
    const full = await runChild(undefined, 'probe', probe)
    const probeStored = Number((await pgdv.db.one<{ b: string }>('SELECT coalesce(sum(length), 0) AS b FROM dv_files.chunks')).b)
    await fs.rm(probe, { recursive: true, force: true })

    let completed = 0
    let kills = 0
    let leftBehind = 0
    for (let attempt = 0; kills < KILLS && attempt < KILLS * 3; attempt++) {
      // Kill points spread over what is left of the ingest: resumed runs get shorter. (The
      // probe's chunks are registered too, and are not part of this ingest.)
      const storedNow = Number((await pgdv.db.one<{ b: string }>('SELECT coalesce(sum(length), 0) AS b FROM dv_files.chunks')).b) - probeStored
      const left = Math.max(0.1, 1 - storedNow / total)
      const r = await runChild(Math.floor(Math.random() * full.ms * left))
      if (r.code !== 0) kills++
      // A run killed after its commit (closing connections, exiting) did finish: its session
      // is marked committed in the version's own transaction.
      completed = await committedSessions()
      // Each run that got as far as starting its ingest removed the temp packs of the runs
      // killed before it: what remains belongs to one run at most (the last to start).
      const temps = await tempPacks()
      expect(new Set(temps.map((f) => f.pid)).size, `temp packs of several killed runs: ${temps.map((f) => f.name).join(', ')}`).toBeLessThanOrEqual(1)
      leftBehind += temps.length
      // Only a run that finished may have made the one version.
      expect(await versions()).toBe(completed > 0 ? 2 : 1)
      // Nothing registered points to a missing pack.
      for (const p of await pgdv.db.query<{ id: string }>('SELECT id FROM dv_files.packs')) {
        expect(await store.head(packKey(p.id)), `pack ${p.id}`).not.toBeNull()
      }
    }
    expect(kills).toBeGreaterThanOrEqual(KILLS)
    const stored = await pgdv.db.one<{ b: string }>("SELECT coalesce(sum(c.length), 0) AS b FROM dv_files.chunks c")
    console.log(`crash test: ${kills} kills, ${completed} completed, full run ${full.ms} ms, ${stored.b} bytes registered before the final run, ${leftBehind} temp packs left by killed runs (each removed by the next run)`)
    const final = await runChild()
    expect(final.code).toBe(0)
    const result = JSON.parse(final.stdout.split('\n')[1]!) as { created: boolean; new_bytes: number; bytes: number }
    if (completed === 0) {
      expect(result.created).toBe(true)
      // The rerun uploaded only what the killed runs had not registered (the probe's chunks are all different).
      expect(result.new_bytes).toBeLessThanOrEqual(result.bytes - (Number(stored.b) - total))
    }
    expect(await versions()).toBe(2)
    expect(await tempPacks(), 'temp packs after the final run').toEqual([])
    // The killed runs' sessions were found dead and marked failed; nothing is left 'uploading' as live.
    const sessions = await pgdv.db.query<{ state: string; n: string }>('SELECT state, count(*) AS n FROM dv_files.ingest_sessions GROUP BY state ORDER BY state')
    expect(sessions.find((r) => r.state === 'running')).toBeUndefined()

    const out = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-crash-out-'))
    try {
      await checkoutFiles(pgdv, { dataset: 'crashy', ref: 'main', out, force: true })
      for (const name of await fs.readdir(src)) {
        expect(sha(await fs.readFile(path.join(out, name))), name).toBe(sha(await fs.readFile(path.join(src, name))))
      }
    } finally {
      await fs.rm(out, { recursive: true, force: true })
    }
    // No committed chunk points to a pack missing from the store.
    for (const p of await pgdv.db.query<{ id: string }>('SELECT id FROM dv_files.packs')) {
      expect(await store.head(packKey(p.id))).not.toBeNull()
    }
  }, 600_000)
})
