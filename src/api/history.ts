// Reading history for the CLI: one version in detail, a diff report (counts, schema and
// rows), merges with their conflicts — built on the wrappers in ./rows.ts (dv.diff,
// dv.diff_summary, dv.diff_schema, dv.merge) in the shapes the commands print.

import { Writable } from 'node:stream'
import { to as copyTo } from 'pg-copy-streams'
import { runPipeline } from '../io/pipe.js'
import type { Pgdv } from './client.js'
import type { LogEntry } from './refs.js'
import { datasetColumns, diff, diffSchema, diffSummary as diffCounts, merge, type SchemaChange } from './rows.js'

export type { SchemaChange }

export interface DiffCounts {
  added: number
  removed: number
  modified: number
}

export interface RowChange {
  change: 'added' | 'removed' | 'modified'
  key: unknown
  old_hash: string | null
  new_hash: string | null
  old_values?: Record<string, unknown> | null
  new_values?: Record<string, unknown> | null
}

export interface DiffReport extends DiffCounts {
  dataset: string
  from: string
  to: string
  from_version: string
  to_version: string
  schema: SchemaChange[]
}

/** Counts (as numbers) and schema changes between two refs, with the versions they resolve to. */
export async function diffReport(pgdv: Pgdv, dataset: string, from: string, to: string): Promise<DiffReport> {
  const ids = await pgdv.db.one<{ a: string; b: string }>(
    'SELECT dv.resolve_ref(p_dataset => $1::text, p_ref => $2::text) AS a, dv.resolve_ref(p_dataset => $1::text, p_ref => $3::text) AS b',
    [dataset, from, to],
  )
  const counts = await diffCounts(pgdv, { dataset, from, to })
  const schema = await diffSchema(pgdv, { dataset, from, to })
  return {
    dataset,
    from,
    to,
    from_version: ids.a,
    to_version: ids.b,
    added: Number(counts.added),
    removed: Number(counts.removed),
    modified: Number(counts.modified),
    schema,
  }
}

/** The first `limit` changed rows (a cursor: only those are fetched). */
export async function diffRows(pgdv: Pgdv, dataset: string, from: string, to: string, opts: { values?: boolean; limit?: number } = {}): Promise<RowChange[]> {
  const out: RowChange[] = []
  const limit = opts.limit ?? Infinity
  if (limit <= 0) return out
  for await (const r of diff(pgdv, { dataset, from, to, values: opts.values })) {
    const row: RowChange = { change: r.change, key: r.key, old_hash: r.old_hash, new_hash: r.new_hash }
    if (opts.values) Object.assign(row, { old_values: r.old_values, new_values: r.new_values })
    out.push(row)
    if (out.length >= limit) break
  }
  return out
}

/**
 * Streams a diff to a writable (stdout) with COPY, as CSV or JSON lines, never holding
 * the whole diff in memory.
 */
export async function streamDiff(
  pgdv: Pgdv,
  dataset: string,
  from: string,
  to: string,
  opts: { values?: boolean; format: 'csv' | 'jsonl' },
  write: (chunk: Buffer) => boolean | void,
  onDrain: (cb: () => void) => void,
): Promise<void> {
  const cols = opts.values ? 'change, key, old_hash, new_hash, old_values, new_values' : 'change, key, old_hash, new_hash'
  const select = `SELECT ${cols} FROM dv.diff(p_dataset => %L, p_from => %L, p_to => %L, p_values => ${opts.values ? 'true' : 'false'})`
  const template =
    opts.format === 'csv'
      ? `COPY (${select}) TO STDOUT WITH (FORMAT csv, HEADER true)`
      : `COPY (SELECT row_to_json(d) FROM (${select}) d) TO STDOUT WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')`
  // Unknown refs fail here with dv.resolve_ref's own message, before any output.
  await pgdv.db.query('SELECT dv.resolve_ref(p_dataset => $1::text, p_ref => $2::text), dv.resolve_ref(p_dataset => $1::text, p_ref => $3::text)', [dataset, from, to])
  const { sql } = await pgdv.db.one<{ sql: string }>('SELECT format($1::text, $2::text, $3::text, $4::text) AS sql', [template, dataset, from, to])
  await pgdv.db.withClient(async (client) => {
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        if (write(chunk) === false) onDrain(() => cb())
        else cb()
      },
    })
    await runPipeline([client.query(copyTo(sql)), sink])
  })
}

export interface MergeConflict {
  key: unknown
  base: Record<string, unknown> | null
  ours: Record<string, unknown> | null
  theirs: Record<string, unknown> | null
}

export interface MergeResult {
  dataset: string
  from: string
  into: string
  status: 'merged' | 'fast-forward' | 'up-to-date' | 'conflict'
  version_id: string | null
  conflicts: MergeConflict[]
}

export async function mergeRefs(pgdv: Pgdv, input: { dataset: string; from: string; into?: string; strategy?: 'ours' | 'theirs'; message?: string }): Promise<MergeResult> {
  const into = input.into ?? 'main'
  const rows = await merge(pgdv, { ...input, into })
  const conflicts = rows.filter((r) => r.status === 'conflict').map((r) => ({ key: r.key, base: r.base, ours: r.ours, theirs: r.theirs }))
  return {
    dataset: input.dataset,
    from: input.from,
    into,
    status: conflicts.length > 0 ? 'conflict' : rows[0].status,
    version_id: conflicts.length > 0 ? null : rows[0].version_id,
    conflicts,
  }
}

export interface VersionDetail extends LogEntry {
  dataset: string
  ref: string
  metadata: Record<string, unknown>
  columns: { column_name: string; data_type: string; is_key: boolean }[]
  /** Changes against the first parent (none for the root). */
  changes: DiffCounts | null
}

export async function showVersion(pgdv: Pgdv, dataset: string, ref: string): Promise<VersionDetail> {
  const entry = await pgdv.db.one<LogEntry>('SELECT * FROM dv.log(p_dataset => $1::text, p_ref => $2::text, p_limit => 1)', [dataset, ref])
  const meta = await pgdv.db.one<{ metadata: Record<string, unknown> }>('SELECT metadata FROM dv.versions WHERE id = $1::bigint', [entry.version_id])
  const columns = await pgdv.db.query<{ column_name: string; data_type: string; is_key: boolean }>(
    'SELECT column_name, data_type, is_key FROM dv.dataset_columns(p_dataset => $1::text, p_ref => $2::text) ORDER BY ordinal',
    [dataset, entry.version_id],
  )
  let changes: DiffCounts | null = null
  if (entry.parent_ids.length > 0) {
    const parent = String(entry.parent_ids[0])
    if ((await datasetColumns(pgdv, dataset, parent)).length === 0) {
      // The parent is the empty root made by dataset create: every row is new.
      changes = { added: Number(entry.row_count), removed: 0, modified: 0 }
    } else {
      const c = await diffCounts(pgdv, { dataset, from: parent, to: entry.version_id })
      changes = { added: Number(c.added), removed: Number(c.removed), modified: Number(c.modified) }
    }
  }
  return { dataset, ref, ...entry, metadata: meta.metadata, columns, changes }
}
