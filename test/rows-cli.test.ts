// The row-version CLI end to end on the real PostgreSQL: commit from CSV, JSONL, Parquet
// and queries in every mode, checkout round trips, bad input (one line, non-zero exit,
// nothing committed), diff, merge with conflicts, reset, branches and tags.

import fs from 'node:fs/promises'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cli, type CliResult } from './helpers/cli.js'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let c: pg.Client
let dir: string

beforeAll(async () => {
  t = await freshDatabase()
  c = new pg.Client({ connectionString: t.url })
  await c.connect()
  dir = path.join(t.home, 'files')
  await fs.mkdir(dir)
})
afterAll(async () => {
  await c?.end()
  await t?.drop()
})

const run = <T = unknown>(args: string[]) => cli<T>(args, t)

async function file(name: string, text: string): Promise<string> {
  const p = path.join(dir, name)
  await fs.writeFile(p, text)
  return p
}

function expectOneLineError(r: CliResult, pattern: RegExp) {
  expect(r.exitCode, r.stdout + r.stderr).not.toBe(0)
  const lines = r.stderr.trim().split('\n')
  expect(lines, r.stderr).toHaveLength(1)
  expect(lines[0]).toMatch(pattern)
  expect(r.stderr).not.toMatch(/^\s+at /m)
}

async function versions(dataset: string): Promise<number> {
  const { rows } = await c.query<{ n: string }>('SELECT count(*) AS n FROM dv.versions v JOIN dv.datasets d ON d.id = v.dataset_id WHERE d.name = $1', [dataset])
  return Number(rows[0].n)
}

async function rowsOf(dataset: string, ref = 'main'): Promise<Record<string, unknown>[]> {
  const { rows } = await c.query<{ r: Record<string, unknown> }>('SELECT to_jsonb(r) AS r FROM dv.rows($1, $2) r', [dataset, ref])
  return rows.map((x) => x.r).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))
}

interface Commit {
  version_id: string
  created: boolean
  added: string
  removed: string
  modified: string
  row_count: string
  loaded: number
  rejected: number
  new_columns: { name: string; type: string }[]
}

describe('commit and checkout', () => {
  it('CSV: infers the schema, commits, and checks out the same rows as CSV, JSONL and Parquet', async () => {
    expect((await run(['dataset', 'create', 'flights', '--key', 'id'])).exitCode).toBe(0)
    const csv = await file(
      'flights.csv',
      'id,origin,delay,ok,day,at,note\n' +
        '1,JFK,1.5,true,2024-01-02,2024-01-02 03:04:05+00,plain\n' +
        '2,LAX,-3,false,2024-01-03,2024-01-03T00:00:00Z,"comma, and ""quote"""\n' +
        '3,SFO,,true,2024-01-04,2024-01-04 10:00:00+00,"multi\nline\ttab \\ backslash"\n' +
        '4,"",0,false,2024-01-05,2024-01-05 10:00:00+00,ünïcødé 🚀\n',
    )
    const r = await run<Commit>(['commit', 'flights', csv, '-m', 'first', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ created: true, added: '4', row_count: '4', loaded: 4, rejected: 0 })
    const { rows: cols } = await c.query("SELECT column_name, data_type FROM dv.dataset_columns('flights') ORDER BY ordinal")
    expect(cols.map((x) => `${x.column_name} ${x.data_type}`)).toEqual([
      'id bigint',
      'origin text',
      'delay double precision',
      'ok boolean',
      'day date',
      'at timestamp with time zone',
      'note text',
    ])
    const stored = await rowsOf('flights')
    expect(stored.find((x) => x.id === 3)).toMatchObject({ delay: null, note: 'multi\nline\ttab \\ backslash' })
    expect(stored.find((x) => x.id === 4)).toMatchObject({ origin: '', note: 'ünïcødé 🚀' })

    // Round trips: each output format committed again changes nothing.
    for (const ext of ['csv', 'jsonl', 'parquet']) {
      const out = path.join(dir, `out.${ext}`)
      const co = await run<{ rows: number; format: string }>(['checkout', 'flights', 'main', '--out', out, '--json'])
      expect(co.exitCode, co.stderr).toBe(0)
      expect(co.json).toMatchObject({ rows: 4, format: ext })
      const again = await run<Commit>(['commit', 'flights', out, '--json'])
      expect(again.exitCode, again.stderr).toBe(0)
      expect(again.json, ext).toMatchObject({ created: false, loaded: 4 })
    }
    expect(await versions('flights')).toBe(2) // the empty root and one commit
  })

  it('checkout refuses to overwrite a file unless --force', async () => {
    const out = path.join(dir, 'exists.csv')
    await fs.writeFile(out, 'keep me')
    const r = await run(['checkout', 'flights', 'main', '--out', out])
    expectOneLineError(r, /exists\.csv already exists.*--force/)
    expect(await fs.readFile(out, 'utf8')).toBe('keep me')
    const f = await run(['checkout', 'flights', 'main', '--out', out, '--force'])
    expect(f.exitCode, f.stderr).toBe(0)
    expect((await fs.readFile(out, 'utf8')).split('\n')[0]).toBe('id,origin,delay,ok,day,at,note')
    expect((await fs.readdir(dir)).filter((n) => n.includes('.pgdv-'))).toEqual([])
  })
})
