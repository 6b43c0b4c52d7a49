// Row versions from TypeScript: thin calls of the dv.* SQL functions of migration 003.
// commitObjects streams JS objects with COPY (pg-copy-streams, pipeline() with
// backpressure) into a staging table — dv.stage_first's for a dataset's first commit,
// else dv.stage's session TEMP table — and calls dv.commit, all in one transaction on one
// connection.

import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { PgdvError, toPgdvError } from '../lib/errors.js'
import type { Pgdv } from './client.js'

/** How staged rows change a branch; `apply` upserts, and rows with a true `_dv_delete` delete their key. */
export type CommitMode = 'replace' | 'append' | 'upsert' | 'delete' | 'apply'

export interface CommitResult {
  version_id: string
  parent_id: string | null
  branch: string
  created: boolean
  added: string
  removed: string
  modified: string
  row_count: string
  content_hash: string
}

export interface ColumnInfo {
  ordinal: number
  column_name: string
  data_type: string
  is_key: boolean
}

export interface CommitObjectsInput {
  dataset: string
  rows: AsyncIterable<Record<string, unknown>> | Iterable<Record<string, unknown>>
  /** Column definition list for the first commit, or columns to add: 'id bigint, label text'. */
  columns?: string
  mode?: CommitMode
  branch?: string
  message?: string
  tag?: string
  force?: boolean
  metadata?: Record<string, unknown>
}

export interface DiffRow {
  change: 'added' | 'removed' | 'modified'
  key: Record<string, unknown>
  old_hash: string | null
  new_hash: string | null
  old_values: Record<string, unknown> | null
  new_values: Record<string, unknown> | null
}

export interface DiffSummary {
  added: string
  removed: string
  modified: string
}

export interface SchemaChange {
  change: 'added' | 'removed' | 'retyped'
  column_name: string
  old_type: string | null
  new_type: string | null
}

export interface MergeRow {
  status: 'merged' | 'fast-forward' | 'up-to-date' | 'conflict'
  version_id: string | null
  key: Record<string, unknown> | null
  base: Record<string, unknown> | null
  ours: Record<string, unknown> | null
  theirs: Record<string, unknown> | null
}

export interface CheckpointResult {
  version_id: string
  table_name: string | null
  created: boolean
}

function escapeCopyText(s: string): string {
  return s.replace(/[\\\n\r\t]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'))
}

function arrayLiteral(v: unknown[]): string {
  const el = (x: unknown): string => {
    if (x === null || x === undefined) return 'NULL'
    if (Array.isArray(x)) return arrayLiteral(x)
    return `"${String(x instanceof Date ? x.toISOString() : x).replace(/["\\]/g, (c) => `\\${c}`)}"`
  }
  return `{${v.map(el).join(',')}}`
}

/** One value in COPY text format for a column of the given type. */
export function copyValue(v: unknown, type: string): string {
  if (v === null || v === undefined) return '\\N'
  let s: string
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) s = `\\x${Buffer.from(v).toString('hex')}`
  else if (v instanceof Date) s = v.toISOString()
  else if (typeof v === 'boolean') s = v ? 't' : 'f'
  else if (type === 'json' || type === 'jsonb') s = typeof v === 'string' ? v : JSON.stringify(v)
  else if (Array.isArray(v)) s = arrayLiteral(v)
  else if (typeof v === 'object') s = JSON.stringify(v)
  else s = String(v)
  return escapeCopyText(s)
}

async function stagingColumns(client: pg.PoolClient, staging: string): Promise<{ name: string; type: string }[]> {
  const res = await client.query<{ name: string; type: string }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
     WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [staging],
  )
  return res.rows
}

/** Whether a staging table name from dv.stage_first is a first load (a dv_rows table dv.commit takes over). */
export function isFirstLoad(staging: string): boolean {
  return staging.startsWith('dv_rows.')
}

