// Temp packs left by killed ingests: named after their owner (host, pid, process
// start), removed by the next ingest or gc once no live process owns them; a live
// ingest's temp packs (in this or another process) are never touched.

import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { watch } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDataset } from '../src/api/datasets.js'
import { hostTag, processStart, removeStaleTempPacks, staleReason, tempPackName } from '../src/packs/temp.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'

const root = fileURLToPath(new URL('..', import.meta.url))

let dir: string
let sleeper: ChildProcess
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-temp-'))
  // Another live process (an ingest running elsewhere on this host).
  sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120000)'], { stdio: 'ignore' })
  await new Promise((r) => sleeper.once('spawn', r))
})
afterAll(async () => {
  sleeper?.kill('SIGKILL')
  await fs.rm(dir, { recursive: true, force: true })
})

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await new Promise((r) => child.once('exit', r))
  return child.pid!
}

describe('temp packs', () => {
  it('removes only the temp packs no live process owns', async () => {
    const host = hostTag()
    const livePid = sleeper.pid!
    const liveStart = processStart(livePid)
    const gone = await deadPid()
    const names = {
      mine: tempPackName(),
      otherLive: `pack-h${host}-p${livePid}-s${liveStart}-aa11.tmp`,
      dead: `pack-h${host}-p${gone}-s12345-bb22.tmp`,
      // A live pid with another start time: the pid was reused after the owner died.
      reused: `pack-h${host}-p${livePid}-s${liveStart + 1}-cc33.tmp`,
      oldDead: `pack-${gone}-dd44.tmp`,
      oldLive: `pack-${livePid}-ee55.tmp`,
      foreignFresh: `pack-h00000000-p${livePid}-s1-ff66.tmp`,
      foreignOld: `pack-h00000000-p${livePid}-s1-0077.tmp`,
      notOurs: 'notes.txt',
    }
    expect(processStart('self')).toBeGreaterThan(0) // Linux: the start time is known
    for (const n of Object.values(names)) await fs.writeFile(path.join(dir, n), Buffer.alloc(1000))
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000)
    await fs.utimes(path.join(dir, names.foreignOld), twoDaysAgo, twoDaysAgo)

    expect(staleReason(names.dead, Date.now())).toMatch(/process \d+ is gone/)
    expect(staleReason(names.reused, Date.now())).toMatch(/now belongs to another process/)

    const dry = await removeStaleTempPacks(dir, { dryRun: true })
    expect(dry).toEqual({ removed: 4, bytes: 4000 })
    expect((await fs.readdir(dir)).length).toBe(Object.keys(names).length)

    const r = await removeStaleTempPacks(dir)
    expect(r).toEqual({ removed: 4, bytes: 4000 })
    expect((await fs.readdir(dir)).sort()).toEqual([names.mine, names.otherLive, names.oldLive, names.foreignFresh, names.notOurs].sort())
  })

  it('a missing tmp folder is nothing to remove', async () => {
    expect(await removeStaleTempPacks(path.join(dir, 'nope'))).toEqual({ removed: 0, bytes: 0 })
  })
})

describe('a killed add', () => {
  let t: TestDatabase
  beforeAll(async () => {
    t = await freshDatabase()
  })
  afterAll(async () => {
    await t?.drop()
  })

  /** Runs add in a child; with killOnTempPack, SIGKILLs it as soon as it opens a temp pack. */
  function add(src: string, killOnTempPack: boolean): Promise<{ code: number | null; stderr: string }> {
    const tmp = path.join(t.home, 'tmp')
    // One 32 MiB pack for the whole folder: the temp pack is open for most of the run.
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/add-child.ts', t.home, t.url, 'killed', src, String(32 << 20)], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    const watcher = killOnTempPack
      ? watch(tmp, (_event, name) => {
          if (name && /^pack-.*\.tmp$/.test(String(name))) child.kill('SIGKILL')
        })
      : undefined
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    return new Promise((resolve) =>
      child.on('exit', (code) => {
        watcher?.close()
        resolve({ code, stderr })
      }),
    )
  }

  it('leaves its temp pack, which the next add removes; a concurrent add keeps its own', async () => {
    const pgdv = await openPgdv(t)
    try {
      await createDataset(pgdv, { name: 'killed', kind: 'files' })
    } finally {
      await pgdv.close()
    }
    const src = path.join(t.home, '..', `${path.basename(t.home)}-src`)
    await fs.mkdir(src)
    try {
      for (let i = 0; i < 6; i++) await fs.writeFile(path.join(src, `f${i}.bin`), randomBytes(2_000_000))
      const tmp = path.join(t.home, 'tmp')
      await fs.mkdir(tmp, { recursive: true })
      const killed = await add(src, true)
      expect(killed.code, killed.stderr).toBeNull() // killed by the signal
      const left = (await fs.readdir(tmp)).filter((n) => n.startsWith('pack-'))
      expect(left.length).toBeGreaterThan(0)
      // A temp pack of a live process (this one) stands for a concurrent ingest: it stays.
      const live = path.join(tmp, tempPackName())
      await fs.writeFile(live, 'in progress')

      const rerun = await add(src, false)
      expect(rerun.code, rerun.stderr).toBe(0)
      expect((await fs.readdir(tmp)).sort()).toEqual([path.basename(live)])
    } finally {
      await fs.rm(src, { recursive: true, force: true })
    }
  })
})
