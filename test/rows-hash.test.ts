// The row hash computed in Node (src/rows/hash.ts) equals the one SQL stores (row layout 1)
// and the one it computes as it reads (layout 2), on every supported column type, NULLs
// and Unicode; content hashes agree too.

import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ContentHasher, canonicalText, jsonbText, keyHash, rowHash, type HashColumn } from '../src/rows/hash.js'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let c: pg.Client

beforeAll(async () => {
  t = await freshDatabase()
  c = new pg.Client({ connectionString: t.url })
  await c.connect()
})
afterAll(async () => {
  await c?.end()
  await t?.drop()
})

const COLUMNS = `id int, i2 smallint, i8 bigint, num numeric, num2 numeric(10,3), f4 real, f8 double precision, b boolean,
  tx text, vc varchar(20), by bytea, d date, ts timestamp, tstz timestamptz, u uuid, j jsonb, js json,
  ai integer[], at text[], ab boolean[]`

const ROWS = [
  `(1, 1, 9007199254740993, 1.50, 2.5, 1.1, 0.1, true, 'plain', 'v', '\\x00ff', '2024-02-29', '2024-01-01 10:00:00.25', '2024-06-01 12:00:00+02',
    'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{"b": [1, 2.5, null], "a": "x", "long key": {"z": true}}', '{"k": 1}', '{1,2,NULL}', '{"a b","ü"}', '{t,f}')`,
  `(2, -32768, -9223372036854775808, -0.000, 0, '-0', '-Infinity', false, 'Ünïcødé 😀 "quoted" \\ back
newline	tab', '', '\\x', '0001-01-01', '1999-12-31 23:59:59', '1970-01-01 00:00:00+00', '00000000-0000-0000-0000-000000000000',
    '"a string \\u0001 \\n"', '[]', '{}', '{}', NULL)`,
  `(3, NULL, NULL, 'NaN', NULL, 'NaN', 1e300, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{"x": 1.5e3, "y": -0.25}', NULL, NULL, NULL, NULL)`,
  `(4, 0, 0, 123456789012345678901234567890.123456789, 0.001, 3.4028235e38, 5e-324, true, 'x', 'y', '\\xdeadbeef', '2000-01-01', '2000-01-01 00:00:00.123', '2000-01-01 00:00:00.5-08',
    'ffffffff-ffff-ffff-ffff-ffffffffffff', 'true', '{"b":1,"a":2}', '{-1}', '{""}', '{t}')`,
]

describe('row hash: Node = SQL', () => {
  it('on every supported type, NULLs and Unicode', async () => {
    await c.query("SELECT * FROM dv.dataset_create('types', p_key_columns => ARRAY['id'])")
    const { rows: [{ stage }] } = await c.query<{ stage: string }>('SELECT dv.stage($1, $2) AS stage', ['types', COLUMNS])
    await c.query(`INSERT INTO ${stage} VALUES ${ROWS.join(', ')}`)
    const { rows: [v] } = await c.query("SELECT * FROM dv.commit('types', $1)", [stage])
    const cols = (await c.query<HashColumn>("SELECT column_name, data_type FROM dv.dataset_columns('types')")).rows
    const { rows: [{ sql }] } = await c.query<{ sql: string }>("SELECT dv.rows_sql('types', 'main') AS sql")
    const data = (await c.query(`${sql} ORDER BY id`)).rows
    // One key column: row layout 2 stores no hashes, and SQL computes them as it reads
    // (here through the diff against the empty root version).
    const { rows: computed } = await c.query<{ id: number; h: string }>(
      "SELECT (key->>'id')::int AS id, new_hash AS h FROM dv.diff('types', 'main~1', 'main') ORDER BY 1",
    )
    // Keyless: row layout 1 stores each row's hash as it commits.
    await c.query("SELECT * FROM dv.dataset_create('types_keyless')")
    const { rows: [{ stage: stage1 }] } = await c.query<{ stage: string }>('SELECT dv.stage($1, $2) AS stage', ['types_keyless', COLUMNS])
    await c.query(`INSERT INTO ${stage1} VALUES ${ROWS.join(', ')}`)
    const { rows: [v1] } = await c.query("SELECT * FROM dv.commit('types_keyless', $1)", [stage1])
    expect(v1.content_hash).toBe(v.content_hash)
    const { rows: [{ delta_table }] } = await c.query('SELECT delta_table FROM dv.version_tables WHERE version_id = $1', [v1.version_id])
    const { rows: stored } = await c.query<{ id: number; h: Buffer }>(`SELECT id, _dv_hash AS h FROM ONLY dv_rows.${pg.escapeIdentifier(delta_table)} ORDER BY id`)
    expect(stored.map((r) => ({ id: r.id, h: r.h.toString('hex') }))).toEqual(computed)
    // Per value first, so that a mismatch names the column.
    await c.query("SET DateStyle = 'ISO, MDY'; SET TimeZone = 'UTC'; SET extra_float_digits = 1")
    for (const col of cols) {
      const { rows: [{ e }] } = await c.query<{ e: string }>('SELECT dv_internal.canon_sql($1, $2) AS e', [`s.${pg.escapeIdentifier(col.column_name)}`, col.data_type])
      const sqlText = (await c.query<{ id: number; t: string | null }>(`SELECT id, ${e} AS t FROM (${sql}) s ORDER BY id`)).rows
      for (let i = 0; i < data.length; i++) {
        const value = data[i][col.column_name]
        const node = value === null ? null : canonicalText(value, col.data_type)
        expect({ id: data[i].id, col: col.column_name, t: node }).toEqual({ id: sqlText[i].id, col: col.column_name, t: sqlText[i].t })
      }
    }
    await c.query('RESET ALL')
    expect(data).toHaveLength(4)
    const content = new ContentHasher()
    for (let i = 0; i < data.length; i++) {
      const node = rowHash(data[i], cols)
      expect({ id: data[i].id, h: node.toString('hex') }).toEqual({ id: stored[i].id, h: stored[i].h.toString('hex') })
      content.add(node)
    }
    expect(content.digest()).toBe(v.content_hash)
  })

  it('canonical forms', () => {
    expect(canonicalText('1.500', 'numeric')).toBe('1.5')
    expect(canonicalText('100', 'numeric')).toBe('100')
    expect(canonicalText(-0, 'double precision')).toBe('0000000000000000')
    expect(canonicalText(Buffer.from([1, 255]), 'bytea')).toBe('01ff')
    expect(canonicalText(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 60)), 'timestamp with time zone')).toBe('2024-01-02 03:04:05.06')
    expect(jsonbText({ bb: 1, a: [true, null, 'x"'], c: {} })).toBe('{"a": [true, null, "x\\""], "c": {}, "bb": 1}')
    expect(new ContentHasher().digest()).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  })
})