/**
 * Commits objects as a new version: dv.stage_first (a dataset's first commit: a table
 * dv.commit takes over without copying; else dv.stage's), COPY of the rows (streamed, with
 * backpressure: the iterable is pulled only as fast as PostgreSQL takes the data), dv.commit,
 * in one transaction.
 * Keys of the objects are column names; missing ones are NULL, unknown ones an error.
 */
export async function commitObjects(pgdv: Pgdv, input: CommitObjectsInput): Promise<CommitResult> {
  return pgdv.db.tx(async (client) => {
    const staged = await client.query<{ stage: string }>('SELECT dv.stage_first(p_dataset => $1::text, p_columns => $2::text) AS stage', [input.dataset, input.columns ?? null])
    const staging = staged.rows[0].stage
    // A first load's table also has pgdv's _dv_gone and _dv_n, which COPY leaves to it.
    const firstLoad = isFirstLoad(staging)
    const cols = (await stagingColumns(client, staging)).filter((c) => !(firstLoad && (c.name === '_dv_gone' || c.name === '_dv_n')))
    const known = new Set(cols.map((c) => c.name))
    const colList = cols.map((c) => `"${c.name.replace(/"/g, '""')}"`).join(', ')
    let line = 0
    async function* lines(): AsyncGenerator<string> {
      let batch = ''
      for await (const row of input.rows as AsyncIterable<Record<string, unknown>>) {
        line++
        for (const k of Object.keys(row)) {
          if (!known.has(k)) {
            throw new PgdvError(`row ${line} for dataset "${input.dataset}" has field "${k}", which is not a column`, {
              hint: `The columns are ${[...known].join(', ')}; add new ones with columns: '${k} <type>'`,
            })
          }
        }
        batch += `${cols.map((c) => copyValue(row[c.name], c.type)).join('\t')}\n`
        if (batch.length >= 64 * 1024) {
          yield batch
          batch = ''
        }
      }
      if (batch) yield batch
    }
    try {
      await pipeline(Readable.from(lines()), client.query(copyFrom(`COPY ${staging} (${colList}) FROM STDIN${firstLoad ? ' WITH (FREEZE)' : ''}`)))
    } catch (e) {
      throw e instanceof PgdvError ? e : toPgdvError(e)
    }
    const res = await client.query<CommitResult>(
      `SELECT * FROM dv.commit(p_dataset => $1::text, p_staging => $2::regclass, p_mode => $3::text, p_branch => $4::text,
                               p_message => $5::text, p_tag => $6::text, p_force => $7::boolean, p_metadata => $8::jsonb)`,
      [input.dataset, staging, input.mode ?? 'replace', input.branch ?? 'main', input.message ?? null, input.tag ?? null,
        input.force ?? false, JSON.stringify(input.metadata ?? {})],
    )
    return res.rows[0]
  })
}

/** Streams the result of a query through a cursor, `batch` rows per round trip. */
async function* cursorRows<R>(pgdv: Pgdv, sql: string, params: unknown[], batch = 1000): AsyncGenerator<R> {
  const client = await pgdv.db.pool.connect()
  let ok = false
  try {
    await client.query('BEGIN')
    await client.query(`DECLARE pgdv_rows NO SCROLL CURSOR FOR ${sql}`, params)
    for (;;) {
      const res = await client.query(`FETCH ${batch} FROM pgdv_rows`)
      for (const r of res.rows) yield r as R
      if (res.rows.length < batch) break
    }
    await client.query('COMMIT')
    ok = true
  } catch (e) {
    throw toPgdvError(e)
  } finally {
    if (!ok) await client.query('ROLLBACK').catch(() => {})
    client.release()
  }
}

