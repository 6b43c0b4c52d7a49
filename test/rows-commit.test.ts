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
  const canon = (o: Record<string, unknown>) => JSON.stringify(Object.keys(o).sort().map((k) => [k, o[k]]))
  return r.map((x) => x.r).sort((a, b) => (canon(a) < canon(b) ? -1 : canon(a) > canon(b) ? 1 : 0))
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

describe('mode apply and the first commit', () => {
  it('applies a mixed change set (upserts and _dv_delete rows) as one version', async () => {
    await q("SELECT * FROM dv.dataset_create('mixed', p_key_columns => ARRAY['id'])")
    await commit('mixed', [{ id: 1, label: 'a' }, { id: 2, label: 'b' }, { id: 3, label: 'c' }], { columns: 'id bigint, label text' })
    const [{ stage }] = await q<{ stage: string }>("SELECT dv.stage('mixed') AS stage")
    await q(`ALTER TABLE ${stage} ADD COLUMN _dv_delete boolean`)
    // 1 unchanged, 2 modified, 3 deleted, 4 added, 99 a deletion of a key that is not there.
    await q(`INSERT INTO ${stage} (id, label, _dv_delete) VALUES (1, 'a', NULL), (2, 'B', false), (3, NULL, true), (4, 'd', false), (99, NULL, true)`)
    const [v] = await q(`SELECT * FROM dv.commit('mixed', '${stage}', p_mode => 'apply')`)
    expect(v).toMatchObject({ created: true, added: '1', removed: '1', modified: '1', row_count: '3' })
    expect(await rows('mixed')).toEqual([{ id: 1, label: 'a' }, { id: 2, label: 'B' }, { id: 4, label: 'd' }])
    expect(await q("SELECT change, key FROM dv.diff('mixed', 'main~1', 'main') ORDER BY key->>'id'")).toEqual([
      { change: 'modified', key: { id: 2 } }, { change: 'removed', key: { id: 3 } }, { change: 'added', key: { id: 4 } },
    ])
    // The same contents committed whole have the same content hash.
    await q("SELECT * FROM dv.dataset_create('mixed_whole', p_key_columns => ARRAY['id'])")
    const whole = await commit('mixed_whole', [{ id: 1, label: 'a' }, { id: 2, label: 'B' }, { id: 4, label: 'd' }], { columns: 'id bigint, label text' })
    expect(whole.content_hash).toBe((v as { content_hash: string }).content_hash)
    // Without a _dv_delete column, apply is an upsert.
    expect(await commit('mixed', [{ id: 5, label: 'e' }], { mode: 'apply' })).toMatchObject({ added: '1', row_count: '4' })
    await q("SELECT * FROM dv.dataset_create('mixed_keyless')")
    await commit('mixed_keyless', [{ x: 1 }], { columns: 'x int' })
    await expect(commit('mixed_keyless', [{ x: 1 }], { mode: 'apply' })).rejects.toThrow(/has no key, so mode apply does not apply/)
  })

  it('a delete on an empty dataset changes nothing and gives it no schema; a delete adds no columns', async () => {
    await q("SELECT * FROM dv.dataset_create('empty_del', p_key_columns => ARRAY['id'])")
    const none = await commit('empty_del', [{ id: 1 }], { columns: 'id bigint', mode: 'delete' })
    expect(none).toMatchObject({ created: false, row_count: '0' })
    expect(await q("SELECT * FROM dv.dataset_columns('empty_del')")).toEqual([])
    await commit('empty_del', [{ id: 1, label: 'a' }, { id: 2, label: 'b' }], { columns: 'id bigint, label text' })
    const del = await commit('empty_del', [{ id: 2, extra: 'x' }], { columns: 'extra text', mode: 'delete' })
    expect(del).toMatchObject({ created: true, removed: '1', row_count: '1' })
    expect((await q<{ column_name: string }>("SELECT column_name FROM dv.dataset_columns('empty_del')")).map((r) => r.column_name)).toEqual(['id', 'label'])
  })

  it('a first commit that repeats a key names it and commits nothing', async () => {
    await q("SELECT * FROM dv.dataset_create('first_dup', p_key_columns => ARRAY['k'])")
    await expect(commit('first_dup', [{ k: 7, v: 1 }, { k: 8, v: 1 }, { k: 7, v: 2 }], { columns: 'k int, v int' }))
      .rejects.toThrow(/dataset "first_dup" repeat key \{"k": 7\} \(1 duplicated key\(s\)\)/)
    await expect(commit('first_dup', [{ k: null, v: 1 }], { columns: 'k int, v int' })).rejects.toThrow(/NULL key column/)
    expect(await q("SELECT count(*)::int AS n FROM dv.versions v JOIN dv.datasets d ON d.id = v.dataset_id WHERE d.name = 'first_dup'")).toEqual([{ n: 1 }])
    expect(await q("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'dv_rows' AND tablename LIKE 'd' || (SELECT id FROM dv.datasets WHERE name = 'first_dup') || '\\_%'")).toEqual([{ n: 0 }])
  })
})

