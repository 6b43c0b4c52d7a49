// Property test: random sequences of commits (inserts, updates, deletes in every mode, apply included),
// branches and merges, checked against an independent in-memory model. At every version
// dv.rows equals the model, and for many pairs (a, b) applying dv.diff(a, b) to a gives b.
// Seeded: a failure prints the seed and the last operations to replay it.

import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let c: pg.Client

beforeAll(async () => {
  t = await freshDatabase()
  c = new pg.Client({ connectionString: t.url })
  await c.connect()
  // Small checkpoint depth so that reads cross checkpoints too.
  await c.query("UPDATE dv.settings SET value = '6' WHERE name = 'checkpoint_depth'")
})
afterAll(async () => {
  await c?.end()
  await t?.drop()
})

function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = Math.imul(s ^ (s >>> 15), 1 | s)
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

interface Row { id: number; v?: number; s?: string | null; _dv_delete?: boolean }
type Content = Map<string, { row: Row; n: number }>
interface Version { parents: string[]; content: Content }

const SEED = Number(process.env.PGDV_PROPERTY_SEED ?? 20261202)

/** Identity of a row: the key for keyed datasets, the whole row for keyless ones. */
const idOf = (r: Row, keyed: boolean) => (keyed ? String(r.id) : JSON.stringify([r.id, r.v, r.s]))
const same = (a?: { row: Row; n: number }, b?: { row: Row; n: number }) =>
  (a === undefined && b === undefined) || (a !== undefined && b !== undefined && a.n === b.n && JSON.stringify(a.row) === JSON.stringify(b.row))

function flat(content: Content): string[] {
  const out: string[] = []
  for (const { row, n } of content.values()) for (let i = 0; i < n; i++) out.push(JSON.stringify([row.id, row.v, row.s]))
  return out.sort()
}