describe('hashes given by a loader', () => {
  it('dv.commit uses _dv_hash/_dv_key from the staging table, and they match its own', async () => {
    await c.query("SELECT * FROM dv.dataset_create('given', p_key_columns => ARRAY['id'])")
    const cols: HashColumn[] = [{ column_name: 'id', data_type: 'integer' }, { column_name: 'name', data_type: 'text' }]
    const rows = [{ id: 1, name: 'één' }, { id: 2, name: null }]
    await c.query('CREATE TEMP TABLE given_stage (id int, name text, _dv_key bytea, _dv_hash bytea)')
    for (const r of rows) {
      await c.query('INSERT INTO given_stage VALUES ($1, $2, $3, $4)', [r.id, r.name, keyHash(r, cols, ['id']), rowHash(r, cols)])
    }
    const { rows: [v] } = await c.query("SELECT * FROM dv.commit('given', 'given_stage')")
    expect(v).toMatchObject({ created: true, added: '2' })
    // The same rows hashed by SQL are no change at all.
    await c.query('CREATE TEMP TABLE sql_stage (id int, name text)')
    await c.query("INSERT INTO sql_stage VALUES (1, 'één'), (2, NULL)")
    const { rows: [again] } = await c.query("SELECT * FROM dv.commit('given', 'sql_stage')")
    expect(again).toMatchObject({ created: false, version_id: v.version_id })
    expect(await c.query("SELECT r FROM dv.rows('given', 'main') r ORDER BY r->>'id'").then((r) => r.rows.map((x) => x.r))).toEqual(rows)
  })
})

describe('dropping a dataset', () => {
  it('drops its row tables, checkpoints and tag views', async () => {
    await c.query("SELECT * FROM dv.dataset_create('gone', p_key_columns => ARRAY['id'])")
    const { rows: [{ s }] } = await c.query("SELECT dv.stage('gone', 'id int') AS s")
    await c.query(`INSERT INTO ${s} VALUES (1)`)
    await c.query(`SELECT * FROM dv.commit('gone', '${s}', p_tag => 'keep')`)
    await c.query("SELECT * FROM dv.checkpoint('gone')")
    const { rows: [{ id }] } = await c.query("SELECT id FROM dv.datasets WHERE name = 'gone'")
    await c.query("SELECT * FROM dv.dataset_drop('gone')")
    const left = await c.query(`SELECT relname FROM pg_class WHERE relname LIKE 'd${id}\\_v%' OR relname LIKE 'c${id}\\_v%' OR relname LIKE 'gone@%'`)
    expect(left.rows).toEqual([])
  })
})
