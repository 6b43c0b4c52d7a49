// Every foundation command end to end with --json, and every bad input from the
// foundation issue: one line naming the input and what to do, non-zero exit, no stack.

import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { cli } from './helpers/cli.js'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
beforeAll(async () => {
  t = await freshDatabase()
})
afterAll(async () => {
  await t?.drop()
})

function expectOneLineError(r: { exitCode: number; stderr: string }, pattern: RegExp) {
  expect(r.exitCode).not.toBe(0)
  const lines = r.stderr.trim().split('\n')
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(pattern)
  expect(r.stderr).not.toMatch(/^\s+at /m)
}

describe('init, migrate, doctor', () => {
  it('init --json reports the database and schema version; again is a no-op', async () => {
    const first = await cli<{ schemaVersion: number; appliedMigrations: unknown[]; source: string }>(['init', '--json'], t)
    expect(first.exitCode).toBe(0)
    expect(first.json?.schemaVersion).toBeGreaterThanOrEqual(2)
    expect(first.json?.appliedMigrations).toEqual([])
    expect(first.json?.source).toBe('flag')
    const config = JSON.parse(await fs.readFile(path.join(t.home, 'config.json'), 'utf8'))
    expect(config.database).toEqual({ mode: 'url', url: t.url })
  })

  it('migrate --json applies nothing on a current database', async () => {
    const r = await cli<{ applied: unknown[] }>(['migrate', '--json'], t)
    expect(r.exitCode).toBe(0)
    expect(r.json?.applied).toEqual([])
  })

  it('doctor --json reports every check', async () => {
    const r = await cli<{ ok: boolean; checks: { name: string; ok: boolean }[] }>(['doctor', '--json'], t)
    expect(r.exitCode).toBe(0)
    expect(r.json?.ok).toBe(true)
    expect(r.json?.checks.map((c) => c.name)).toEqual(expect.arrayContaining(['config', 'database', 'migrations', 'roles', 'object store']))
  })

  it('doctor fails with exit 1 and hints when the database is unreachable', async () => {
    const r = await cli<{ ok: boolean; checks: { name: string; ok: boolean; hint?: string }[] }>(
      ['doctor', '--json', '--database-url', 'postgresql://u:p@127.0.0.1:1/x', '--home', t.home],
    )
    expect(r.exitCode).toBe(1)
    expect(r.json?.ok).toBe(false)
    const dbCheck = r.json?.checks.find((c) => c.name === 'database')
    expect(dbCheck?.ok).toBe(false)
    expect(dbCheck?.hint).toBeTruthy()
  })

  it('--help lists the topics', async () => {
    const r = await cli(['--help'])
    expect(r.stdout).toMatch(/dataset/)
    expect(r.stdout).toMatch(/db/)
    expect(r.stdout).toMatch(/doctor/)
  })
})

