import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { createDataset } from '../src/api/datasets.js'
import { createBranch, createTag, deleteBranch, listRefs, log, refAt, reflog, resetBranch, resolveRef } from '../src/api/refs.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let pgdv: Pgdv

// The row engine creates versions through dv.commit; these tests only need versions
// to exist, so they insert committed ones directly as the table owner.
async function fakeCommit(c: pg.Pool, dataset: string, branch = 'main', message = 'change'): Promise<string> {
  const { rows } = await c.query<{ id: string }>(
    `WITH d AS (SELECT id FROM dv.datasets WHERE name = $1),
          head AS (SELECT r.version_id, v.depth FROM dv.refs r JOIN dv.versions v ON v.id = r.version_id, d WHERE r.dataset_id = d.id AND r.name = $2),
          nv AS (INSERT INTO dv.versions (dataset_id, parent_id, depth, status, message, committed_at)
                 SELECT d.id, head.version_id, head.depth + 1, 'committed', $3, clock_timestamp() FROM d, head RETURNING id, parent_id),
          vp AS (INSERT INTO dv.version_parents (version_id, parent_id, ordinal) SELECT id, parent_id, 1 FROM nv)
     SELECT id FROM nv`,
    [dataset, branch, message],
  )
  await c.query('UPDATE dv.refs SET version_id = $3 WHERE dataset_id = (SELECT id FROM dv.datasets WHERE name = $1) AND name = $2', [dataset, branch, rows[0].id])
  return rows[0].id
}

beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
  await createDataset(pgdv, { name: 'flights', keyColumns: ['id'] })
})
afterAll(async () => {
  await pgdv?.close()
  await t?.drop()
})

describe('refs', () => {
  it('resolves branches, version ids, v-prefixed ids and ~N', async () => {
    const root = await resolveRef(pgdv, 'flights', 'main')
    const v2 = await fakeCommit(pgdv.db.pool, 'flights')
    const v3 = await fakeCommit(pgdv.db.pool, 'flights')
    expect(await resolveRef(pgdv, 'flights', 'main')).toBe(v3)
    expect(await resolveRef(pgdv, 'flights', 'main~1')).toBe(v2)
    expect(await resolveRef(pgdv, 'flights', 'main~~')).toBe(root)
    expect(await resolveRef(pgdv, 'flights', `v${v2}`)).toBe(v2)
    expect(await resolveRef(pgdv, 'flights', `${v3}~2`)).toBe(root)
    await expect(resolveRef(pgdv, 'flights', 'main~3')).rejects.toThrow(/past the root version/)
    await expect(resolveRef(pgdv, 'flights', 'nope')).rejects.toThrow(/ref "nope" of dataset "flights" does not exist/)
    await expect(resolveRef(pgdv, 'flights', 'main~x')).rejects.toThrow(/malformed/)
  })

  it('keeps tags immutable and refuses duplicates and bad names', async () => {
    await createTag(pgdv, 'flights', 'v1.0')
    await expect(createTag(pgdv, 'flights', 'v1.0')).rejects.toThrow(/already has a tag named "v1.0"/)
    await expect(createBranch(pgdv, 'flights', '42')).rejects.toThrow(/not allowed/)
    await expect(createBranch(pgdv, 'flights', 'a b')).rejects.toThrow(/not allowed/)
    await expect(resetBranch(pgdv, 'flights', 'v1.0', 'main~1')).rejects.toThrow(/tags never move/)
    await expect(pgdv.db.query("UPDATE dv.refs SET version_id = (SELECT min(id) FROM dv.versions) WHERE name = 'v1.0'")).rejects.toThrow(/immutable/)
  })

  it('records every move in the reflog and travels in time', async () => {
    const b = await createBranch(pgdv, 'flights', 'exp', 'main~1')
    const before = new Date()
    await new Promise((r) => setTimeout(r, 20))
    const moved = await resetBranch(pgdv, 'flights', 'exp', 'main')
    expect(moved.version_id).not.toBe(b.version_id)
    expect(await refAt(pgdv, 'flights', 'exp', before)).toBe(b.version_id)
    expect(await refAt(pgdv, 'flights', 'exp', new Date())).toBe(moved.version_id)
    await expect(refAt(pgdv, 'flights', 'exp', new Date('2000-01-01'))).rejects.toThrow(/did not exist/)
    const entries = await reflog(pgdv, 'flights', 'exp')
    expect(entries.map((e) => e.reason)).toEqual(['reset to main', 'branch from main~1'])
    expect(entries[0].moved_by).toBeTruthy()
    await deleteBranch(pgdv, 'flights', 'exp')
    expect((await listRefs(pgdv, 'flights', 'branch')).map((r) => r.ref)).toEqual(['main'])
    await expect(deleteBranch(pgdv, 'flights', 'main')).rejects.toThrow(/cannot be deleted/)
  })

  it('logs ancestors newest first with their refs', async () => {
    const entries = await log(pgdv, 'flights')
    expect(entries.map((e) => Number(e.depth))).toEqual([2, 1, 0])
    expect(entries[0].refs).toContain('main')
    expect(entries[2].message).toBe('dataset created')
    expect(await log(pgdv, 'flights', 'main', 1)).toHaveLength(1)
  })
})
