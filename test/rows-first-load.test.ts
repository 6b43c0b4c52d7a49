// First loads (migration 010): dv.stage_first gives a dataset's first commit a table in
// dv_rows that dv.commit takes over as the version's table instead of copying it. The
// result must be the same version a dv.stage table gives; anything else falls back to
// a copy; an interrupted or refused load leaves nothing behind.

import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { gc } from '../src/api/gc.js'
import { commitObjects } from '../src/api/rows.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let c: pg.Client

async function q<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params: unknown[] = [], client = c): Promise<R[]> {
  return (await client.query<R>(sql, params)).rows
}

async function copyCsv(table: string, columns: string, csv: string, opts = 'FORMAT csv', client = c): Promise<void> {
  await pipeline(Readable.from([csv]), client.query(copyFrom(`COPY ${table} (${columns}) FROM STDIN WITH (${opts})`)))
}

const rowsCsv = (n: number, from = 1) =>
  Array.from({ length: n }, (_, i) => `${from + i},${(from + i) % 7},"label ""${from + i}"", ü"\n`).join('')

/** The version's rows as sorted JSON text, through dv.rows. */
async function contents(dataset: string, ref = 'main'): Promise<string[]> {
  return (await q<{ r: string }>('SELECT r::text AS r FROM dv.rows($1, $2) r ORDER BY 1', [dataset, ref])).map((x) => x.r)
}

async function leftovers(): Promise<{ tables: string[]; loads: number }> {
  const tables = (await q<{ relname: string }>("SELECT relname FROM pg_class WHERE relname ~ '^d[0-9]+_load_' AND relkind = 'r' ORDER BY 1")).map((r) => r.relname)
  const [{ n }] = await q<{ n: number }>('SELECT count(*)::int AS n FROM dv_internal.first_loads')
  return { tables, loads: n }
}

beforeAll(async () => {
  t = await freshDatabase()
  c = new pg.Client({ connectionString: t.url })
  await c.connect()
})
afterAll(async () => {
  await c?.end()
  await t?.drop()
})

