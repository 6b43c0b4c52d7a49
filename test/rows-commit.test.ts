// Commits through dv.stage + COPY/INSERT + dv.commit in every mode, no-ops, bad input,
// keyless duplicates, reading (rows, row, tag views, checkpoints), reset and time travel.

import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let c: pg.Client

async function q<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
  return (await c.query<R>(sql, params)).rows
}

/** Stages rows with INSERT ... SELECT FROM json and commits them; returns dv.commit's row. */
async function commit(dataset: string, rows: Record<string, unknown>[], opts: { mode?: string; branch?: string; columns?: string; tag?: string; force?: boolean } = {}) {
  const [{ stage }] = await q<{ stage: string }>('SELECT dv.stage($1, $2) AS stage', [dataset, opts.columns ?? null])
  if (rows.length > 0) {
    await q(`INSERT INTO ${stage} SELECT * FROM jsonb_populate_recordset(NULL::${stage}, $1::jsonb)`, [JSON.stringify(rows)])
  }
  const [res] = await q(`SELECT * FROM dv.commit(p_dataset => $1, p_staging => $2::regclass, p_mode => $3, p_branch => $4, p_tag => $5, p_force => $6)`,
    [dataset, stage, opts.mode ?? 'replace', opts.branch ?? 'main', opts.tag ?? null, opts.force ?? false])
  return res as { version_id: string; created: boolean; added: string; removed: string; modified: string; row_count: string; content_hash: string }
}

async function rows(dataset: string, ref = 'main'): Promise<Record<string, unknown>[]> {
  const r = await q<{ r: Record<string, unknown> }>('SELECT r FROM dv.rows($1, $2) r', [dataset, ref])
  return r.map((x) => x.r).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))
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

describe('commit modes', () => {
  it('replace, append, upsert, delete and no-op', async () => {
    await q("SELECT * FROM dv.dataset_create('flights', p_key_columns => ARRAY['id'])")
    const v1 = await commit('flights', [{ id: 1, label: 'a' }, { id: 2, label: 'b' }], { columns: 'id bigint, label text' })
    expect(v1).toMatchObject({ created: true, added: '2', removed: '0', modified: '0', row_count: '2' })
    expect(await rows('flights')).toEqual([{ id: 1, label: 'a' }, { id: 2, label: 'b' }])

    const same = await commit('flights', [{ id: 1, label: 'a' }, { id: 2, label: 'b' }])
    expect(same).toMatchObject({ created: false, version_id: v1.version_id })

    const v2 = await commit('flights', [{ id: 1, label: 'A' }, { id: 3, label: 'c' }])
    expect(v2).toMatchObject({ created: true, added: '1', removed: '1', modified: '1', row_count: '2' })
    expect(await rows('flights')).toEqual([{ id: 1, label: 'A' }, { id: 3, label: 'c' }])
    expect(await rows('flights', 'main~1')).toEqual([{ id: 1, label: 'a' }, { id: 2, label: 'b' }])

    const v3 = await commit('flights', [{ id: 4, label: 'd' }], { mode: 'append' })
    expect(v3).toMatchObject({ added: '1', row_count: '3' })
    await expect(commit('flights', [{ id: 4, label: 'd' }], { mode: 'append' })).rejects.toThrow(/already exist/)

    const v4 = await commit('flights', [{ id: 4, label: 'D' }, { id: 5, label: 'e' }], { mode: 'upsert' })
    expect(v4).toMatchObject({ added: '1', modified: '1', row_count: '4' })

    const v5 = await commit('flights', [{ id: 1 }, { id: 99 }], { mode: 'delete' })
    expect(v5).toMatchObject({ removed: '1', row_count: '3' })
    expect(await rows('flights')).toEqual([{ id: 3, label: 'c' }, { id: 4, label: 'D' }, { id: 5, label: 'e' }])

    const forced = await commit('flights', [], { mode: 'append', force: true })
    expect(forced).toMatchObject({ created: true, row_count: '3' })
    expect(forced.content_hash).toBe(v5.content_hash)
  })
})