/** The rows of a version as objects (typed by node-postgres), streamed through a cursor. */
export async function* readRows(pgdv: Pgdv, input: { dataset: string; ref?: string; batch?: number }): AsyncGenerator<Record<string, unknown>> {
  const { sql } = await pgdv.db.one<{ sql: string }>('SELECT dv.rows_sql(p_dataset => $1::text, p_ref => $2::text) AS sql', [input.dataset, input.ref ?? 'main'])
  yield* cursorRows<Record<string, unknown>>(pgdv, sql, [], input.batch)
}

/** The SELECT that reads a version (for COPY (...) TO STDOUT). */
export async function rowsSql(pgdv: Pgdv, dataset: string, ref = 'main'): Promise<string> {
  const { sql } = await pgdv.db.one<{ sql: string }>('SELECT dv.rows_sql(p_dataset => $1::text, p_ref => $2::text) AS sql', [dataset, ref])
  return sql
}

/** Point lookup by key (keyless: the whole row); null when absent. */
export async function getRow(pgdv: Pgdv, dataset: string, ref: string, key: Record<string, unknown>): Promise<Record<string, unknown> | null> {
  const { row } = await pgdv.db.one<{ row: Record<string, unknown> | null }>(
    'SELECT dv.row(p_dataset => $1::text, p_ref => $2::text, p_key => $3::jsonb) AS row', [dataset, ref, JSON.stringify(key)])
  return row
}

/** Row changes between two refs, streamed (dv.diff). */
export async function* diff(pgdv: Pgdv, input: { dataset: string; from: string; to: string; values?: boolean }): AsyncGenerator<DiffRow> {
  yield* cursorRows<DiffRow>(pgdv, 'SELECT * FROM dv.diff(p_dataset => $1::text, p_from => $2::text, p_to => $3::text, p_values => $4::boolean)',
    [input.dataset, input.from, input.to, input.values ?? false])
}

export async function diffSummary(pgdv: Pgdv, input: { dataset: string; from: string; to: string }): Promise<DiffSummary> {
  return pgdv.db.one<DiffSummary>('SELECT * FROM dv.diff_summary(p_dataset => $1::text, p_from => $2::text, p_to => $3::text)', [input.dataset, input.from, input.to])
}

export async function diffSchema(pgdv: Pgdv, input: { dataset: string; from: string; to: string }): Promise<SchemaChange[]> {
  return pgdv.db.query<SchemaChange>('SELECT * FROM dv.diff_schema(p_dataset => $1::text, p_from => $2::text, p_to => $3::text)', [input.dataset, input.from, input.to])
}

/** Three-way merge; conflicts come back as rows with status 'conflict' and nothing is committed. */
export async function merge(pgdv: Pgdv, input: { dataset: string; from: string; into?: string; strategy?: 'ours' | 'theirs'; message?: string }): Promise<MergeRow[]> {
  return pgdv.db.query<MergeRow>(
    'SELECT * FROM dv.merge(p_dataset => $1::text, p_from => $2::text, p_into => $3::text, p_strategy => $4::text, p_message => $5::text)',
    [input.dataset, input.from, input.into ?? 'main', input.strategy ?? null, input.message ?? null],
  )
}

export async function mergeBase(pgdv: Pgdv, dataset: string, a: string, b: string): Promise<string | null> {
  const { id } = await pgdv.db.one<{ id: string | null }>('SELECT dv.merge_base(p_dataset => $1::text, p_a => $2::text, p_b => $3::text) AS id', [dataset, a, b])
  return id
}

export async function checkpoint(pgdv: Pgdv, dataset: string, ref = 'main'): Promise<CheckpointResult> {
  return pgdv.db.one<CheckpointResult>('SELECT * FROM dv.checkpoint(p_dataset => $1::text, p_ref => $2::text)', [dataset, ref])
}

export async function datasetColumns(pgdv: Pgdv, dataset: string, ref = 'main'): Promise<ColumnInfo[]> {
  return pgdv.db.query<ColumnInfo>('SELECT * FROM dv.dataset_columns(p_dataset => $1::text, p_ref => $2::text)', [dataset, ref])
}