async function runModel(dataset: string, keyed: boolean, ops: number, seed: number, layout?: 1 | 2) {
  const r = rng(seed)
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]
  const randRow = (id?: number): Row => ({ id: id ?? Math.floor(r() * 40), v: Math.floor(r() * 4), s: r() < 0.2 ? null : pick(['a', 'b', 'ü"\\']) })
  await c.query('SELECT * FROM dv.dataset_create($1, p_key_columns => $2)', [dataset, keyed ? ['id'] : null])
  // A layout recorded before the first commit is kept: this is how a keyed dataset is
  // made to use row layout 1 (stored hashes), which composite keys get.
  if (layout) await c.query('UPDATE dv.datasets SET row_layout = $2 WHERE name = $1', [dataset, layout])
  const root = (await c.query('SELECT dv.resolve_ref($1, $2) AS id', [dataset, 'main'])).rows[0].id as string
  const versions = new Map<string, Version>([[root, { parents: [], content: new Map() }]])
  const branches = new Map<string, string>([['main', root]])
  const log: string[] = []
  await c.query('CREATE TEMP TABLE IF NOT EXISTS st (id int, v int, s text, _dv_delete boolean)')
  let first = true
  let done = 0

  const ancestors = (id: string): Set<string> => {
    const seen = new Set<string>()
    const todo = [id]
    while (todo.length) {
      const x = todo.pop() as string
      if (seen.has(x)) continue
      seen.add(x)
      todo.push(...(versions.get(x) as Version).parents)
    }
    return seen
  }

  try {
    while (done < ops) {
      const x = r()
      if (x < 0.08 && branches.size < 6) {
        const name = `b${branches.size}`
        const from = pick([...versions.keys()])
        log.push(`branch ${name} from ${from}`)
        await c.query('SELECT * FROM dv.branch_create($1, $2, $3)', [dataset, name, from])
        branches.set(name, from)
      } else if (x < 0.22 && branches.size > 1) {
        const into = pick([...branches.keys()])
        const from = pick([...branches.keys()].filter((b) => b !== into))
        const strategy = pick([null, null, 'ours', 'theirs'])
        log.push(`merge ${from} into ${into} (${strategy})`)
        const ours = branches.get(into) as string
        const theirs = branches.get(from) as string
        const common = [...ancestors(ours)].filter((a) => ancestors(theirs).has(a))
        const base = common.reduce((m, a) => (BigInt(a) > BigInt(m) ? a : m))
        const res = (await c.query('SELECT * FROM dv.merge($1, $2, $3, $4)', [dataset, from, into, strategy])).rows
        if (base === theirs) {
          expect(res).toMatchObject([{ status: 'up-to-date' }])
        } else if (base === ours) {
          expect(res).toMatchObject([{ status: 'fast-forward', version_id: theirs }])
          branches.set(into, theirs)
        } else {
          const [b, o, th] = [base, ours, theirs].map((v) => (versions.get(v) as Version).content)
          const result: Content = new Map(o)
          const conflicts: string[] = []
          for (const k of new Set([...b.keys(), ...o.keys(), ...th.keys()])) {
            if (!keyed) {
              const n = Math.max((o.get(k)?.n ?? 0) + (th.get(k)?.n ?? 0) - (b.get(k)?.n ?? 0), 0)
              const row = (th.get(k) ?? b.get(k) ?? o.get(k))?.row as Row
              if (n > 0) result.set(k, { row, n })
              else result.delete(k)
              continue
            }
            if (same(o.get(k), th.get(k)) || same(b.get(k), th.get(k))) continue
            if (same(b.get(k), o.get(k)) || strategy === 'theirs') {
              if (th.get(k)) result.set(k, th.get(k) as { row: Row; n: number })
              else result.delete(k)
            } else if (strategy !== 'ours') conflicts.push(k)
          }
          if (conflicts.length > 0) {
            expect(res.map((x) => x.status)).toEqual(conflicts.map(() => 'conflict'))
            expect(res.map((x) => String(x.key.id)).sort()).toEqual(conflicts.sort())
          } else {
            expect(res).toMatchObject([{ status: 'merged' }])
            versions.set(res[0].version_id, { parents: [ours, theirs], content: result })
            branches.set(into, res[0].version_id)
          }
        }
      } else {
        const branch = pick([...branches.keys()])
        const head = branches.get(branch) as string
        const cur = (versions.get(head) as Version).content
        const modes = keyed ? ['replace', 'append', 'upsert', 'delete', 'apply'] : ['replace', 'append', 'delete']
        const mode = pick(modes)
        let staged: Row[] = []
        const next: Content = new Map([...cur].map(([k, v]) => [k, { ...v }]))
        const k = 1 + Math.floor(r() * 5)
        if (mode === 'replace') {
          staged = flat(cur).map((j) => { const [id, v, s] = JSON.parse(j); return { id, v, s } })
          for (let i = 0; i < k; i++) {
            const y = r()
            if (y < 0.3 && staged.length) staged.splice(Math.floor(r() * staged.length), 1)
            else if (y < 0.6 && staged.length) { const j = Math.floor(r() * staged.length); staged[j] = randRow(staged[j].id) }
            else { const row = randRow(); if (!keyed || !staged.some((s) => s.id === row.id)) staged.push(row) }
          }
          next.clear()
          for (const row of staged) {
            const e = next.get(idOf(row, keyed))
            next.set(idOf(row, keyed), { row, n: (e?.n ?? 0) + 1 })
          }
        } else if (mode === 'append') {
          for (let i = 0; i < k; i++) {
            const row = randRow(keyed ? 40 + Math.floor(r() * 100) : undefined)
            if (keyed && (next.has(idOf(row, keyed)) || staged.some((s) => s.id === row.id))) continue
            staged.push(row)
            const e = next.get(idOf(row, keyed))
            next.set(idOf(row, keyed), { row, n: (e?.n ?? 0) + 1 })
          }
        } else if (mode === 'upsert') {
          for (let i = 0; i < k; i++) {
            const row = randRow()
            if (staged.some((s) => s.id === row.id)) continue
            staged.push(row)
            next.set(idOf(row, keyed), { row, n: 1 })
          }
        } else if (mode === 'apply') {
          // Upserts and deletions in one staging table; some deletions name absent keys.
          for (let i = 0; i < k; i++) {
            const y = r()
            const existing = [...next.keys()]
            if (y < 0.4 && existing.length) {
              const id = Number(pick(existing))
              if (staged.some((s) => s.id === id)) continue
              staged.push({ id, _dv_delete: true })
              next.delete(String(id))
            } else {
              const row = randRow()
              if (staged.some((s) => s.id === row.id)) continue
              if (y < 0.5) {
                staged.push({ id: row.id, _dv_delete: true })
                next.delete(idOf(row, keyed))
              } else {
                staged.push(row)
                next.set(idOf(row, keyed), { row, n: 1 })
              }
            }
          }
        } else {
          for (let i = 0; i < k; i++) {
            const existing = flat(cur)
            const row: Row = keyed || existing.length === 0 || r() < 0.2
              ? randRow()
              : (() => { const [id, v, s] = JSON.parse(pick(existing)); return { id, v, s } })()
            if (keyed && staged.some((s) => s.id === row.id)) continue
            staged.push(row)
            const e = next.get(idOf(row, keyed))
            if (e && e.n > 1) e.n -= 1
            else next.delete(idOf(row, keyed))
          }
        }
        log.push(`commit ${mode} on ${branch}: ${JSON.stringify(staged)}`)
        const cols = first ? 'id int, v int, s text' : null
        const res = (await c.query(
          `TRUNCATE st; INSERT INTO st SELECT * FROM jsonb_populate_recordset(NULL::st, ${pg.escapeLiteral(JSON.stringify(staged))});
           SELECT * FROM dv.commit(${pg.escapeLiteral(dataset)}, 'st', ${pg.escapeLiteral(mode)}, ${pg.escapeLiteral(branch)}, p_force => ${first})`,
        ) as unknown as pg.QueryResult[])[2].rows[0]
        void cols
        first = false
        const changed = flat(next).join('|') !== flat(cur).join('|')
        expect({ created: res.created }).toEqual({ created: changed || versions.size === 1 })
        if (res.created) {
          versions.set(res.version_id, { parents: [head], content: next })
          branches.set(branch, res.version_id)
          expect(Number(res.row_count)).toBe(flat(next).length)
        }
      }
      done++
    }

    // dv.rows at every version equals the model: one round trip.
    const all = (await c.query(
      `SELECT v.id::text AS id, (SELECT coalesce(jsonb_agg(jsonb_build_array(r->'id', r->'v', r->'s')), '[]') FROM dv.rows($1, v.id::text) r) AS rows
       FROM dv.versions v WHERE v.dataset_id = (SELECT id FROM dv.datasets WHERE name = $1)`, [dataset])).rows
    expect(all.length).toBe(versions.size)
    for (const v of all) {
      expect({ id: v.id, rows: (v.rows as unknown[]).map((x) => JSON.stringify(x)).sort() }).toEqual({ id: v.id, rows: flat((versions.get(v.id) as Version).content) })
    }

    // diff(a, b) applied to a gives b, for random pairs: one round trip.
    const ids = [...versions.keys()]
    const pairs = Array.from({ length: 200 }, () => [pick(ids), pick(ids)])
    const diffs = (await c.query(
      `SELECT p.a, p.b, coalesce((SELECT jsonb_agg(to_jsonb(d)) FROM dv.diff($1, p.a, p.b, true) d), '[]') AS d
       FROM jsonb_to_recordset($2::jsonb) AS p(a text, b text)`, [dataset, JSON.stringify(pairs.map(([a, b]) => ({ a, b })))])).rows
    for (const { a, b, d } of diffs) {
      const m: Content = new Map([...(versions.get(a) as Version).content].map(([k, v]) => [k, { ...v }]))
      for (const ch of d as { change: string; old_values: Row | null; new_values: Row | null }[]) {
        if (keyed) {
          if (ch.change === 'removed') m.delete(String(ch.old_values?.id))
          else m.set(String(ch.new_values?.id), { row: ch.new_values as Row, n: 1 })
        } else {
          const row = (ch.new_values ?? ch.old_values) as Row
          const k = idOf(row, false)
          const e = m.get(k)
          if (ch.change === 'added') m.set(k, { row, n: (e?.n ?? 0) + 1 })
          else if (e && e.n > 1) e.n -= 1
          else m.delete(k)
        }
      }
      const norm = (x: Content) => flat(new Map([...x].map(([k, v]) => [k, { row: { id: v.row.id, v: v.row.v, s: v.row.s }, n: v.n }])))
      expect({ a, b, rows: norm(m) }).toEqual({ a, b, rows: flat((versions.get(b) as Version).content) })
    }
    return { ops: done, versions: versions.size, pairs: pairs.length }
  } catch (e) {
    console.error(`property test failed (dataset ${dataset}, seed ${seed}); last operations:\n${log.slice(-8).join('\n')}`)
    throw e
  }
}

// Generous timeouts: about 60 s on a quiet 2-core machine, twice that when it is shared;
// a slow run is not a failure (speed is measured in bench/, never asserted here).
describe('property: random histories against an in-memory model', () => {
  it('keyed dataset (row layout 2: values only): 700 operations', async () => {
    const res = await runModel('prop_keyed', true, 700, SEED)
    expect(res.ops).toBe(700)
    expect((await c.query("SELECT row_layout FROM dv.datasets WHERE name = 'prop_keyed'")).rows[0].row_layout).toBe(2)
  }, 600_000)

  it('keyed dataset in row layout 1 (stored key and row hashes): 300 operations', async () => {
    const res = await runModel('prop_keyed_l1', true, 300, SEED + 2, 1)
    expect(res.ops).toBe(300)
    expect((await c.query("SELECT row_layout FROM dv.datasets WHERE name = 'prop_keyed_l1'")).rows[0].row_layout).toBe(1)
  }, 600_000)

  it('keyless dataset: 300 operations', async () => {
    const res = await runModel('prop_keyless', false, 300, SEED + 1)
    expect(res.ops).toBe(300)
  }, 600_000)
})
