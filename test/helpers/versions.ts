// Versions for tests: commit plain objects through the real row engine (dv.stage + COPY +
// dv.commit), or — for lineage tests that only need committed catalog rows — make a
// committed version directly as the table owner (as test/refs.test.ts does).

import { createHash } from 'node:crypto'
import type pg from 'pg'
import type { Pgdv } from '../../src/api/client.js'
import { createDataset } from '../../src/api/datasets.js'
import { commitObjects, type CommitMode, type CommitResult } from '../../src/api/rows.js'

export interface CommitRowsOptions {
  /** Column definition list, needed for a dataset's first commit ('id int, label text'). */
  columns?: string
  mode?: CommitMode
  branch?: string
  message?: string
  tag?: string
  force?: boolean
  /** Create the dataset (keyed by these columns, [] = keyless) if it does not exist. */
  create?: { key?: string[]; kind?: 'table' | 'files' }
}

export async function commitRows(pgdv: Pgdv, dataset: string, rows: Record<string, unknown>[], opts: CommitRowsOptions = {}): Promise<CommitResult> {
  if (opts.create) {
    const exists = await pgdv.db.query('SELECT 1 FROM dv.datasets WHERE name = $1', [dataset])
    if (exists.length === 0) {
      await createDataset(pgdv, { name: dataset, kind: opts.create.kind, keyColumns: opts.create.key && opts.create.key.length > 0 ? opts.create.key : undefined })
    }
  }
  return commitObjects(pgdv, { dataset, rows, columns: opts.columns, mode: opts.mode, branch: opts.branch, message: opts.message, tag: opts.tag, force: opts.force })
}

/** A committed version with no rows on top of the branch head (moves the branch); returns its id. */
export async function fakeCommit(c: pg.Pool, dataset: string, opts: { branch?: string; message?: string; mergeParent?: string } = {}): Promise<string> {
  const branch = opts.branch ?? 'main'
  const hash = createHash('sha256').update(`${dataset}:${branch}:${Math.random()}`).digest('hex')
  const { rows } = await c.query<{ id: string }>(
    `WITH d AS (SELECT id FROM dv.datasets WHERE name = $1),
          head AS (SELECT r.version_id, v.depth FROM dv.refs r JOIN dv.versions v ON v.id = r.version_id, d WHERE r.dataset_id = d.id AND r.name = $2),
          nv AS (INSERT INTO dv.versions (dataset_id, parent_id, depth, status, message, content_hash, committed_at)
                 SELECT d.id, head.version_id, head.depth + 1, 'committed', $3, $4, clock_timestamp() FROM d, head RETURNING id, parent_id),
          vp AS (INSERT INTO dv.version_parents (version_id, parent_id, ordinal) SELECT id, parent_id, 1 FROM nv)
     SELECT id FROM nv`,
    [dataset, branch, opts.message ?? 'change', hash],
  )
  const id = rows[0].id
  if (opts.mergeParent) await c.query('INSERT INTO dv.version_parents (version_id, parent_id, ordinal) VALUES ($1, $2, 2)', [id, opts.mergeParent])
  await c.query('UPDATE dv.refs SET version_id = $3 WHERE dataset_id = (SELECT id FROM dv.datasets WHERE name = $1) AND name = $2', [dataset, branch, id])
  return id
}
