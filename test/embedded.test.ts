// The embedded default, end to end: demo, db start/stop/status/url/psql, and
// on-demand start by an ordinary command — in a pgdv home of its own.

import { spawnSync } from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stopEmbedded } from '../src/db/embedded.js'
import { cli } from './helpers/cli.js'

let base: string
let home: string
const saved: Record<string, string | undefined> = {}
const CONNECTION_VARS = ['PGDV_DATABASE_URL', 'DATABASE_URL', 'PGHOST', 'PGHOSTADDR', 'PGPORT', 'PGDATABASE', 'PGUSER', 'PGSERVICE', 'PGDV_HOME']

beforeAll(async () => {
  for (const k of CONNECTION_VARS) {
    saved[k] = process.env[k]
    delete process.env[k]
  }
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-emb-'))
  await fs.chmod(base, 0o755)
  home = path.join(base, 'home')
})

afterAll(async () => {
  await stopEmbedded(home).catch(() => {})
  await fs.rm(base, { recursive: true, force: true })
  for (const k of CONNECTION_VARS) if (saved[k] !== undefined) process.env[k] = saved[k]
})

describe('embedded PostgreSQL', () => {
  it('demo initialises the embedded server, commits two versions, prints their diff and passes doctor', async () => {
    type Demo = {
      init: { source: string; schemaVersion: number }
      dataset: { name: string }
      versions: { tag: string; created: boolean }[]
      diff: { added: number; removed: number; modified: number }
      changes: { change: string }[]
      doctor: { ok: boolean }
    }
    const r = await cli<Demo>(['demo', '--json'], { home })
    expect(r.exitCode).toBe(0)
    expect(r.json?.init.source).toBe('embedded')
    expect(r.json?.dataset.name).toBe('demo-flights')
    expect(r.json?.versions.map((v) => [v.tag, v.created])).toEqual([['demo-v1', true], ['demo-v2', true]])
    expect(r.json?.diff).toMatchObject({ added: 5, removed: 10, modified: 20 })
    expect(r.json?.changes).toHaveLength(5)
    expect(r.json?.doctor.ok).toBe(true)
    const config = JSON.parse(await fs.readFile(path.join(home, 'config.json'), 'utf8'))
    expect(config.database.mode).toBe('embedded')
    // Readable by its owner only: it holds the server's password.
    expect((await fs.stat(path.join(home, 'config.json'))).mode & 0o077).toBe(0)
  })

  it('demo runs again, reusing its versions', async () => {
    const r = await cli<{ versions: { created: boolean }[]; diff: { modified: number } }>(['demo', '--json'], { home })
    expect(r.exitCode).toBe(0)
    expect(r.json?.versions.map((v) => v.created)).toEqual([false, false])
    expect(r.json?.diff.modified).toBe(20)
  })

  it('db status, url, stop, start', async () => {
    const st = await cli<{ state: string; source: string; url: string }>(['db', 'status', '--json'], { home })
    expect(st.json).toMatchObject({ state: 'running', source: 'embedded' })
    expect(st.json?.url).toMatch(/\*\*\*\*/)
    const url = await cli<{ url: string }>(['db', 'url', '--json'], { home })
    expect(url.json?.url).toMatch(/^postgresql:\/\/postgres:[^*]+@127\.0\.0\.1:\d+\/pgdv$/)
    const stop = await cli<{ stopped: boolean; state: string }>(['db', 'stop', '--json'], { home })
    expect(stop.json).toMatchObject({ stopped: true, state: 'stopped' })
    const again = await cli<{ stopped: boolean }>(['db', 'stop', '--json'], { home })
    expect(again.json?.stopped).toBe(false)
    const start = await cli<{ state: string }>(['db', 'start', '--json'], { home })
    expect(start.json?.state).toBe('running')
  })

  it('an ordinary command starts the stopped server on demand', async () => {
    await cli(['db', 'stop'], { home })
    const list = await cli<{ name: string }[]>(['dataset', 'list', '--json'], { home })
    expect(list.exitCode).toBe(0)
    expect(list.json?.map((d) => d.name)).toEqual(['demo-flights'])
  })

  it('db psql runs psql when it is on PATH, and prints the URL otherwise', async () => {
    const hasPsql = spawnSync('psql', ['--version'], { stdio: 'ignore' }).status === 0
    const r = await cli<{ psql: boolean; url: string }>(['db', 'psql', '--json', '--', '-X', '-q', '-c', 'SELECT 1'], { home })
    expect(r.exitCode).toBe(0)
    if (!hasPsql) {
      expect(r.json?.psql).toBe(false)
      expect(r.json?.url).toMatch(/^postgresql:/)
    }
  })
})
