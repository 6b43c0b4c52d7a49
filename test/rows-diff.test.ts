// Diffs, merges, concurrency and grants through the TypeScript API (src/api/rows.ts).

import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { createBranch } from '../src/api/refs.js'
import { commitObjects, datasetColumns, diff, diffSummary, merge, mergeBase, readRows, checkpoint, getRow } from '../src/api/rows.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'
import { commitRows } from './helpers/versions.js'

let t: TestDatabase
let pgdv: Pgdv

beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
})
afterAll(async () => {
  await pgdv?.close()
  await t?.drop()
})

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

/** A seeded generator, so that a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = Math.imul(s ^ (s >>> 15), 1 | s)
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

describe('commitObjects and readRows', () => {
  it('streams objects from an async generator into a version and reads them back', async () => {
    async function* gen() {
      for (let i = 0; i < 5000; i++) yield { id: i, label: i % 7 === 0 ? null : `row\t${i}\n"x"\\`, tags: ['a', `b${i}`], meta: { i }, raw: Buffer.from([i % 256]) }
    }
    const v = await commitObjects(pgdv, { dataset: await mk('stream', ['id']), rows: gen(), columns: 'id int, label text, tags text[], meta jsonb, raw bytea', message: 'first' })
    expect(v).toMatchObject({ created: true, added: '5000', row_count: '5000' })
    let n = 0
    for await (const r of readRows(pgdv, { dataset: 'stream', batch: 700 })) {
      expect(r).toEqual({ id: r.id, label: (r.id as number) % 7 === 0 ? null : `row\t${r.id}\n"x"\\`, tags: ['a', `b${r.id}`], meta: { i: r.id }, raw: Buffer.from([(r.id as number) % 256]) })
      n++
    }
    expect(n).toBe(5000)
    await expect(commitObjects(pgdv, { dataset: 'stream', rows: [{ id: 1, nope: 2 }] })).rejects.toThrow(/field "nope", which is not a column/)
    expect((await datasetColumns(pgdv, 'stream')).map((c) => c.column_name)).toEqual(['id', 'label', 'tags', 'meta', 'raw'])
  })
})

async function mk(name: string, key: string[] | null): Promise<string> {
  await pgdv.db.query('SELECT * FROM dv.dataset_create(p_name => $1, p_key_columns => $2)', [name, key])
  return name
}

describe('diff', () => {
  it('from deltas equals a full-scan comparison of the two snapshots, on random data', async () => {
    await mk('rand', ['id'])
    const r = rng(7)
    let rows = new Map<number, { id: number; v: number; s: string | null }>()
    for (let i = 0; i < 300; i++) rows.set(i, { id: i, v: Math.floor(r() * 5), s: r() < 0.2 ? null : `s${Math.floor(r() * 3)}` })
    await commitRows(pgdv, 'rand', [...rows.values()], { columns: 'id int, v int, s text' })
    await createBranch(pgdv, 'rand', 'side')
    for (let step = 0; step < 12; step++) {
      const branch = step % 3 === 0 ? 'side' : 'main'
      const next = new Map(rows)
      for (let j = 0; j < 20; j++) {
        const id = Math.floor(r() * 400)
        if (r() < 0.3) next.delete(id)
        else next.set(id, { id, v: Math.floor(r() * 5), s: `s${Math.floor(r() * 3)}` })
      }
      if (branch === 'main') rows = next
      await commitRows(pgdv, 'rand', [...next.values()], { branch })
      if (step === 6) await checkpoint(pgdv, 'rand', 'main')
    }
    const refs = ['main', 'main~1', 'main~4', 'main~8', 'side', 'side~2', 'main~7']
    for (const a of refs) {
      for (const b of refs) {
        const fast = await all(diff(pgdv, { dataset: 'rand', from: a, to: b, values: true }))
        const full = await pgdv.db.query<{ change: string; key: unknown }>(`
          WITH o AS (SELECT * FROM jsonb_to_recordset((SELECT coalesce(jsonb_agg(r), '[]') FROM dv.rows('rand', $1) r)) AS x(id int, v int, s text)),
               n AS (SELECT * FROM jsonb_to_recordset((SELECT coalesce(jsonb_agg(r), '[]') FROM dv.rows('rand', $2) r)) AS x(id int, v int, s text))
          SELECT 'removed' AS change, jsonb_build_object('id', o.id) AS key FROM o WHERE NOT EXISTS (SELECT 1 FROM n WHERE n.id = o.id)
          UNION ALL SELECT 'added', jsonb_build_object('id', n.id) FROM n WHERE NOT EXISTS (SELECT 1 FROM o WHERE o.id = n.id)
          UNION ALL SELECT 'modified', jsonb_build_object('id', n.id) FROM n JOIN o USING (id) WHERE (n.v, n.s) IS DISTINCT FROM (o.v, o.s)
          ORDER BY 2, 1`, [a, b])
        const sortKey = (x: { key: unknown; change: string }) => `${JSON.stringify(x.key)}${x.change}`
        expect(fast.map((d) => ({ change: d.change, key: d.key })).sort((x, y) => sortKey(x).localeCompare(sortKey(y))))
          .toEqual(full.map((d) => ({ change: d.change, key: d.key })).sort((x, y) => sortKey(x).localeCompare(sortKey(y))))
        const s = await diffSummary(pgdv, { dataset: 'rand', from: a, to: b })
        expect(Number(s.added) + Number(s.removed) + Number(s.modified)).toBe(full.length)
      }
    }
  })
})

describe('diff cost follows the change', () => {
  it('never scans the big base table of an ancestor: candidate keys come from the deltas, values by index probes', async () => {
    await mk('wide', ['id'])
    await commitObjects(pgdv, { dataset: 'wide', rows: (async function* () { for (let i = 1; i <= 20000; i++) yield { id: i, v: i % 10 } })(), columns: 'id int, v int' })
    for (let i = 0; i < 3; i++) await commitRows(pgdv, 'wide', [{ id: 5 + i, v: 100 + i }, { id: 30000 + i, v: 1 }], { mode: 'upsert' })
    await commitRows(pgdv, 'wide', [{ id: 9 }], { mode: 'delete' })
    const [{ base }] = await pgdv.db.query<{ base: string }>("SELECT delta_table AS base FROM dv.version_tables WHERE version_id = dv.resolve_ref('wide', 'main~4')")
    await pgdv.db.query(`ANALYZE dv_rows.${pg.escapeIdentifier(base)}`)
    const [{ sql }] = await pgdv.db.query<{ sql: string }>("SELECT dv_internal.diff_sql(dv.resolve_ref('wide', 'main~3'), dv.resolve_ref('wide', 'main'), true) AS sql")
    const plan = JSON.stringify(await pgdv.db.query(`EXPLAIN (FORMAT JSON) ${sql}`))
    expect(plan).toContain(`"Relation Name":"${base}"`)
    expect(plan).not.toMatch(new RegExp(`"Node Type":"Seq Scan"[^}]*"Relation Name":"${base}"`))
    expect(await diffSummary(pgdv, { dataset: 'wide', from: 'main~3', to: 'main' })).toEqual({ added: '2', removed: '1', modified: '2' })
  })
})

describe('merge', () => {
  it('fast-forward, up-to-date, clean three-way, conflicts and strategies', async () => {
    await mk('m', ['id'])
    await commitRows(pgdv, 'm', [{ id: 1, v: 'a' }, { id: 2, v: 'b' }, { id: 3, v: 'c' }], { columns: 'id int, v text' })
    await createBranch(pgdv, 'm', 'feature')
    await commitRows(pgdv, 'm', [{ id: 4, v: 'd' }], { mode: 'append', branch: 'feature' })
    expect(await merge(pgdv, { dataset: 'm', from: 'feature' })).toMatchObject([{ status: 'fast-forward' }])
    expect(await merge(pgdv, { dataset: 'm', from: 'feature' })).toMatchObject([{ status: 'up-to-date' }])

    // Clean: main edits 1 and deletes 2, feature edits 3 and adds 5 and a column.
    await commitRows(pgdv, 'm', [{ id: 1, v: 'A' }], { mode: 'upsert' })
    await commitRows(pgdv, 'm', [{ id: 2 }], { mode: 'delete' })
    await commitRows(pgdv, 'm', [{ id: 3, v: 'C', w: 1 }, { id: 5, v: 'e', w: 2 }], { mode: 'upsert', branch: 'feature', columns: 'w int' })
    const base = await mergeBase(pgdv, 'm', 'main', 'feature')
    expect(base).toBe(await pgdv.db.one<{ id: string }>("SELECT dv.resolve_ref('m', 'feature~1') AS id").then((r) => r.id))
    const [merged] = await merge(pgdv, { dataset: 'm', from: 'feature' })
    expect(merged.status).toBe('merged')
    const rowsOf = async (ref: string) => (await all(readRows(pgdv, { dataset: 'm', ref }))).sort((a, b) => (a.id as number) - (b.id as number))
    expect(await rowsOf('main')).toEqual([
      { id: 1, v: 'A', w: null }, { id: 3, v: 'C', w: 1 }, { id: 4, v: 'd', w: null }, { id: 5, v: 'e', w: 2 },
    ])
    const parents = await pgdv.db.query<{ parent_id: string }>('SELECT parent_id FROM dv.version_parents WHERE version_id = $1 ORDER BY ordinal', [merged.version_id])
    expect(parents).toHaveLength(2)
    expect(await getRow(pgdv, 'm', 'main', { id: 5 })).toEqual({ id: 5, v: 'e', w: 2 })
    // The merge version's table inherits from both parents' tables.
    const inh = await pgdv.db.query(`SELECT count(*)::int AS n FROM pg_inherits WHERE inhrelid = (SELECT format('dv_rows.%I', delta_table)::regclass FROM dv.version_tables WHERE version_id = $1)`, [merged.version_id])
    expect(inh).toEqual([{ n: 2 }])

    // Conflicts: both change key 1 differently; feature also adds 6 (clean).
    await commitRows(pgdv, 'm', [{ id: 1, v: 'main' }], { mode: 'upsert' })
    await commitRows(pgdv, 'm', [{ id: 1, v: 'feat' }, { id: 6, v: 'f' }], { mode: 'upsert', branch: 'feature' })
    const before = await pgdv.db.one("SELECT dv.resolve_ref('m', 'main') AS id")
    const conflicts = await merge(pgdv, { dataset: 'm', from: 'feature' })
    expect(conflicts).toEqual([{ status: 'conflict', version_id: null, key: { id: 1 }, base: { id: 1, v: 'a', w: null }, ours: { id: 1, v: 'main', w: null }, theirs: { id: 1, v: 'feat', w: null } }])
    expect(await pgdv.db.one("SELECT dv.resolve_ref('m', 'main') AS id")).toEqual(before)
    await expect(merge(pgdv, { dataset: 'm', from: 'feature', strategy: 'both' as 'ours' })).rejects.toThrow(/strategy "both" is not known/)

    await createBranch(pgdv, 'm', 'trial')
    expect(await merge(pgdv, { dataset: 'm', from: 'feature', into: 'trial', strategy: 'ours' })).toMatchObject([{ status: 'merged' }])
    expect(await getRow(pgdv, 'm', 'trial', { id: 1 })).toMatchObject({ v: 'main' })
    expect(await getRow(pgdv, 'm', 'trial', { id: 6 })).toMatchObject({ v: 'f' })
    expect(await merge(pgdv, { dataset: 'm', from: 'feature', strategy: 'theirs' })).toMatchObject([{ status: 'merged' }])
    expect(await getRow(pgdv, 'm', 'main', { id: 1 })).toMatchObject({ v: 'feat' })
    expect(await getRow(pgdv, 'm', 'main', { id: 6 })).toMatchObject({ v: 'f' })
  })

  it('merges keyless datasets by counts', async () => {
    await mk('bagm', null)
    await commitRows(pgdv, 'bagm', [{ a: 1 }, { a: 1 }, { a: 2 }], { columns: 'a int' })
    await createBranch(pgdv, 'bagm', 'b')
    await commitRows(pgdv, 'bagm', [{ a: 1 }], { mode: 'append' })
    await commitRows(pgdv, 'bagm', [{ a: 2 }], { mode: 'delete', branch: 'b' })
    await commitRows(pgdv, 'bagm', [{ a: 3 }], { mode: 'append', branch: 'b' })
    expect(await merge(pgdv, { dataset: 'bagm', from: 'b' })).toMatchObject([{ status: 'merged' }])
    const rows = (await all(readRows(pgdv, { dataset: 'bagm' }))).map((r) => r.a).sort()
    expect(rows).toEqual([1, 1, 1, 3])
  })
})

describe('concurrency and grants', () => {
  it('two writers on one branch: the second gets a conflict naming both versions', async () => {
    await mk('conc', ['id'])
    await commitRows(pgdv, 'conc', [{ id: 1, v: 0 }], { columns: 'id int, v int' })
    const a = new pg.Client({ connectionString: t.url })
    const b = new pg.Client({ connectionString: t.url })
    await a.connect()
    await b.connect()
    try {
      const head = (await a.query("SELECT dv.resolve_ref('conc', 'main') AS id")).rows[0].id
      await a.query('BEGIN')
      await b.query('BEGIN')
      const sa = (await a.query("SELECT dv.stage('conc') AS s")).rows[0].s
      const sb = (await b.query("SELECT dv.stage('conc') AS s")).rows[0].s
      await a.query(`INSERT INTO ${sa} VALUES (1, 1), (2, 2)`)
      await b.query(`INSERT INTO ${sb} VALUES (1, 10), (3, 3)`)
      await b.query('COMMIT')  // b's staging table survives (TEMP, session-scoped)
      await b.query('BEGIN')
      const ca = (await a.query(`SELECT * FROM dv.commit('conc', '${sa}')`)).rows[0]
      // b blocks on the branch lock until a commits, then sees the branch moved.
      const pb = b.query(`SELECT * FROM dv.commit('conc', '${sb}')`).then(() => new Error('no conflict'), (e: Error) => e)
      await new Promise((r) => setTimeout(r, 200))
      await a.query('COMMIT')
      expect((await pb).message).toMatch(new RegExp(`moved from version ${head} to version ${ca.version_id}`))
      await b.query('ROLLBACK')
      const rows = (await all(readRows(pgdv, { dataset: 'conc' }))).sort((x, y) => (x.id as number) - (y.id as number))
      expect(rows).toEqual([{ id: 1, v: 1 }, { id: 2, v: 2 }])
    } finally {
      await a.end()
      await b.end()
    }
  })

  it('a pgdv_reader reads rows, diffs and tag views; a pgdv_writer commits', async () => {
    await mk('granted', ['id'])
    await commitRows(pgdv, 'granted', [{ id: 1 }], { columns: 'id int', tag: 'g1' })
    const suffix = t.name.slice(-8)
    const reader = `rr_${suffix}`
    const writer = `rw_${suffix}`
    await pgdv.db.query(`CREATE ROLE ${reader} LOGIN PASSWORD 'pw' IN ROLE pgdv_reader`)
    await pgdv.db.query(`CREATE ROLE ${writer} LOGIN PASSWORD 'pw' IN ROLE pgdv_writer`)
    await pgdv.db.query(`GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(t.name)} TO ${reader}, ${writer}`)
    const as = async (role: string, fn: (c: pg.Client) => Promise<unknown>) => {
      const u = new URL(t.url)
      u.username = role
      u.password = 'pw'
      const c = new pg.Client({ connectionString: u.toString() })
      await c.connect()
      try {
        return await fn(c)
      } finally {
        await c.end()
      }
    }
    try {
      await as(writer, async (c) => {
        const s = (await c.query("SELECT dv.stage('granted') AS s")).rows[0].s
        await c.query(`INSERT INTO ${s} VALUES (1), (2)`)
        expect((await c.query(`SELECT * FROM dv.commit('granted', '${s}')`)).rows[0]).toMatchObject({ created: true, added: '1' })
        await expect(c.query("SELECT * FROM dv.commit('granted', 'dv.audit_log')")).rejects.toThrow(/may not read/)
      })
      await as(reader, async (c) => {
        expect((await c.query("SELECT count(*)::int AS n FROM dv.rows('granted', 'main')")).rows).toEqual([{ n: 2 }])
        expect((await c.query("SELECT change FROM dv.diff('granted', 'g1', 'main')")).rows).toEqual([{ change: 'added' }])
        expect((await c.query('SELECT * FROM dv_tags."granted@g1"')).rows).toEqual([{ id: 1 }])
        expect((await c.query("SELECT dv.row('granted', 'main', '{\"id\": 2}') AS r")).rows).toEqual([{ r: { id: 2 } }])
        await expect(c.query("SELECT dv.stage('granted')")).rejects.toThrow(/permission denied/)
      })
    } finally {
      await pgdv.db.query(`REVOKE CONNECT ON DATABASE ${pg.escapeIdentifier(t.name)} FROM ${reader}, ${writer}`)
      await pgdv.db.query(`DROP ROLE ${reader}`)
      await pgdv.db.query(`DROP ROLE ${writer}`)
    }
  })
})
