// Column names that are also the aliases of pgdv's generated SQL (q, r, o, n, b, t, x, ...)
// must not change what reads, diffs, merges, verify or checkout return (migration 011).

import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkoutTable } from '../src/api/load.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let c: pg.Client

async function q<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
  return (await c.query<R>(sql, params)).rows
}

// Every short alias the generated SQL uses, as user columns.
const ALIASES = ['q', 'r', 'o', 'n', 'b', 't', 'x', 'y', 'e', 'c', 's', 'k', 'd', 'u', 'w', 'm', 'p']

async function commit(dataset: string, rows: Record<string, unknown>[], mode = 'replace', branch = 'main', columns: string | null = null) {
  const [{ stage }] = await q<{ stage: string }>('SELECT dv.stage($1, $2) AS stage', [dataset, columns])
  await q(`INSERT INTO ${stage} SELECT * FROM jsonb_populate_recordset(NULL::${stage}, $1::jsonb)`, [JSON.stringify(rows)])
  const [res] = await q<{ version_id: string }>('SELECT * FROM dv.commit($1, $2::regclass, $3, $4)', [dataset, stage, mode, branch])
  return res
}

const row = (id: number, tag: string) => Object.fromEntries([['id', id], ...ALIASES.map((a) => [a, `${a}${tag}`])])

beforeAll(async () => {
  t = await freshDatabase()
  c = new pg.Client({ connectionString: t.url })
  await c.connect()
})
afterAll(async () => {
  await c?.end()
  await t?.drop()
})

describe('columns named like query aliases', () => {
  for (const keys of [['id'], ['id', 'q']]) {
    it(`read, look up, diff, merge and verify whole rows (key ${keys.join(', ')})`, async () => {
      const ds = `alias_${keys.length}`
      // With q in the key (layout 1), q stays fixed so that the same rows change.
      const mk = (id: number, tag: string) => ({ ...row(id, tag), ...(keys.includes('q') ? { q: 'qk' } : {}) })
      const keyOf = (id: number) => (keys.includes('q') ? { id, q: 'qk' } : { id })
      await q('SELECT dv.dataset_create($1, $2, $3)', [ds, 'table', keys])
      const cols = ['id int', ...ALIASES.map((a) => `${a} text`)].join(', ')
      // A small base and changes larger than 1/32 of it: diffs take the bits path too.
      await commit(ds, [1, 2, 3, 4].map((i) => mk(i, 'a')), 'replace', 'main', cols)
      await q('SELECT * FROM dv.tag_create($1, $2, $3)', [ds, 'base', 'main'])
      await q('SELECT * FROM dv.branch_create($1, $2)', [ds, 'side'])
      await commit(ds, [mk(2, 'main'), mk(5, 'a')], 'upsert')
      await commit(ds, [mk(2, 'side'), mk(3, 'side')], 'upsert', 'side')

      const whole = (await q<{ r: Record<string, string> }>('SELECT r FROM dv.rows($1, $2) r ORDER BY (r->>$3)::int', [ds, 'main', 'id'])).map((x) => x.r)
      expect(whole).toEqual([mk(1, 'a'), mk(2, 'main'), mk(3, 'a'), mk(4, 'a'), mk(5, 'a')])
      expect((await q<{ r: unknown }>('SELECT dv.row($1, $2, $3) AS r', [ds, 'main', JSON.stringify(keyOf(2))]))[0].r).toEqual(mk(2, 'main'))

      expect(await q('SELECT change, key, old_values, new_values FROM dv.diff($1, $2, $3, true) ORDER BY key::text, change', [ds, 'base', 'main'])).toEqual([
        { change: 'modified', key: keyOf(2), old_values: mk(2, 'a'), new_values: mk(2, 'main') },
        { change: 'added', key: keyOf(5), old_values: null, new_values: mk(5, 'a') },
      ])
      // A conflicting merge returns base, ours and theirs as whole rows.
      expect(await q('SELECT status, key, base, ours, theirs FROM dv.merge($1, $2, $3)', [ds, 'side', 'main'])).toEqual([
        { status: 'conflict', key: keyOf(2), base: mk(2, 'a'), ours: mk(2, 'main'), theirs: mk(2, 'side') },
      ])
      const [v] = await q('SELECT * FROM dv.verify($1, $2)', [ds, 'main'])
      expect(v).toMatchObject({ ok: true })
    })
  }

  it('a staging column named _dv_* other than _dv_delete, _dv_hash, _dv_key is refused, not dropped', async () => {
    await q("SELECT dv.dataset_create('reserved', 'table', ARRAY['id'])")
    for (const cols of ['id int, _dv_note text', 'id int, _dv_hash text']) {
      const [{ stage }] = await q<{ stage: string }>('SELECT dv.stage_first($1, $2) AS stage', ['reserved', cols])
      await expect(q('SELECT * FROM dv.commit($1, $2::regclass)', ['reserved', stage]))
        .rejects.toThrow(/has column\(s\) "_dv_(note|hash)" whose names pgdv reserves \(_dv_\*\); nothing was committed/)
      await q(`DROP TABLE ${stage}`)
      await q('DELETE FROM dv_internal.first_loads')
      await q("DELETE FROM dv_internal.dataset_relations WHERE rel_name ~ '_load_'")
    }
    const [{ stage }] = await q<{ stage: string }>("SELECT dv.stage('reserved', 'id int, label text') AS stage")
    await q(`ALTER TABLE ${stage} ADD COLUMN _dv_hash bytea, ADD COLUMN _dv_delete boolean`)
    await q(`INSERT INTO ${stage} (id, label) VALUES (1, 'a')`)
    expect(await q('SELECT created, row_count FROM dv.commit($1, $2::regclass)', ['reserved', stage])).toEqual([{ created: true, row_count: '1' }])
  })

  it('checkout to JSON lines writes whole rows', async () => {
    const pgdv = await openPgdv(t)
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-alias-'))
    try {
      const out = path.join(dir, 'rows.jsonl')
      await checkoutTable(pgdv, { dataset: 'alias_1', ref: 'base', out })
      const lines = (await fs.readFile(out, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(lines.sort((a, b) => Number(a.id) - Number(b.id))).toEqual([1, 2, 3, 4].map((i) => row(i, 'a')))
    } finally {
      await pgdv.close()
      await fs.rm(dir, { recursive: true, force: true })
    }
  })
})
