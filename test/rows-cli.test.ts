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

describe('modes, formats and sources', () => {
  it('JSONL in every mode, with schema evolution and nested values as jsonb', async () => {
    await run(['dataset', 'create', 'labels', '--key', 'id'])
    const v1 = await run<Commit>(['commit', 'labels', await file('l1.jsonl', '{"id":1,"label":"cat"}\n{"id":2,"label":"dog"}\n'), '--json'])
    expect(v1.json).toMatchObject({ created: true, added: '2' })
    const ap = await run<Commit>(['commit', 'labels', await file('l2.jsonl', '{"id":3,"label":"owl","meta":{"src":"x","n":[1,2]}}\n'), '--mode', 'append', '--json'])
    expect(ap.json).toMatchObject({ created: true, added: '1', row_count: '3', new_columns: [{ name: 'meta', type: 'jsonb' }] })
    const up = await run<Commit>(['commit', 'labels', await file('l3.jsonl', '{"id":1,"label":"kitten"}\n{"id":4,"label":"emu"}\n'), '--mode', 'upsert', '--json'])
    expect(up.json).toMatchObject({ added: '1', modified: '1', row_count: '4' })
    const del = await run<Commit>(['commit', 'labels', await file('l4.jsonl', '{"id":2}\n'), '--mode', 'delete', '--json'])
    expect(del.json).toMatchObject({ removed: '1', row_count: '3' })
    expect(await rowsOf('labels')).toEqual([
      { id: 1, label: 'kitten', meta: null },
      { id: 3, label: 'owl', meta: { src: 'x', n: [1, 2] } },
      { id: 4, label: 'emu', meta: null },
    ])
    const same = await run(['commit', 'labels', await file('l5.jsonl', '{"id":2}\n'), '--mode', 'delete'])
    expect(same.exitCode).toBe(0)
    expect(same.stdout).toMatch(/nothing changed: main of "labels" stays at version/)
    const log = await run<{ version_id: string; message: string | null }[]>(['log', 'labels', '--json'])
    expect(log.json).toHaveLength(5)
    const show = await run<{ changes: object; columns: { column_name: string }[] }>(['show', 'labels', 'main', '--json'])
    expect(show.json?.changes).toEqual({ added: 0, removed: 1, modified: 0 })
    expect(show.json?.columns.map((x) => x.column_name)).toEqual(['id', 'label', 'meta'])
  })

  it('JSONL fields first seen after the sample: known to the dataset or --columns, else a bad line', async () => {
    await run(['dataset', 'create', 'late', '--key', 'id'])
    expect((await run(['commit', 'late', await file('late1.jsonl', '{"id":0,"a":"x","b":"y"}\n')])).exitCode).toBe(0)
    const many = Array.from({ length: 1500 }, (_v, i) => JSON.stringify({ id: i, a: `a${i}` }))
    const withB = await file('late2.jsonl', [...many, '{"id":2000,"b":"late b"}'].join('\n') + '\n')
    const r = await run<Commit>(['commit', 'late', withB, '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ loaded: 1501 })
    const withC = await file('late3.jsonl', [...many, '{"id":2000,"c":"late c"}'].join('\n') + '\n')
    expectOneLineError(await run(['commit', 'late', withC]), /late3\.jsonl line 1501: field "c" is not a column/)
    const ok = await run<Commit>(['commit', 'late', withC, '--columns', 'c text', '--json'])
    expect(ok.exitCode, ok.stderr).toBe(0)
    expect(ok.json?.new_columns).toEqual([{ name: 'c', type: 'text' }])
    const show = await run<{ changes: object }>(['show', 'late', 'main~2', '--json'])
    expect(show.json?.changes).toEqual({ added: 1, removed: 0, modified: 0 })
  })

  it('Parquet written by another tool commits and checks out identically', async () => {
    const { fileWriter, parquetWriteRows } = await import('hyparquet-writer')
    const p = path.join(dir, 'in.parquet')
    await parquetWriteRows({
      writer: fileWriter(p),
      rows: Array.from({ length: 3000 }, (_v, i) => ({ id: BigInt(i), name: i % 5 === 0 ? null : `row ${i}`, score: i / 8, at: new Date(Date.UTC(2024, 0, 1, 0, 0, i)) })),
      columns: [
        { name: 'id', type: 'INT64' },
        { name: 'name', type: 'STRING' },
        { name: 'score', type: 'DOUBLE' },
        { name: 'at', type: 'TIMESTAMP' },
      ],
      rowGroupSize: 1000,
    })
    await run(['dataset', 'create', 'pq', '--key', 'id'])
    const r = await run<Commit>(['commit', 'pq', p, '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ added: '3000', loaded: 3000 })
    const out = path.join(dir, 'pq-out.parquet')
    expect((await run(['checkout', 'pq', 'main', '--out', out])).exitCode).toBe(0)
    const { asyncBufferFromFile, parquetReadObjects } = await import('hyparquet')
    const back = await parquetReadObjects({ file: await asyncBufferFromFile(out) })
    back.sort((a, b) => Number(a.id) - Number(b.id))
    expect(back).toHaveLength(3000)
    expect(back[7]).toEqual({ id: 7n, name: 'row 7', score: 7 / 8, at: new Date(Date.UTC(2024, 0, 1, 0, 0, 7)) })
    expect(back[10].name).toBeNull()
  })

  it('--from-query and --from-table commit server-side, with the query\'s exact types', async () => {
    await c.query('CREATE TABLE public.src (id integer PRIMARY KEY, price numeric(8,2), tags text[])')
    await c.query("INSERT INTO public.src SELECT g, g * 1.25, ARRAY['t' || g] FROM generate_series(1, 50) g")
    await run(['dataset', 'create', 'prices', '--key', 'id'])
    const q = await run<Commit>(['commit', 'prices', '--from-query', 'SELECT * FROM public.src WHERE id <= 40', '--json'])
    expect(q.exitCode, q.stderr).toBe(0)
    expect(q.json).toMatchObject({ added: '40', loaded: 40 })
    const { rows } = await c.query("SELECT column_name, data_type FROM dv.dataset_columns('prices') ORDER BY ordinal")
    expect(rows.map((x) => x.data_type)).toEqual(['integer', 'numeric(8,2)', 'text[]'])
    const tb = await run<Commit>(['commit', 'prices', '--from-table', 'public.src', '--json'])
    expect(tb.json).toMatchObject({ added: '10', row_count: '50' })
    expectOneLineError(await run(['commit', 'prices', '--from-query', 'SELECT nope FROM public.src']), /--from-query: column "nope" does not exist/)
    expectOneLineError(await run(['commit', 'prices', '--from-table', 'public.missing']), /--from-table: relation "public.missing" does not exist/)
  })

  it('a keyless dataset counts duplicate rows; delete removes one copy per line', async () => {
    await run(['dataset', 'create', 'events'])
    const r = await run<Commit>(['commit', 'events', await file('ev.csv', 'kind,n\nclick,1\nclick,1\nview,2\n'), '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ row_count: '3', loaded: 3 })
    const d = await run<Commit>(['commit', 'events', await file('ev-del.csv', 'kind,n\nclick,1\n'), '--mode', 'delete', '--json'])
    expect(d.json).toMatchObject({ created: true, row_count: '2' })
    expect((await rowsOf('events')).map((x) => `${x.kind}${x.n}`)).toEqual(['click1', 'view2'])
    const out = path.join(dir, 'events.jsonl')
    expect((await run(['checkout', 'events', 'main~1', '--out', out])).exitCode).toBe(0)
    expect((await fs.readFile(out, 'utf8')).trim().split('\n').sort()).toEqual(['{"kind":"click","n":1}', '{"kind":"click","n":1}', '{"kind":"view","n":2}'])
  })

  it('--mode apply: one CSV of upserts and deletions (a _dv_delete column) makes one version', async () => {
    await run(['dataset', 'create', 'stock', '--key', 'sku'])
    await run(['commit', 'stock', await file('s1.csv', 'sku,qty\na,1\nb,2\nc,3\n')])
    const before = await versions('stock')
    const r = await run<Commit>(['commit', 'stock', await file('s2.csv', 'sku,qty,_dv_delete\na,1,\nb,20,false\nc,,true\nd,4,\n'), '--mode', 'apply', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ created: true, added: '1', removed: '1', modified: '1', row_count: '3' })
    expect(await versions('stock')).toBe(before + 1)
    expect(await rowsOf('stock')).toEqual([{ qty: 1, sku: 'a' }, { qty: 20, sku: 'b' }, { qty: 4, sku: 'd' }])
    // _dv_delete is not data: the dataset's schema has no such column.
    const { rows } = await c.query("SELECT column_name FROM dv.dataset_columns('stock')")
    expect(rows.map((x) => x.column_name)).toEqual(['sku', 'qty'])
  })

  it('CSV options: TAB delimiter, another quote, a NULL marker, no header with --columns', async () => {
    await run(['dataset', 'create', 'tsv'])
    const r = await run<Commit>([
      'commit', 'tsv', await file('a.tsv', "1\t'it''s'\tNULL\n2\t'x'\tb\n"),
      '--delimiter', '\\t', '--quote', "'", '--null', 'NULL', '--no-header', '--columns', 'n integer, a text, b text', '--json',
    ])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(await rowsOf('tsv')).toEqual([
      { a: "it's", b: null, n: 1 },
      { a: 'x', b: 'b', n: 2 },
    ])
  })
})

describe('bad input: one line, non-zero exit, nothing committed', () => {
  it('a malformed CSV line names the file and line; --reject-file sets it aside', async () => {
    await run(['dataset', 'create', 'bad', '--key', 'id'])
    const f = await file('bad.csv', 'id,name\n1,a\n2,b,extra\n3,c\n4,"unclosed\n')
    expectOneLineError(await run(['commit', 'bad', f]), /bad\.csv line 3: expected 2 fields, got 3; nothing was committed.*--reject-file/)
    expect(await versions('bad')).toBe(1)
    const rej = path.join(dir, 'rejects.jsonl')
    const r = await run<Commit>(['commit', 'bad', f, '--reject-file', rej, '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ created: true, loaded: 2, rejected: 2 })
    const lines = (await fs.readFile(rej, 'utf8')).trim().split('\n').map((l) => JSON.parse(l))
    expect(lines[0]).toEqual({ line: 3, reason: 'expected 2 fields, got 3', raw: '2,b,extra' })
    expect(lines[1]).toMatchObject({ line: 5, reason: 'a quoted field is never closed' })
    expectOneLineError(await run(['commit', 'bad', f, '--reject-file', path.join(dir, 'no/such/dir/r.jsonl')]), /--reject-file .*r\.jsonl: its folder does not exist/)
    const text = await run(['commit', 'bad', f, '--reject-file', rej, '--mode', 'upsert'])
    expect(text.stdout).toMatch(/set aside 2 bad records in .*rejects\.jsonl/)
  })

  it('--reject-file keeps COPY\'s NULL and quoting rules and still maps a type error to its line', async () => {
    await run(['dataset', 'create', 'rej', '--key', 'id'])
    const rej = path.join(dir, 'rej2.jsonl')
    const f = await file('rej.csv', 'id,name\n1,\n2,""\n3,a,b\n\n4,"multi\nline"\n')
    const r = await run<Commit>(['commit', 'rej', f, '--reject-file', rej, '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ loaded: 3, rejected: 2 })
    expect(await rowsOf('rej')).toEqual([
      { id: 1, name: null },
      { id: 2, name: '' },
      { id: 4, name: 'multi\nline' },
    ])
    const bad = (await fs.readFile(rej, 'utf8')).trim().split('\n').map((l) => JSON.parse(l))
    expect(bad.map((b) => [b.line, b.reason])).toEqual([
      [4, 'expected 2 fields, got 3'],
      [5, 'a blank line'],
    ])
    // A value that does not fit its column: set aside too on PostgreSQL 17+ (COPY ON_ERROR),
    // before that the load stops at it, naming the line and column.
    const g = await file('rej2.csv', 'id,name\n1,a\n2,b,c\n3,"x\ny"\nzz,q\n')
    const pg17 = Number((await c.query('SHOW server_version_num')).rows[0].server_version_num) >= 170000
    const typed = await run<Commit>(['commit', 'rej', g, '--reject-file', rej, '--json'])
    if (pg17) {
      expect(typed.exitCode, typed.stderr).toBe(0)
      expect(typed.json).toMatchObject({ loaded: 2, rejected: 2 })
      const set = (await fs.readFile(rej, 'utf8')).trim().split('\n').map((l) => JSON.parse(l))
      expect(set.map((b) => [b.line, b.reason])).toEqual([
        [3, 'expected 2 fields, got 3'],
        [6, 'column id: value "zz" does not fit type bigint'],
      ])
      const jl = await file('rej3.jsonl', '{"id":7,"name":"ok"}\n{"id":"seven","name":"no"}\n')
      const j = await run<Commit>(['commit', 'rej', jl, '--mode', 'upsert', '--reject-file', rej, '--json'])
      expect(j.json).toMatchObject({ loaded: 1, rejected: 1, added: '1' })
    } else {
      // With --json the one-line error is the JSON on stdout.
      expect(typed.exitCode).not.toBe(0)
      expect((typed.json as unknown as { error: { message: string } }).error.message).toMatch(/rej2\.csv line 6, column id: invalid input syntax for type bigint: "zz"/)
    }
  })

  it('malformed JSONL names the line', async () => {
    const f = await file('bad.jsonl', '{"id":10,"name":"x"}\n{"id":11,\n')
    expectOneLineError(await run(['commit', 'bad', f, '--mode', 'upsert']), /bad\.jsonl line 2: invalid JSON/)
  })

  it('a value that does not fit the column type names the line and column', async () => {
    const before = await versions('bad')
    const f = await file('type.csv', 'id,name\n5,a\n6,b\n"x\ny",c\n')
    expectOneLineError(await run(['commit', 'bad', f, '--mode', 'upsert']), /type\.csv line 5, column id: invalid input syntax for type bigint: "x\\ny"|type\.csv line 5, column id: invalid input syntax for type bigint/)
    expect(await versions('bad')).toBe(before)
  })

  it('missing key columns, duplicate keys, unknown refs, existing tags, unknown datasets', async () => {
    const before = await versions('bad')
    expectOneLineError(await run(['commit', 'bad', await file('nokey.csv', 'name\na\n')]), /nokey\.csv has no key column "id" of dataset "bad"/)
    expectOneLineError(await run(['commit', 'bad', await file('dup.csv', 'id,name\n1,a\n1,b\n')]), /repeat key \{"id": 1\}/)
    expectOneLineError(await run(['commit', 'bad', await file('ok.csv', 'id,name\n1,a\n'), '--branch', 'nope']), /no branch "nope"/)
    expect((await run(['tag', 'create', 'bad', 'first'])).exitCode).toBe(0)
    expectOneLineError(await run(['commit', 'bad', await file('ok2.csv', 'id,name\n1,zz\n'), '--tag', 'first']), /already has a ref named "first"/)
    expectOneLineError(await run(['commit', 'nosuch', await file('ok3.csv', 'id\n1\n')]), /nosuch/)
    expectOneLineError(await run(['checkout', 'bad', 'nope', '--out', path.join(dir, 'x.csv')]), /nope/)
    expectOneLineError(await run(['commit', 'bad', path.join(dir, 'missing.csv')]), /missing\.csv does not exist/)
    expectOneLineError(await run(['commit', 'bad']), /nothing to commit/)
    expect(await versions('bad')).toBe(before)
  })

  it('a first commit that fails leaves no staging table; the next one takes its load over', async () => {
    expect((await run(['dataset', 'create', 'firstbad', '--key', 'id'])).exitCode).toBe(0)
    const before = await versions('firstbad')
    expectOneLineError(await run(['commit', 'firstbad', await file('fb1.csv', 'id,name\n1,a\n,b\n')]), /fb1\.csv line 3: the key column id is empty; nothing was committed/)
    expectOneLineError(await run(['commit', 'firstbad', await file('fb2.csv', 'id,name\n1,a\n2,b\n1,c\n')]), /repeat key \{"id": 1\}/)
    expectOneLineError(await run(['commit', 'firstbad', await file('fb3.csv', 'id,name\n1,a\nx,b\n'), '--columns', 'id bigint, name text']), /fb3\.csv line 3, column id: invalid input syntax for type bigint/)
    expectOneLineError(await run(['commit', 'firstbad', await file('fb5.csv', 'id,_dv_note\n1,a\n')]), /fb5\.csv has the column "_dv_note", but names starting with _dv_ are reserved by pgdv; nothing was committed/)
    expect(await versions('firstbad')).toBe(before)
    const left = async () => (await c.query("SELECT (SELECT count(*) FROM pg_class WHERE relname ~ '_load_')::int AS tables, (SELECT count(*) FROM dv_internal.first_loads)::int AS loads")).rows[0]
    expect(await left()).toEqual({ tables: 0, loads: 0 })
    const ok = await run<{ version_id: string; row_count: string }>(['commit', 'firstbad', await file('fb4.csv', 'id,name\n1,a\n2,b\n'), '--json'])
    expect(ok.exitCode).toBe(0)
    expect(ok.json).toMatchObject({ row_count: '2' })
    const { rows } = await c.query('SELECT t.ord_start, t.ord_end FROM dv.version_tables t WHERE t.version_id = $1', [ok.json!.version_id])
    expect(rows).toEqual([{ ord_start: '0', ord_end: '2' }])
    expect(await left()).toEqual({ tables: 0, loads: 0 })
  })

  it('names that need quoting: dataset and columns with spaces, quotes and capitals', async () => {
    const name = 'My "odd" data; drop'
    expect((await run(['dataset', 'create', name, '--key', 'Row ID'])).exitCode).toBe(0)
    const f = await file('odd.csv', '"Row ID","first name","Select"\n1,"Ann",x\n2,"Bob",y\n')
    const r = await run<Commit>(['commit', name, f, '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(await rowsOf(name)).toEqual([
      { 'Row ID': 1, 'first name': 'Ann', Select: 'x' },
      { 'Row ID': 2, 'first name': 'Bob', Select: 'y' },
    ])
    const out = path.join(dir, 'odd-out.csv')
    expect((await run(['checkout', name, 'main', '--out', out])).exitCode).toBe(0)
    expect((await fs.readFile(out, 'utf8')).split('\n')[0]).toBe('Row ID,first name,Select')
  })
})

describe('history: diff, branches, tags, merge, reset', () => {
  it('diff --summary --json, rows, values, csv and json lines, schema changes', async () => {
    await run(['dataset', 'create', 'd', '--key', 'id'])
    const first = await run<Commit>(['commit', 'd', await file('d1.csv', 'id,v\n1,a\n2,b\n3,c\n'), '--json'])
    const between = new Date()
    await new Promise((r) => setTimeout(r, 50))
    await run(['commit', 'd', await file('d2.csv', 'id,v,w\n1,a,x\n2,B,y\n4,d,z\n')])
    // Time travel: where main pointed just after the first commit.
    const tt = await run<{ version_id: string }>(['show', 'd', 'main', '--at', between.toISOString(), '--json'])
    expect(tt.json?.version_id).toBe(first.json?.version_id)
    const tl = await run<{ version_id: string }[]>(['log', 'd', '--at', between.toISOString(), '--json'])
    expect(tl.json?.[0].version_id).toBe(first.json?.version_id)
    expectOneLineError(await run(['show', 'd', 'main', '--at', 'yesterday-ish']), /--at "yesterday-ish" is not a date and time/)
    const s = await run<{ added: number; removed: number; modified: number; schema: { change: string; column_name: string }[] }>(['diff', 'd', 'main~1', 'main', '--summary', '--json'])
    expect(s.exitCode, s.stderr).toBe(0)
    expect(s.json).toMatchObject({ added: 1, removed: 1, modified: 2 })
    expect(s.json?.schema).toEqual([{ change: 'added', column_name: 'w', old_type: null, new_type: 'text' }])
    const rows = await run<{ changes: { change: string; key: { id: number } }[] }>(['diff', 'd', 'main~1', 'main', '--json'])
    expect(rows.json?.changes.map((x) => `${x.change} ${x.key.id}`).sort()).toEqual(['added 4', 'modified 1', 'modified 2', 'removed 3'])
    const table = await run(['diff', 'd', 'main~1', 'main', '--values'])
    expect(table.stdout).toMatch(/\+1 added, -1 removed, ~2 modified/)
    expect(table.stdout).toMatch(/column w: added \(text\)/)
    const csv = await run(['diff', 'd', 'main~1', 'main', '--format', 'csv'])
    expect(csv.exitCode, csv.stderr).toBe(0)
    expect(csv.stdout.trim().split('\n')).toHaveLength(5)
    const jl = await run(['diff', 'd', 'main~1', 'main', '--format', 'json', '--values'])
    const objs = jl.stdout.trim().split('\n').map((l) => JSON.parse(l))
    expect(objs.find((o) => o.change === 'modified' && o.key.id === 2)).toMatchObject({ old_values: { v: 'b' }, new_values: { v: 'B', w: 'y' } })
    expectOneLineError(await run(['diff', 'd', 'nope', 'main']), /nope/)
  })

  it('branch and tag create, list, delete; commits on a branch; reset; merge with conflicts', async () => {
    expect((await run(['branch', 'create', 'd', 'fix'])).exitCode).toBe(0)
    expect((await run(['branch', 'create', 'd', 'other', '--from', 'main~1'])).exitCode).toBe(0)
    const bl = await run<{ ref: string }[]>(['branch', 'list', 'd', '--json'])
    expect(bl.json?.map((b) => b.ref)).toEqual(['fix', 'main', 'other'])
    expectOneLineError(await run(['branch', 'create', 'd', 'fix']), /fix/)
    expect((await run(['branch', 'delete', 'd', 'other'])).exitCode).toBe(0)

    // Both sides change id 1 differently; fix also adds id 9 and main removes id 4.
    await run(['commit', 'd', await file('f1.csv', 'id,v\n1,fix\n9,new\n'), '--branch', 'fix', '--mode', 'upsert'])
    await run(['commit', 'd', await file('m1.csv', 'id,v\n1,main\n'), '--mode', 'upsert'])
    await run(['commit', 'd', await file('m2.csv', 'id\n4\n'), '--mode', 'delete'])
    const head = (await run<{ version_id: string }>(['show', 'd', 'main', '--json'])).json!.version_id
    const conflict = await run(['merge', 'd', 'fix'])
    expect(conflict.exitCode).toBe(1)
    expect(conflict.stdout).toMatch(/KEY\s+BASE\s+OURS\s+THEIRS/)
    expect(conflict.stdout).toMatch(/"id":1/)
    expect(conflict.stderr.trim()).toMatch(/^Error: 1 conflict merging fix into main of "d"; nothing was committed.*--strategy/)
    const cj = await run<{ status: string; conflicts: { ours: { v: string }; theirs: { v: string } }[] }>(['merge', 'd', 'fix', '--json'])
    expect(cj.exitCode).toBe(1)
    expect(cj.json).toMatchObject({ status: 'conflict', conflicts: [{ ours: { v: 'main' }, theirs: { v: 'fix' } }] })
    expect((await run<{ version_id: string }>(['show', 'd', 'main', '--json'])).json!.version_id).toBe(head)

    const m = await run<{ status: string; version_id: string }>(['merge', 'd', 'fix', '--strategy', 'theirs', '-m', 'take fix', '--json'])
    expect(m.exitCode, m.stderr).toBe(0)
    expect(m.json?.status).toBe('merged')
    const merged = (await rowsOf('d')).sort((a, b) => Number(a.id) - Number(b.id))
    expect(merged.map((x) => `${x.id}=${x.v}`)).toEqual(['1=fix', '2=B', '9=new'])
    expect((await run<{ status: string }>(['merge', 'd', 'fix', '--json'])).json?.status).toBe('up-to-date')

    // Tags, then reset main back one version and forward again.
    expect((await run(['tag', 'create', 'd', 'merged'])).exitCode).toBe(0)
    expect((await run(['tag', 'create', 'd', 'before', 'main~1'])).exitCode).toBe(0)
    expect((await run<{ ref: string }[]>(['tag', 'list', 'd', '--json'])).json?.map((x) => x.ref)).toEqual(['before', 'merged'])
    expectOneLineError(await run(['tag', 'create', 'd', 'merged']), /merged/)
    const reset = await run<{ version_id: string }>(['reset', 'd', 'main', 'before', '--json'])
    expect(reset.exitCode, reset.stderr).toBe(0)
    expect((await rowsOf('d')).map((x) => x.id).sort()).toEqual([1, 2])
    expect((await run(['reset', 'd', 'main', 'merged'])).stdout).toMatch(/branch main of "d" now at version/)
    expect((await rowsOf('d')).map((x) => x.id).sort()).toEqual([1, 2, 9])
    expect((await run(['tag', 'delete', 'd', 'before'])).exitCode).toBe(0)
    const out = path.join(dir, 'tagged.csv')
    expect((await run(['checkout', 'd', 'merged', '--out', out])).exitCode).toBe(0)
    expect((await fs.readFile(out, 'utf8')).trim().split('\n')).toHaveLength(4)
  })

  it('a files dataset: commit refuses; checkout writes its files to a folder', async () => {
    await run(['dataset', 'create', 'imgs', '--files'])
    expectOneLineError(await run(['commit', 'imgs', await file('x.csv', 'path\na\n')]), /files dataset.*pgdv add/)
    // checkout writes a files dataset to a folder through checkoutFiles (src/api/files.ts).
    const src = path.join(dir, 'imgs-src')
    await fs.mkdir(src)
    await fs.writeFile(path.join(src, 'a.txt'), 'hello')
    await fs.writeFile(path.join(src, 'b.bin'), Buffer.alloc(70_000, 7))
    const add = await run(['add', 'imgs', src])
    expect(add.exitCode, add.stderr).toBe(0)
    const out = path.join(dir, 'imgs-out')
    const r = await run<{ format: string; rows: number }>(['checkout', 'imgs', 'main', '--out', out, '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ format: 'files', rows: 2 })
    expect(await fs.readFile(path.join(out, 'a.txt'), 'utf8')).toBe('hello')
    expect((await fs.readFile(path.join(out, 'b.bin'))).equals(Buffer.alloc(70_000, 7))).toBe(true)
  })
})

describe('bad lines beyond the sample (PostgreSQL parses the CSV)', () => {
  it('a malformed or mistyped record after the first 1,000 still names its line', async () => {
    await run(['dataset', 'create', 'big', '--key', 'id'])
    const good = Array.from({ length: 1200 }, (_v, i) => `${i},"row\n${i}"`)
    const f1 = await file('big1.csv', ['id,name', ...good, '5000,a,extra'].join('\n') + '\n')
    // header 1 line + 1200 records of 2 lines each: the bad record is on line 2402
    expectOneLineError(await run(['commit', 'big', f1]), /big1\.csv line 2402: extra data after last expected column; nothing was committed/)
    const f2 = await file('big2.csv', ['id,name', ...good, 'oops,a'].join('\n') + '\n')
    expectOneLineError(await run(['commit', 'big', f2]), /big2\.csv line 2402, column id: invalid input syntax for type bigint: "oops"/)
    const f3 = await file('big3.csv', ['\ufeffid,name', ...good].join('\n') + '\n')
    const ok = await run<Commit>(['commit', 'big', f3, '--json'])
    expect(ok.exitCode, ok.stderr).toBe(0)
    expect(ok.json).toMatchObject({ loaded: 1200, added: '1200' })
    expect(await versions('big')).toBe(2)
  })
})