describe('dataset', () => {
  it('create, list, show, drop with --json', async () => {
    const c = await cli<{ name: string; key_columns: string[]; kind: string }>(['dataset', 'create', 'labels', '--key', 'image_id, annotator', '-d', 'human labels', '--json'], t)
    expect(c.json).toMatchObject({ name: 'labels', key_columns: ['image_id', 'annotator'], kind: 'table' })
    const f = await cli<{ kind: string }>(['dataset', 'create', 'images', '--files', '--json'], t)
    expect(f.json?.kind).toBe('files')
    const l = await cli<{ name: string }[]>(['dataset', 'list', '--json'], t)
    expect(l.json?.map((d) => d.name)).toEqual(expect.arrayContaining(['labels', 'images']))
    const s = await cli<{ name: string; description: string; versions: string }>(['dataset', 'show', 'labels', '--json'], t)
    expect(s.json).toMatchObject({ name: 'labels', description: 'human labels', versions: '1' })
    const d = await cli<{ name: string }>(['dataset', 'drop', 'images', '--force', '--json'], t)
    expect(d.json?.name).toBe('images')
  })

  it('accepts names with quotes, semicolons, spaces and Unicode, and quotes them safely', async () => {
    const names = [`it's "quoted"`, 'semi;colon', 'with space', 'données-ß-数据', "x'); DROP TABLE dv.datasets; --"]
    for (const name of names) {
      const r = await cli<{ name: string }>(['dataset', 'create', name, '--json'], t)
      expect(r.exitCode).toBe(0)
      expect(r.json?.name).toBe(name)
    }
    const l = await cli<{ name: string }[]>(['dataset', 'list', '--json'], t)
    expect(l.json?.map((d) => d.name)).toEqual(expect.arrayContaining(names))
  })

  it('rejects names over 63 bytes, counting bytes not characters, so none collide after truncation', async () => {
    const ok = 'é'.repeat(31) + 'x' // 63 bytes
    expect((await cli(['dataset', 'create', ok], t)).exitCode).toBe(0)
    expectOneLineError(await cli(['dataset', 'create', 'é'.repeat(32)], t), /is 64 bytes long.*1 to 63 bytes/)
    expectOneLineError(await cli(['dataset', 'create', 'a'.repeat(64)], t), /is 64 bytes long/)
    expectOneLineError(await cli(['dataset', 'create', 'tab\there'], t), /not allowed/)
    expectOneLineError(await cli(['dataset', 'create', 'at@sign'], t), /not allowed.*"@"/)
  })

  it('refuses duplicates, unknown datasets and drop without --force, changing nothing', async () => {
    const before = (await cli<unknown[]>(['dataset', 'list', '--json'], t)).json?.length
    expectOneLineError(await cli(['dataset', 'create', 'labels'], t), /dataset "labels" already exists/)
    expectOneLineError(await cli(['dataset', 'drop', 'nope', '--force'], t), /dataset "nope" does not exist/)
    expectOneLineError(await cli(['dataset', 'show', 'nope'], t), /dataset "nope" does not exist.*pgdv dataset list/)
    expectOneLineError(await cli(['dataset', 'drop', 'labels'], t), /--force/)
    expectOneLineError(await cli(['dataset', 'create', 'k', '--key', 'a,,b'], t), /--key "a,,b" has an empty column name/)
    expectOneLineError(await cli(['dataset', 'create', 'k', '--key', 'a,a'], t), /repeat a column/)
    expect((await cli<unknown[]>(['dataset', 'list', '--json'], t)).json?.length).toBe(before)
  })

  it('--json errors are JSON with the message and hint', async () => {
    const r = await cli<{ error: { message: string; hint: string } }>(['dataset', 'show', 'nope', '--json'], t)
    expect(r.exitCode).toBe(1)
    expect(r.json?.error.message).toMatch(/does not exist/)
    expect(r.json?.error.hint).toBeTruthy()
  })

  it('--verbose adds the stack', async () => {
    const r = await cli(['dataset', 'show', 'nope', '--verbose'], t)
    expect(r.stderr).toMatch(/^\s+at /m)
  })
})

describe('bad connections and homes', () => {
  it('a malformed database URL', async () => {
    expectOneLineError(await cli(['dataset', 'list', '--database-url', 'not a url', '--home', t.home]), /database URL from flag .* is not a valid URL.*postgresql:\/\/USER/)
    expectOneLineError(await cli(['dataset', 'list', '--database-url', 'mysql://u:p@h/db', '--home', t.home]), /scheme "mysql"/)
  })

  it('an unreachable server', async () => {
    expectOneLineError(await cli(['dataset', 'list', '--database-url', 'postgresql://u:secret@127.0.0.1:1/db', '--home', t.home]), /cannot reach PostgreSQL at .*127\.0\.0\.1:1.*connection refused/)
  })

  it('never prints the password', async () => {
    const r = await cli(['dataset', 'list', '--database-url', 'postgresql://u:secret@127.0.0.1:1/db', '--home', t.home])
    expect(r.stderr).not.toMatch(/secret/)
  })

  it('a wrong password', async () => {
    if (inject('pgSource') !== 'embedded') return // other servers may trust local logins
    const u = new URL(t.url)
    u.password = 'wrong'
    expectOneLineError(await cli(['dataset', 'list', '--database-url', u.toString(), '--home', t.home]), /refused the login.*password authentication failed.*Check the user and password/)
  })

  it('a home folder that is not writable', async () => {
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-nothome-')), 'a-file')
    await fs.writeFile(file, 'x')
    expectOneLineError(await cli(['dataset', 'list', '--home', path.join(file, 'home')]), /home folder .* is not writable.*--home or PGDV_HOME/)
  })

  it('a database without pgdv says to run init', async () => {
    const empty = await freshDatabase({ empty: true })
    try {
      expectOneLineError(await cli(['dataset', 'list'], empty), /pgdv is not installed.*pgdv init/)
    } finally {
      await empty.drop()
    }
  })
})