describe('row layouts', () => {
  it('a first commit picks layout 2 for one hashable key column, layout 1 otherwise; it never changes', async () => {
    const layout = async (name: string) => (await q<{ l: number | null }>('SELECT row_layout AS l FROM dv.datasets WHERE name = $1', [name]))[0].l
    await q("SELECT * FROM dv.dataset_create('lay_text', p_key_columns => ARRAY['k'])")
    await q("SELECT * FROM dv.dataset_create('lay_money', p_key_columns => ARRAY['k'])")
    await q("SELECT * FROM dv.dataset_create('lay_pair', p_key_columns => ARRAY['k', 'j'])")
    await q("SELECT * FROM dv.dataset_create('lay_none')")
    expect(await layout('lay_text')).toBeNull()
    await commit('lay_text', [{ k: 'a', v: 1 }, { k: 'b', v: 2 }], { columns: 'k text, v int' })
    await commit('lay_money', [{ k: '1.50', v: 1 }], { columns: 'k money, v int' })  // btree but no hash opclass
    await commit('lay_pair', [{ k: 1, j: 'x', v: 1 }], { columns: 'k int, j text, v int' })
    await commit('lay_none', [{ v: 1 }, { v: 1 }], { columns: 'v int' })
    expect([await layout('lay_text'), await layout('lay_money'), await layout('lay_pair'), await layout('lay_none')]).toEqual([2, 1, 1, 1])
    // Layout 2 stores the values and a tombstone flag, indexed on the key; layout 1 the hashes.
    const cols = async (name: string) => (await q<{ c: string }>(
      `SELECT string_agg(a.attname, ',' ORDER BY a.attnum) AS c FROM pg_attribute a
       WHERE a.attrelid = (SELECT format('dv_rows.%I', t.delta_table)::regclass FROM dv.version_tables t JOIN dv.datasets d ON d.id = t.dataset_id
                           WHERE d.name = $1 ORDER BY t.version_id DESC LIMIT 1) AND a.attnum > 0`, [name]))[0].c
    expect(await cols('lay_text')).toBe('k,v,_dv_gone,_dv_n')
    expect(await cols('lay_pair')).toBe('k,j,v,_dv_key,_dv_hash,_dv_count')
    // Deletes, a tombstone and a point lookup in layout 2; the same content hash as layout 1 gives.
    await commit('lay_text', [{ k: 'a' }], { mode: 'delete', columns: 'k text' })
    expect(await rows('lay_text')).toEqual([{ k: 'b', v: 2 }])
    expect((await q("SELECT dv.row('lay_text', 'main', $1) AS r", [{ k: 'b' }]))[0].r).toEqual({ k: 'b', v: 2 })
    expect((await q("SELECT dv.row('lay_text', 'main', $1) AS r", [{ k: 'a' }]))[0].r).toBeNull()
    await q("SELECT * FROM dv.dataset_create('lay_text1', p_key_columns => ARRAY['k'])")
    await q("UPDATE dv.datasets SET row_layout = 1 WHERE name = 'lay_text1'")
    const a = await commit('lay_text1', [{ k: 'b', v: 2 }], { columns: 'k text, v int' })
    const [{ content_hash: head }] = await q<{ content_hash: string }>("SELECT content_hash FROM dv.versions WHERE id = dv.resolve_ref('lay_text', 'main')")
    expect(a.content_hash).toBe(head)
    expect(await layout('lay_text1')).toBe(1)
  })
})

