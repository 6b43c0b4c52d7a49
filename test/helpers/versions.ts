// Versions for tests: commit plain objects to a dataset through the real row engine
// (dv.stage + COPY + dv.commit), creating the dataset first when asked.

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
