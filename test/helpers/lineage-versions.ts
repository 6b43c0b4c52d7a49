// Until the row engine's dv.commit is merged, lineage tests make committed versions
// directly as the table owner (as test/refs.test.ts does), with a content hash.

import { createHash } from 'node:crypto'
import type pg from 'pg'

/** A committed version on top of the branch head (moves the branch); returns its id. */
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