describe('entry ordinals (whole reads by dead-entry bits)', () => {
  /** A version's rows read both ways: by bits (dv_internal.entries_sql) and by key joins (entries_join_sql). */
  async function bothWays(version: string): Promise<{ bits: boolean; byBits: string[]; byJoins: string[] }> {
    const [{ s }] = await q<{ s: string }>('SELECT dv_internal.entries_sql($1, NULL, NULL, NULL, false) AS s', [version])
    const [{ j }] = await q<{ j: string }>('SELECT dv_internal.entries_join_sql($1, NULL, NULL, NULL, false) AS j', [version])
    const read = async (sql: string) => (await q<{ r: string }>(`SELECT format('%s=%s', e.k, e.v) AS r FROM (${sql}) e ORDER BY e.k`)).map((x) => x.r)
    return { bits: s.includes('dead_bits'), byBits: await read(s), byJoins: await read(j) }
  }
  const idOf = async (ref: string) => (await q<{ id: string }>("SELECT dv.resolve_ref('ord', $1)::text AS id", [ref]))[0].id

  it('read every version like the key joins do, across branches, merges, re-adds and checkpoints', async () => {
    await q("SELECT * FROM dv.dataset_create('ord', p_key_columns => ARRAY['k'])")
    await commit('ord', Array.from({ length: 50 }, (_, i) => ({ k: i + 1, v: `a${i + 1}` })), { columns: 'k int, v text' })
    expect((await q("SELECT row_ordinals AS o FROM dv.datasets WHERE name = 'ord'"))[0].o).toBe(true)
    await commit('ord', [{ k: 3, v: 'b3' }, { k: 60, v: 'b60' }], { mode: 'upsert' })
    await commit('ord', [{ k: 4 }, { k: 5 }, { k: 60 }], { mode: 'delete' })
    await q("SELECT dv.branch_create('ord', 'side', 'main')")
    await commit('ord', [{ k: 4, v: 'readded' }, { k: 3, v: 'c3' }], { mode: 'upsert' })  // re-adds a deleted key
    await commit('ord', [{ k: 7, v: 'side7' }, { k: 8 }], { mode: 'upsert', branch: 'side', columns: 'k int, v text' })
    await commit('ord', [{ k: 3, v: 'd3' }], { mode: 'upsert', tag: 'before-ckpt' })
    await q("SELECT * FROM dv.merge('ord', 'side', 'main')")
    const expected = ['1=a1', '2=a2', '3=d3', '4=readded', '6=a6', '7=side7', '8=', ...Array.from({ length: 42 }, (_, i) => `${i + 9}=a${i + 9}`)]
    expect((await bothWays(await idOf('main'))).byBits).toEqual(expected)
    // dv.rows_sql (tag views, dv.rows, checkout) reads the chain's tables by bits too.
    expect((await q<{ s: string }>("SELECT dv.rows_sql('ord', 'main') AS s"))[0].s).toMatch(/dead_bits/)
    expect((await rows('ord')).map((r) => `${r.k}=${r.v ?? ''}`).sort()).toEqual([...expected].sort())

    const versions = (await q<{ id: string }>("SELECT v.id::text AS id FROM dv.versions v JOIN dv.datasets d ON d.id = v.dataset_id WHERE d.name = 'ord' AND v.parent_id IS NOT NULL ORDER BY v.id")).map((r) => r.id)
    // Every version above the base is read by bits, and reads what the joins read.
    for (const [i, v] of versions.entries()) {
      const r = await bothWays(v)
      expect(r.byBits, `version ${v}`).toEqual(r.byJoins)
      expect(r.bits, `version ${v}`).toBe(i > 0)
    }
    // Restricted reads of many keys (as commits and diffs make) by bits match the joins'.
    await q('CREATE TEMP TABLE want AS SELECT g AS _dv_key FROM generate_series(1, 70, 2) g')
    const restrictedByBits = { probed: 0, scanned: 0 }  // the root probed per key, or read once
    for (const v of versions) {
      const read = async (fn: string, rows: number) => {
        const [{ s }] = await q<{ s: string }>(`SELECT dv_internal.${fn}($1, 'pg_temp.want', NULL, $2, true) AS s`, [v, rows])
        if (fn === 'entries_sql' && s.includes('dv_m')) restrictedByBits[s.includes('CROSS JOIN LATERAL') ? 'probed' : 'scanned']++
        return (await q<{ r: string }>(`SELECT format('%s=%s:%s:%s', e.k, e.v, e._dv_hash, e._dv_count) AS r FROM (${s}) e ORDER BY e.k`)).map((x) => x.r)
      }
      for (const rows of [1, 35, 1000000]) expect(await read('entries_sql', rows), `version ${v}`).toEqual(await read('entries_join_sql', rows))
    }
    expect(restrictedByBits.probed).toBeGreaterThan(4)
    expect(restrictedByBits.scanned).toBeGreaterThan(4)
    // Diffs between any two of them by bits match the diffs by key lookups (values too).
    const diff = async (fn: string, a: string, b: string) =>
      (await q<{ d: string }>(`SELECT format('%s %s %s %s %s %s', d.change, d.key, d.old_hash, d.new_hash, d.old_values, d.new_values) AS d
                                 FROM (${(await q<{ s: string }>(`SELECT dv_internal.${fn}($1, $2, true) AS s`, [a, b]))[0].s}) d ORDER BY 1`)).map((r) => r.d)
    let byBits = 0
    for (const a of versions) {
      for (const b of versions) {
        if (a === b) continue
        const [{ s }] = await q<{ s: string }>('SELECT dv_internal.diff_sql($1, $2, true) AS s', [a, b])
        if (s.includes('dead_bits')) byBits++
        expect(await diff('diff_sql', a, b), `diff ${a} ${b}`).toEqual(await diff('diff_join_sql', a, b))
      }
    }
    expect(byBits).toBeGreaterThan(10)
    // The ordinals along a chain are unique.
    const chain = (await q<{ rel: string }>("SELECT rel FROM dv_internal.chain(dv.resolve_ref('ord', 'main')) ORDER BY lvl")).map((r) => r.rel)
    expect(chain.length).toBeGreaterThan(4)
    const [{ n, d }] = await q<{ n: number; d: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT x._dv_n)::int AS d FROM (${chain.map((r) => `SELECT _dv_n FROM ONLY dv_rows.${r}`).join(' UNION ALL ')}) x`)
    expect(n).toBe(d)

    // A checkpoint made below versions that exist already: those read by joins (their
    // bits count from the old root), still right; commits on top of the checkpoint count
    // from it and are read by bits again.
    const mid = await idOf('main~2')
    await q('SELECT dv.checkpoint($1, $2)', ['ord', mid])
    const head = await bothWays(await idOf('main'))
    expect(head.bits).toBe(false)
    expect(head.byJoins).toEqual(expected)
    await q("SELECT dv.branch_create('ord', 'from-ckpt', $1)", [mid])
    await commit('ord', [{ k: 1, v: 'e1' }, { k: 2 }], { mode: 'upsert', branch: 'from-ckpt', columns: 'k int, v text' })
    await commit('ord', [{ k: 6 }], { mode: 'delete', branch: 'from-ckpt', columns: 'k int' })
    const fromCkpt = await bothWays(await idOf('from-ckpt'))
    expect(fromCkpt.bits).toBe(true)
    expect(fromCkpt.byBits).toEqual(fromCkpt.byJoins)
    expect(fromCkpt.byBits.slice(0, 4)).toEqual(['1=e1', '2=', '3=c3', '4=readded'])
    // The tag's view was made before the checkpoint and keeps reading what it read.
    const view = (await q<{ r: string }>(`SELECT format('%s=%s', k, v) AS r FROM dv_tags."ord@before-ckpt" ORDER BY k`)).map((x) => x.r)
    expect(view).toEqual((await bothWays(await idOf('before-ckpt'))).byJoins)
  })
})

describe('bad input: clear error, nothing committed', () => {
  it('duplicate keys, NULL keys, missing key column, unknown dataset/branch, tag exists, wrong mode', async () => {
    await q("SELECT * FROM dv.dataset_create('bad', p_key_columns => ARRAY['k1', 'k2'])")
    await commit('bad', [{ k1: 1, k2: 'x', v: 1 }], { columns: 'k1 int, k2 text, v int', tag: 't1' })
    await q("SELECT * FROM dv.dataset_create('fresh')")
    const before = await q('SELECT count(*) FROM dv.versions')
    await expect(commit('bad', [{ k1: 1, k2: 'x', v: 1 }, { k1: 1, k2: 'x', v: 2 }])).rejects.toThrow(/repeat key \{"k1": 1, "k2": "x"\}/)
    await expect(commit('bad', [{ k1: 1, v: 1 }])).rejects.toThrow(/NULL key column/)
    await expect(commit('bad', [{ k1: 2, k2: 'y' }], { tag: 't1' })).rejects.toThrow(/already has a ref named "t1"/)
    await expect(commit('bad', [{ k1: 2, k2: 'y' }], { branch: 'nope' })).rejects.toThrow(/has no branch "nope"/)
    await expect(commit('bad', [{ k1: 2, k2: 'y' }], { branch: 't1' })).rejects.toThrow(/is a tag/)
    await expect(commit('bad', [{ k1: 2, k2: 'y' }], { mode: 'merge' })).rejects.toThrow(/commit mode "merge" is not known/)
    await expect(q("SELECT dv.stage('nope')")).rejects.toThrow(/dataset "nope" does not exist/)
    await q('CREATE TEMP TABLE no_key (k1 int, v int)')
    await expect(q("SELECT * FROM dv.commit('bad', 'no_key')")).rejects.toThrow(/lacks key column "k2"/)
    await expect(q("SELECT dv.stage('fresh')")).rejects.toThrow(/has no columns yet/)
    await expect(q("SELECT dv.stage('fresh', 'a int); drop table x; --')")).rejects.toThrow(/contains ";"/)
    await expect(q("SELECT dv.stage('fresh', 'a nosuchtype')")).rejects.toThrow(/is not valid/)
    expect(await q('SELECT count(*) FROM dv.versions')).toEqual(before)
  })
})

describe('keyless datasets', () => {
  it('count duplicate rows and delete one copy per staged row', async () => {
    await q("SELECT * FROM dv.dataset_create('bag')")
    const v1 = await commit('bag', [{ a: 1 }, { a: 1 }, { a: 2 }], { columns: 'a int' })
    expect(v1).toMatchObject({ added: '3', row_count: '3' })
    expect(await rows('bag')).toEqual([{ a: 1 }, { a: 1 }, { a: 2 }])
    const v2 = await commit('bag', [{ a: 1 }, { a: 3 }], { mode: 'append' })
    expect(v2).toMatchObject({ added: '2', row_count: '5' })
    const v3 = await commit('bag', [{ a: 1 }, { a: 1 }], { mode: 'delete' })
    expect(v3).toMatchObject({ removed: '2', row_count: '3' })
    expect(await rows('bag')).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }])
    const d = await q<{ change: string; key: unknown }>("SELECT change, key FROM dv.diff('bag', $1, 'main')", [v1.version_id])
    expect(d).toHaveLength(2)
    expect(d).toEqual(expect.arrayContaining([{ change: 'removed', key: { a: 1 } }, { change: 'added', key: { a: 3 } }]))
    await expect(commit('bag', [{ a: 1 }], { mode: 'upsert' })).rejects.toThrow(/upsert does not apply/)
  })
})

describe('reading', () => {
  it('point lookup, tag views, checkpoints, reset and time travel', async () => {
    const name = 'we"ird; drop table x -- ünï'
    await q('SELECT * FROM dv.dataset_create($1, p_key_columns => ARRAY[$2])', [name, 'Key Col'])
    const v1 = await commit(name, [{ 'Key Col': 'a', n: 1 }, { 'Key Col': 'b', n: 2 }], { columns: '"Key Col" text, n int', tag: 'release-1' })
    await commit(name, [{ 'Key Col': 'b', n: 20 }], { mode: 'upsert' })
    expect(await q('SELECT dv.row($1, $2, $3) AS r', [name, 'main', { 'Key Col': 'b' }])).toEqual([{ r: { 'Key Col': 'b', n: 20 } }])
    expect(await q('SELECT dv.row($1, $2, $3) AS r', [name, 'release-1', { 'Key Col': 'b' }])).toEqual([{ r: { 'Key Col': 'b', n: 2 } }])
    expect(await q('SELECT dv.row($1, $2, $3) AS r', [name, 'main', { 'Key Col': 'zz' }])).toEqual([{ r: null }])
    await expect(q('SELECT dv.row($1, $2, $3) AS r', [name, 'main', { n: 1 }])).rejects.toThrow(/lacks key column "Key Col"/)

    const [{ view_name }] = await q<{ view_name: string }>('SELECT view_name FROM dv.tag_views WHERE tag = $1', ['release-1'])
    expect(view_name).toBe(`${name}@release-1`)
    expect(await q(`SELECT * FROM dv_tags.${pg.escapeIdentifier(view_name)} ORDER BY 1`)).toEqual([{ 'Key Col': 'a', n: 1 }, { 'Key Col': 'b', n: 2 }])
    await q('SELECT * FROM dv.tag_delete($1, $2)', [name, 'release-1'])
    expect(await q('SELECT to_regclass($1) AS r', [`dv_tags.${pg.escapeIdentifier(view_name)}`])).toEqual([{ r: null }])

    // Checkpointed reads equal chain reads.
    const before = await rows(name)
    const [cp] = await q<{ created: boolean; table_name: string }>('SELECT * FROM dv.checkpoint($1, $2)', [name, 'main'])
    expect(cp.created).toBe(true)
    expect(await rows(name)).toEqual(before)
    await commit(name, [{ 'Key Col': 'c', n: 3 }], { mode: 'append' })
    expect(await rows(name)).toEqual([...before, { 'Key Col': 'c', n: 3 }])

    // Reset and time travel with real commits.
    const [{ now }] = await q<{ now: Date }>('SELECT clock_timestamp() AS now')
    await q('SELECT * FROM dv.reset($1, $2, $3)', [name, 'main', v1.version_id])
    expect(await rows(name)).toEqual([{ 'Key Col': 'a', n: 1 }, { 'Key Col': 'b', n: 2 }])
    const [{ at }] = await q<{ at: string }>('SELECT dv.ref_at($1, $2, $3) AS at', [name, 'main', now])
    expect(await rows(name, at)).toEqual([...before, { 'Key Col': 'c', n: 3 }])
  })

  it('checkpoints automatically past the configured depth', async () => {
    await q("UPDATE dv.settings SET value = '3' WHERE name = 'checkpoint_depth'")
    await q("SELECT * FROM dv.dataset_create('deep', p_key_columns => ARRAY['id'])")
    await commit('deep', [{ id: 0, v: 0 }], { columns: 'id int, v int' })
    for (let i = 1; i <= 7; i++) await commit('deep', [{ id: i % 3, v: i }], { mode: 'upsert' })
    const chain = await q<{ n: string }>("SELECT count(*) AS n FROM dv_internal.chain(dv.resolve_ref('deep', 'main'))")
    expect(Number(chain[0].n)).toBeLessThanOrEqual(4)
    expect(await rows('deep')).toEqual([{ id: 0, v: 6 }, { id: 1, v: 7 }, { id: 2, v: 5 }])
    await q("UPDATE dv.settings SET value = '20' WHERE name = 'checkpoint_depth'")
  })

  it('schema evolution: added columns read NULL in older versions and show in diff_schema', async () => {
    await q("SELECT * FROM dv.dataset_create('evo', p_key_columns => ARRAY['id'])")
    await commit('evo', [{ id: 1, a: 'x' }], { columns: 'id int, a text' })
    const v2 = await commit('evo', [{ id: 1, a: 'x' }], { columns: 'b numeric' })
    expect(v2).toMatchObject({ created: true, added: '0', modified: '0' })
    await commit('evo', [{ id: 2, a: 'y', b: 1.5 }], { mode: 'append' })
    expect(await rows('evo')).toEqual([{ id: 1, a: 'x', b: null }, { id: 2, a: 'y', b: 1.5 }])
    expect(await q("SELECT * FROM dv.diff_schema('evo', 'main~2', 'main')")).toEqual([{ change: 'added', column_name: 'b', old_type: null, new_type: 'numeric' }])
    expect(await q("SELECT * FROM dv.diff_summary('evo', 'main~2', 'main')")).toEqual([{ added: '1', removed: '0', modified: '0' }])
    expect(await q("SELECT * FROM dv.dataset_columns('evo')")).toEqual([
      { ordinal: 1, column_name: 'id', data_type: 'integer', is_key: true },
      { ordinal: 2, column_name: 'a', data_type: 'text', is_key: false },
      { ordinal: 3, column_name: 'b', data_type: 'numeric', is_key: false },
    ])
    await expect(q("SELECT dv.stage('evo', 'a int')")).rejects.toThrow(/is text, not integer/)
  })

  it('files datasets have a fixed schema keyed by path', async () => {
    await q("SELECT * FROM dv.dataset_create('docs', 'files')")
    expect((await q("SELECT column_name FROM dv.dataset_columns('docs')")).map((r) => r.column_name)).toEqual(['path', 'size', 'content_hash', 'mode', 'link_target'])
    const v = await commit('docs', [{ path: 'a.txt', size: 3, content_hash: 'abc', mode: 420 }])
    expect(v).toMatchObject({ created: true, added: '1' })
    await expect(commit('docs', [{ path: 'a.txt' }, { path: 'a.txt' }])).rejects.toThrow(/repeat key/)
  })
})

describe('empty root versions', () => {
  it('read as no rows; a files dataset keeps its fixed columns', async () => {
    await q("SELECT * FROM dv.dataset_create('empty_files', 'files')")
    const [{ sql }] = await q<{ sql: string }>("SELECT dv.rows_sql('empty_files', 'main') AS sql")
    const res = await c.query(sql)
    expect(res.fields.map((f) => f.name)).toEqual(['path', 'size', 'content_hash', 'mode', 'link_target'])
    expect(res.rows).toEqual([])
    await q("SELECT * FROM dv.dataset_create('empty_table')")
    expect(await q("SELECT * FROM dv.rows('empty_table', 'main')")).toEqual([])
  })
})