describe('dv.stage_first', () => {
  it('a first commit takes the loaded table over and equals the same rows committed through dv.stage', async () => {
    await q("SELECT dv.dataset_create('fl', 'table', ARRAY['id'])")
    await q("SELECT dv.dataset_create('fl_copy', 'table', ARRAY['id'])")
    const cols = 'id bigint, num integer, label text'
    const csv = rowsCsv(500)

    await q('BEGIN')
    const [{ s }] = await q<{ s: string }>('SELECT dv.stage_first($1, $2) AS s', ['fl', cols])
    expect(s).toMatch(/^dv_rows\.d\d+_load_\d+$/)
    await copyCsv(s, 'id, num, label', csv, 'FORMAT csv, FREEZE')
    const [v] = await q<{ version_id: string; added: string; row_count: string; content_hash: string }>('SELECT * FROM dv.commit($1, $2::regclass)', ['fl', s])
    await q('COMMIT')
    expect(v).toMatchObject({ added: '500', row_count: '500' })

    const [{ s: s2 }] = await q<{ s: string }>('SELECT dv.stage($1, $2) AS s', ['fl_copy', cols])
    await copyCsv(s2, 'id, num, label', csv)
    const [v2] = await q<{ content_hash: string }>('SELECT * FROM dv.commit($1, $2::regclass)', ['fl_copy', s2])
    expect(v.content_hash).toBe(v2.content_hash)
    expect(await contents('fl')).toEqual(await contents('fl_copy'))
    expect(await leftovers()).toEqual({ tables: [], loads: 0 })

    // The taken-over table is the version's table, as a copied first commit makes it.
    const [vt] = await q<{ delta_table: string; ord_start: string; ord_end: string }>(
      'SELECT delta_table, ord_start, ord_end FROM dv.version_tables WHERE version_id = $1', [v.version_id])
    expect(vt).toMatchObject({ ord_start: '0', ord_end: '500' })
    expect(vt.delta_table).toMatch(new RegExp(`_v${v.version_id}$`))
    const [shape] = await q<{ cols: string; identity: string; n: number; lo: number; hi: number; gone: number; idx: string }>(`
      SELECT (SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0) AS cols,
             (SELECT string_agg(a.attidentity::text, '') FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0) AS identity,
             (SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = t.oid) AS idx
      FROM pg_class t WHERE t.oid = format('dv_rows.%I', $1::text)::regclass`, [vt.delta_table])
    expect(shape.cols).toBe('id:bigint,num:integer,label:text,_dv_gone:boolean,_dv_n:integer')
    expect(shape.identity).toBe('')
    expect(shape.idx).toMatch(/UNIQUE INDEX .* \(id\) WITH \(fillfactor='?100'?\)/)
    const [nums] = await q<{ n: number; lo: number; hi: number; gone: number }>(
      `SELECT count(DISTINCT _dv_n)::int AS n, min(_dv_n) AS lo, max(_dv_n) AS hi, count(_dv_gone)::int AS gone FROM ONLY dv_rows.${pg.escapeIdentifier(vt.delta_table)}`)
    expect(nums).toEqual({ n: 500, lo: 0, hi: 499, gone: 0 })

    // Later commits build on it with ordinals and bits, like on any first version.
    const [{ s: s3 }] = await q<{ s: string }>("SELECT dv.stage('fl') AS s")
    expect(s3).toMatch(/^pg_temp\./)
    await copyCsv(s3, 'id, num, label', '3,0,changed\n501,1,new\n')
    const [v3] = await q('SELECT * FROM dv.commit($1, $2::regclass, $3)', ['fl', s3, 'upsert'])
    expect(v3).toMatchObject({ added: '1', modified: '1', row_count: '501' })
    const [{ root }] = await q<{ root: string | null }>('SELECT dv_internal.bits_root($1) AS root', [(v3 as { version_id: string }).version_id])
    expect(root).toBe(v.version_id)
    expect(await q("SELECT change, key FROM dv.diff('fl', 'main~1', 'main') ORDER BY key::text")).toEqual([
      { change: 'modified', key: { id: 3 } },
      { change: 'added', key: { id: 501 } },
    ])
    expect((await contents('fl')).length).toBe(501)
  })

  it('the TypeScript API (commitObjects) takes its first load over too; a failing iterable leaves nothing', async () => {
    await q("SELECT dv.dataset_create('fl_api', 'table', ARRAY['id'])")
    const pgdv = await openPgdv(t)
    try {
      async function* bad() {
        yield { id: 1, v: 'a' }
        throw new Error('the source broke')
      }
      await expect(commitObjects(pgdv, { dataset: 'fl_api', columns: 'id int, v text', rows: bad() })).rejects.toThrow(/the source broke/)
      expect(await leftovers()).toEqual({ tables: [], loads: 0 })
      const v = await commitObjects(pgdv, { dataset: 'fl_api', columns: 'id int, v text', rows: [{ id: 1, v: 'a' }, { id: 2 }] })
      expect(v).toMatchObject({ added: '2', row_count: '2' })
      expect(await q('SELECT ord_start, ord_end FROM dv.version_tables WHERE version_id = $1', [v.version_id])).toEqual([{ ord_start: '0', ord_end: '2' }])
      expect(await contents('fl_api')).toEqual(['{"v": "a", "id": 1}', '{"v": null, "id": 2}'])
      expect(await leftovers()).toEqual({ tables: [], loads: 0 })
    } finally {
      await pgdv.close()
    }
  })

  it('is dv.stage once a dataset has a version, or when its key does not suit row layout 2', async () => {
    await q("SELECT dv.dataset_create('fl_keyless')")
    await q("SELECT dv.dataset_create('fl_pair', 'table', ARRAY['a', 'b'])")
    await q("SELECT dv.dataset_create('fl_money', 'table', ARRAY['m'])")
    for (const [ds, cols] of [['fl_keyless', 'x int'], ['fl_pair', 'a int, b int'], ['fl_money', 'm money, v int'], ['fl', null]] as const) {
      const [{ s }] = await q<{ s: string }>('SELECT dv.stage_first($1, $2) AS s', [ds, cols])
      expect(s, ds).toMatch(/^pg_temp\.dv_stage_/)
      await q(`DROP TABLE ${s}`)
    }
    // A text key suits.
    await q("SELECT dv.dataset_create('fl_text', 'table', ARRAY['k'])")
    await q('BEGIN')
    const [{ s }] = await q<{ s: string }>("SELECT dv.stage_first('fl_text', 'k text, v int') AS s")
    expect(s).toMatch(/^dv_rows\./)
    await q('ROLLBACK')
    expect(await leftovers()).toEqual({ tables: [], loads: 0 })
  })

  it('a table it cannot take over (a first commit in mode apply) is copied, then dropped', async () => {
    await q("SELECT dv.dataset_create('fl_apply', 'table', ARRAY['id'])")
    await q('BEGIN')
    const [{ s }] = await q<{ s: string }>("SELECT dv.stage_first('fl_apply', 'id bigint, label text') AS s")
    expect(s).toMatch(/^dv_rows\./)
    await copyCsv(s, 'id, label', '1,a\n2,b\n')
    const [v] = await q('SELECT * FROM dv.commit($1, $2::regclass, $3)', ['fl_apply', s, 'apply'])
    await q('COMMIT')
    expect(v).toMatchObject({ created: true, added: '2', row_count: '2' })
    expect(await contents('fl_apply')).toEqual(['{"id": 1, "label": "a"}', '{"id": 2, "label": "b"}'])
    expect(await leftovers()).toEqual({ tables: [], loads: 0 })
  })

  it('bad input: repeated and NULL keys, numbers set by hand, a rolled-back load; nothing is left', async () => {
    await q("SELECT dv.dataset_create('fl_bad', 'table', ARRAY['id'])")
    const attempt = async (fill: (s: string) => Promise<void>) => {
      await q('BEGIN')
      try {
        const [{ s }] = await q<{ s: string }>("SELECT dv.stage_first('fl_bad', 'id int, v text') AS s")
        await fill(s)
        await q('SELECT * FROM dv.commit($1, $2::regclass)', ['fl_bad', s])
        await q('COMMIT')
      } catch (e) {
        await q('ROLLBACK')
        throw e
      }
    }
    await expect(attempt((s) => copyCsv(s, 'id, v', '1,a\n2,b\n1,c\n'))).rejects.toThrow(/repeat key \{"id": 1\} \(1 duplicated key/)
    await expect(attempt((s) => copyCsv(s, 'id, v', '1,a\n,b\n'))).rejects.toThrow(/null value in column "id"/)
    await expect(attempt((s) => q(`INSERT INTO ${s} (id, v, _dv_n) VALUES (1, 'a', 0), (2, 'b', 0)`).then(() => {}))).rejects.toThrow(/_dv_gone or _dv_n was set by hand/)
    await expect(attempt((s) => q(`INSERT INTO ${s} (id, v, _dv_gone) VALUES (1, 'a', true)`).then(() => {}))).rejects.toThrow(/set by hand/)
    await q('BEGIN')
    const [{ s }] = await q<{ s: string }>("SELECT dv.stage_first('fl_bad', 'id int, v text') AS s")
    await copyCsv(s, 'id, v', '1,a\n')
    await q('ROLLBACK')
    expect(await leftovers()).toEqual({ tables: [], loads: 0 })
    expect(await q("SELECT count(*)::int AS n FROM dv.versions v JOIN dv.datasets d ON d.id = v.dataset_id WHERE d.name = 'fl_bad' AND v.status = 'committed' AND v.row_count > 0")).toEqual([{ n: 0 }])
  })

  it('a commit that lost the race names both versions; a load left by an ended session goes at the next stage_first', async () => {
    await q("SELECT dv.dataset_create('fl_race', 'table', ARRAY['id'])")
    const other = new pg.Client({ connectionString: t.url })
    await other.connect()
    try {
      // Staged outside a transaction (allowed): the table outlives the statement.
      const [{ s }] = await q<{ s: string }>("SELECT dv.stage_first('fl_race', 'id int, v text') AS s", [], other)
      await copyCsv(s, 'id, v', '1,a\n', 'FORMAT csv', other)
      // Meanwhile another writer makes the first version.
      const [{ s: s2 }] = await q<{ s: string }>("SELECT dv.stage('fl_race', 'id int, v text') AS s")
      await copyCsv(s2, 'id, v', '9,z\n')
      const [won] = await q<{ version_id: string; parent_id: string }>('SELECT * FROM dv.commit($1, $2::regclass)', ['fl_race', s2])
      await expect(q('SELECT * FROM dv.commit($1, $2::regclass)', ['fl_race', s], other))
        .rejects.toThrow(new RegExp(`branch "main" of dataset "fl_race" moved from version ${won.parent_id} to version ${won.version_id}`))
      expect((await leftovers()).loads).toBe(1)
    } finally {
      await other.end()
    }
    // Its session has ended: the next stage_first of the dataset drops it.
    for (let i = 0; i < 50 && (await q("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'")).length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
    }
    const [stale] = await q<{ dataset: string; staging_table: string }>('SELECT dataset, staging_table FROM dv.drop_stale_loads(p_dry_run => true)')
    expect(stale).toMatchObject({ dataset: 'fl_race', staging_table: expect.stringMatching(/^dv_rows\.d\d+_load_\d+$/) })
    expect((await leftovers()).loads).toBe(1)  // a dry run drops nothing
    const [{ s: again }] = await q<{ s: string }>("SELECT dv.stage_first('fl_race') AS s")
    expect(again).toMatch(/^pg_temp\./)  // the dataset has a version now
    expect(await leftovers()).toEqual({ tables: [], loads: 0 })
    expect(await contents('fl_race')).toEqual(['{"v": "z", "id": 9}'])
  })

  it('pgdv gc drops a first load whose session ended; one still open is kept', async () => {
    await q("SELECT dv.dataset_create('fl_gc', 'table', ARRAY['id'])")
    const pgdv = await openPgdv(t)
    const ended = new pg.Client({ connectionString: t.url })
    const open = new pg.Client({ connectionString: t.url })
    await ended.connect()
    await open.connect()
    try {
      await q("SELECT dv.stage_first('fl_gc', 'id int') AS s", [], ended)
      const [{ s: kept }] = await q<{ s: string }>("SELECT dv.stage_first('fl_gc', 'id int') AS s", [], open)
      await ended.end()
      for (let i = 0; i < 50 && (await leftovers()).loads > 0 && (await q('SELECT 1 FROM dv.drop_stale_loads(p_dry_run => true)')).length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100))
      }
      const dry = await gc(pgdv, { dryRun: true, waitMs: 0 })
      expect(dry.stale_loads.map((l) => l.dataset)).toEqual(['fl_gc'])
      expect((await leftovers()).loads).toBe(2)
      const done = await gc(pgdv, { waitMs: 0 })
      expect(done.stale_loads).toHaveLength(1)
      expect(await leftovers()).toEqual({ tables: [kept.replace('dv_rows.', '')], loads: 1 })
    } finally {
      await open.end()
      await pgdv.close()
    }
    await q('SELECT * FROM dv.drop_stale_loads()')
    expect(await leftovers()).toEqual({ tables: [], loads: 0 })
  })

  it('a pgdv_writer fills the dataset columns of its first load but not pgdv\'s, and loses its grants at the commit', async () => {
    await q("SELECT dv.dataset_create('fl_granted', 'table', ARRAY['id'])")
    const writer = `flw_${t.name.slice(-8)}`
    await q(`CREATE ROLE ${writer} LOGIN PASSWORD 'pw' IN ROLE pgdv_writer`)
    await q(`GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(t.name)} TO ${writer}`)
    const u = new URL(t.url)
    u.username = writer
    u.password = 'pw'
    const w = new pg.Client({ connectionString: u.toString() })
    await w.connect()
    try {
      await q('BEGIN', [], w)
      const [{ s }] = await q<{ s: string }>("SELECT dv.stage_first('fl_granted', 'id int, v text') AS s", [], w)
      expect(s).toMatch(/^dv_rows\./)
      // (Checked, not tried: a failed INSERT would need a savepoint, and FREEZE none.)
      expect(await q(`SELECT has_column_privilege($1::regclass, 'v', 'INSERT') AS v, has_column_privilege($1::regclass, '_dv_n', 'INSERT') AS n,
                             has_column_privilege($1::regclass, '_dv_gone', 'INSERT') AS gone`, [s], w)).toEqual([{ v: true, n: false, gone: false }])
      await copyCsv(s, 'id, v', '1,a\n2,b\n', 'FORMAT csv, FREEZE', w)
      const [v] = await q<{ version_id: string }>('SELECT * FROM dv.commit($1, $2::regclass)', ['fl_granted', s], w)
      await q('COMMIT', [], w)
      const [{ tbl }] = await q<{ tbl: string }>('SELECT delta_table AS tbl FROM dv.version_tables WHERE version_id = $1', [v.version_id])
      const [priv] = await q<{ ins: boolean; sel: boolean }>(
        `SELECT has_table_privilege($1, format('dv_rows.%I', $2::text), 'INSERT') OR has_any_column_privilege($1, format('dv_rows.%I', $2::text), 'INSERT') AS ins,
                has_table_privilege($1, format('dv_rows.%I', $2::text), 'SELECT') AS sel`, [writer, tbl])
      expect(priv).toEqual({ ins: false, sel: true })  // SELECT through pgdv_reader, as on every version table
      expect(await contents('fl_granted')).toEqual(['{"v": "a", "id": 1}', '{"v": "b", "id": 2}'])
    } finally {
      await w.end()
      await q(`REVOKE CONNECT ON DATABASE ${pg.escapeIdentifier(t.name)} FROM ${writer}`)
      await q(`DROP OWNED BY ${writer}`)
      await q(`DROP ROLE ${writer}`)
    }
  })
})
