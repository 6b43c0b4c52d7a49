// Loading files and queries into new versions, and writing versions back to files.
// Every load is: dv.stage (a session TEMP table) → COPY FROM STDIN (or INSERT ... SELECT)
// → dv.commit, on one dedicated connection, so the temp table lives exactly as long as
// the load and a failure anywhere leaves no version behind.

import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { Transform } from 'node:stream'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { PgdvError, toPgdvError } from '../lib/errors.js'
import type { ProgressUpdate } from '../lib/progress.js'
import { CopyEncoder, LineMap } from '../io/encode.js'
import { formatColumnDefs, inferColumns, isJsonType, parseColumnDefs, type ColumnDef } from '../io/infer.js'
import { runPipeline } from '../io/pipe.js'
import { abortOnBad, type BadRecord, csvCopyOptions, csvRawStages, type CsvOptions, formatOf, type InputFormat, mapReadError, readSample, recordStages, stripBom } from '../io/readers.js'
import { type OutputFormat, outputFormatOf, writeCsv, writeJsonl, writeParquet } from '../io/writers.js'
import type { Pgdv } from './client.js'
import { showDataset } from './datasets.js'
import { checkoutFiles } from './files.js'
import { type CommitMode, type CommitResult, isFirstLoad } from './rows.js'


export interface CommitOptions {
  dataset: string
  mode?: CommitMode
  branch?: string
  message?: string
  tag?: string
  /** Create a version even when nothing changed. */
  force?: boolean
  /** Column definitions ('id bigint, label text') for a dataset without a schema, or new columns. */
  columns?: string
  metadata?: Record<string, unknown>
}

export interface CommitFileInput extends CommitOptions {
  file: string
  format?: InputFormat
  csv?: CsvOptions
  /** Set malformed records aside in this file (JSON lines: line, reason, raw) instead of aborting. */
  rejectFile?: string
  onProgress?: (p: ProgressUpdate) => void
  /** Called when the rows are staged and the server starts committing them. */
  onCommitting?: (rows: number) => void
}

export interface CommitQueryInput extends CommitOptions {
  /** A SELECT run in the same database; its columns become the dataset's. */
  query?: string
  /** Or a table or view name (schema-qualified if needed). */
  table?: string
}

/** dv.commit's row, with the dataset and what the loader sent and set aside. */
export interface LoadResult extends Omit<CommitResult, 'content_hash'> {
  dataset: string
  content_hash: string | null
  /** Rows sent to the staging table. */
  loaded: number
  /** Malformed records set aside (with rejectFile). */
  rejected: number
  reject_file: string | null
  /** Columns this commit added to the dataset's schema. */
  new_columns: ColumnDef[]
  source: string
}

interface ColumnInfo {
  name: string
  type: string
}

const SAMPLE_ROWS = 1000

async function datasetColumns(q: pg.ClientBase, dataset: string, ref: string): Promise<ColumnInfo[]> {
  try {
    const { rows } = await q.query<{ column_name: string; data_type: string }>(
      'SELECT column_name, data_type FROM dv.dataset_columns(p_dataset => $1::text, p_ref => $2::text) ORDER BY ordinal',
      [dataset, ref],
    )
    return rows.map((r) => ({ name: r.column_name, type: r.data_type }))
  } catch (e) {
    // A branch that does not exist yet, or a dataset with no version: no schema to extend.
    if ((e as { code?: string }).code === '42704' || (e as { code?: string }).code === 'P0002') return []
    throw e
  }
}

async function relationColumns(q: pg.ClientBase, relation: string): Promise<ColumnInfo[]> {
  const { rows } = await q.query<ColumnInfo>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [relation],
  )
  return rows
}

/** New columns for dv.stage: all of them for a dataset without a schema, else those it lacks. */
/** The staging column that marks a row of a mode-apply commit as a deletion of its key. */
export const DELETE_COLUMN = '_dv_delete'

export function planColumns(input: ColumnInfo[] | string[], existing: ColumnInfo[], declared: ColumnDef[], infer: (names: string[]) => ColumnDef[]): ColumnDef[] {
  const names = input.map((c) => (typeof c === 'string' ? c : c.name))
  const known = new Set(existing.map((c) => c.name))
  const missing = names.filter((n) => !known.has(n))
  const byName = new Map(declared.map((d) => [d.name, d]))
  const typed = new Map(input.filter((c): c is ColumnInfo => typeof c !== 'string').map((c) => [c.name, c.type]))
  const toInfer = missing.filter((n) => !byName.has(n) && !typed.has(n))
  // _dv_delete (mode apply) is not data: it marks deletions and is always boolean.
  if (toInfer.includes(DELETE_COLUMN)) byName.set(DELETE_COLUMN, { name: DELETE_COLUMN, type: 'boolean' })
  const inferred = new Map(infer(toInfer.filter((n) => n !== DELETE_COLUMN)).map((d) => [d.name, d]))
  return missing.map((n) => byName.get(n) ?? (typed.has(n) ? { name: n, type: typed.get(n)! } : inferred.get(n)!))
}

function checkDuplicates(names: string[], what: string): void {
  const seen = new Set<string>()
  for (const n of names) {
    if (seen.has(n)) throw new PgdvError(`${what} has the column "${n}" twice`, { hint: 'Rename one of them' })
    seen.add(n)
  }
}

/** Names starting with _dv_ are pgdv's; of them a load may carry only _dv_delete (mode apply). */
function checkReserved(names: string[], what: string): void {
  const bad = names.filter((n) => n.startsWith('_dv_') && n !== DELETE_COLUMN)
  if (bad.length > 0) {
    throw new PgdvError(`${what} has the column ${bad.map((n) => `"${n}"`).join(', ')}, but names starting with _dv_ are reserved by pgdv; nothing was committed`, {
      hint: 'Rename the column (only _dv_delete, for --mode apply, is read)',
    })
  }
}

function checkKeys(dataset: string, keys: string[] | null, names: string[], what: string): void {
  const missing = (keys ?? []).filter((k) => !names.includes(k))
  if (missing.length > 0) {
    throw new PgdvError(`${what} has no key column ${missing.map((k) => `"${k}"`).join(', ')} of dataset "${dataset}"; nothing was committed`, {
      hint: `Every row needs the key (${(keys ?? []).join(', ')})`,
    })
  }
}

/**
 * The staging table: dv.stage_first, which for a dataset's first commit gives a table in
 * dv_rows that dv.commit takes over as the version's table (no copy), else dv.stage's
 * session TEMP table. Either way it was created in the load's transaction.
 */
async function stage(client: pg.ClientBase, dataset: string, defs: ColumnDef[]): Promise<string> {
  const { rows } = await client.query<{ name: string }>('SELECT dv.stage_first(p_dataset => $1::text, p_columns => $2::text) AS name', [
    dataset,
    defs.length > 0 ? formatColumnDefs(defs) : null,
  ])
  return rows[0].name
}

async function commitStaging(client: pg.ClientBase, staging: string, o: CommitOptions, metadata: Record<string, unknown>): Promise<CommitResult> {
  const { rows } = await client.query<CommitResult>(
    `SELECT * FROM dv.commit(p_dataset => $1::text, p_staging => $2::regclass, p_mode => $3::text, p_branch => $4::text,
                             p_message => $5::text, p_tag => $6::text, p_force => $7::boolean, p_metadata => $8::jsonb)`,
    [o.dataset, staging, o.mode ?? 'replace', o.branch ?? 'main', o.message ?? null, o.tag ?? null, o.force ?? false, JSON.stringify({ ...metadata, ...o.metadata })],
  )
  return rows[0]
}

/**
 * One connection and one transaction for a whole load: the staging table, the COPY and
 * dv.commit, so a failure anywhere leaves nothing (a first load's staging table is a
 * permanent table until dv.commit takes it over).
 */
async function withLoadClient<T>(pgdv: Pgdv, fn: (client: pg.PoolClient, cleanup: string[]) => Promise<T>): Promise<T> {
  const client = await pgdv.db.pool.connect()
  const cleanup: string[] = []
  let broken = false
  try {
    await client.query('BEGIN')
    const result = await fn(client, cleanup)
    await client.query('COMMIT')
    return result
  } catch (e) {
    broken = true
    await client.query('ROLLBACK').catch(() => {})
    throw e
  } finally {
    for (const sql of cleanup.reverse()) await client.query(sql).catch(() => {})
    // A connection whose COPY failed mid-stream is not worth reusing.
    client.release(broken)
  }
}

async function datasetForLoad(pgdv: Pgdv, dataset: string) {
  const ds = await showDataset(pgdv, dataset)
  if (ds.kind === 'files') {
    throw new PgdvError(`"${dataset}" is a files dataset; rows cannot be committed to it from a table file`, { hint: 'Use `pgdv add` to add files' })
  }
  return ds
}

/** A COPY error ("COPY x, line 3, column score: ...") as the user's file, line and column. */
export async function mapCopyError(
  e: unknown,
  file: string,
  lineOf: (copyLine: number) => number | undefined | Promise<number | undefined>,
  types: Map<string, string>,
): Promise<unknown> {
  const err = e as { where?: string; message?: string; code?: string; hint?: string; column?: string }
  if (!err?.where || !/^COPY /.test(err.where)) return e
  const m = /line (\d+)(?:, column ([^:]+))?/.exec(err.where)
  if (!m) return e
  const found = await lineOf(Number(m[1]))
  const where = found === undefined ? `record ${Number(m[1])}` : `line ${found}`
  if (err.code === '23502' && err.column) {
    // A first load's table has the key NOT NULL (its name is pgdv's, not the user's).
    return new PgdvError(`${file} ${where}: the key column ${err.column} is empty; nothing was committed`, {
      kind: 'usage',
      sqlstate: err.code,
      hint: `Every row needs its key (${err.column})`,
      cause: e,
    })
  }
  const col = m[2]
  const type = col ? types.get(col) : undefined
  return new PgdvError(`${file} ${where}${col ? `, column ${col}` : ''}: ${err.message}; nothing was committed`, {
    kind: 'usage',
    sqlstate: err.code,
    hint: col
      ? `The column is ${type ?? 'typed'}: fix the value, or declare another type with --columns '${col} text' when the dataset has no schema yet`
      : 'Fix that line, or pass --reject-file FILE to set bad rows aside',
    cause: e,
  })
}

/**
 * PostgreSQL 17+ can skip rows whose values do not fit a column (COPY ... ON_ERROR ignore)
 * and name each one in a NOTICE; with --reject-file those rows are set aside too.
 * Returns the COPY options to add and a function that stops listening.
 */
function skipTypeErrors(
  client: pg.ClientBase,
  serverVersion: string,
  lineOf: (copyLine: number) => number | undefined,
  types: Map<string, string>,
  onBad: (b: BadRecord) => void,
): { options: string[]; done: () => void } {
  if (Number.parseInt(serverVersion, 10) < 17) return { options: [], done: () => {} }
  const listener = (n: { message?: string }) => {
    const m = /^skipping row due to data type incompatibility at line (\d+) for column "(.*)": (.*)$/s.exec(n.message ?? '')
    if (!m) return
    const line = lineOf(Number(m[1])) ?? Number(m[1])
    onBad({ line, reason: `column ${m[2]}: ${m[3] === 'null input' ? 'NULL' : `value ${m[3]}`} does not fit type ${types.get(m[2]) ?? 'of the column'}` })
  }
  client.on('notice', listener)
  return { options: ['ON_ERROR ignore', 'LOG_VERBOSITY verbose'], done: () => void client.removeListener('notice', listener) }
}

/**
 * COPY ... (FREEZE) for a first load: its table was created in this transaction, so the
 * rows can be written frozen and later reads set no hint bits on them.
 */
function freeze(staging: string): string[] {
  return isFirstLoad(staging) ? ['FREEZE'] : []
}

/** Loads a CSV, JSONL or Parquet file into a new version of a table dataset. */
export async function commitFile(pgdv: Pgdv, input: CommitFileInput): Promise<LoadResult> {
  const file = input.file
  const format = input.format ?? formatOf(file)
  let size: number
  try {
    const st = await fsp.stat(file)
    if (st.isDirectory()) throw Object.assign(new Error(file), { code: 'EISDIR' })
    size = st.size
  } catch (e) {
    throw mapReadError(file, e)
  }
  const ds = await datasetForLoad(pgdv, input.dataset)
  const declared = input.columns ? parseColumnDefs(input.columns) : []
  const tolerant = input.rejectFile !== undefined

  // 1. A sample for the header / field list and type inference (a second, short read).
  const sample = await readSample(file, format, { csv: input.csv, onBad: tolerant ? () => {} : abortOnBad(file), tolerant }, SAMPLE_ROWS)
  let columns = sample.columns
  if (format === 'csv' && input.csv?.header === false && declared.length > 0) {
    if (declared.length !== columns.length) {
      throw new PgdvError(`${file} has ${columns.length} fields per line but --columns declares ${declared.length}`, { hint: 'Declare one column per field' })
    }
    columns = declared.map((d) => d.name)
  }
  // dv.stage shapes the staging table like the head of main.
  const existing = await pgdv.db.withClient((client) => datasetColumns(client, input.dataset, 'main'))
  if (format === 'jsonl') {
    // Fields first seen after the sample are fine when the dataset or --columns knows them.
    columns = [...new Set([...columns, ...declared.map((d) => d.name), ...existing.map((c) => c.name)])]
  }
  if (columns.length === 0) {
    throw new PgdvError(`${file} has no columns (empty file?)`, { hint: format === 'csv' ? 'A CSV needs a header line' : 'Give a file with at least one row' })
  }
  checkDuplicates(columns, file)
  checkReserved(columns, file)
  checkKeys(input.dataset, ds.key_columns, columns, file)

  return withLoadClient(pgdv, async (client, cleanup) => {
    const renamed = sample.rows.map((r) => Object.fromEntries(columns.map((c, i) => [c, r[sample.columns[i]]])))
    const defs = planColumns(columns, existing, declared, (names) => inferColumns(names, renamed, format === 'csv'))

    const staging = await stage(client, input.dataset, defs)
    cleanup.push(`DROP TABLE IF EXISTS ${staging}`)
    const stagingCols = await relationColumns(client, staging)
    const types = new Map(stagingCols.map((c) => [c.name, c.type]))
    const absent = columns.filter((c) => !types.has(c))
    if (absent.length > 0) throw new PgdvError(`internal: the staging table lacks ${absent.join(', ')}`, { kind: 'internal' })

    // 2. Stream: file → parser → records → COPY text → staging table.
    let rejected = 0
    let reject: fs.WriteStream | undefined
    let rejectError: Error | undefined
    if (input.rejectFile) {
      // Created up front so a bad path fails here, before any row moves.
      await fsp.writeFile(input.rejectFile, '').catch((e: NodeJS.ErrnoException) => {
        throw new PgdvError(`--reject-file ${input.rejectFile}: ${e.code === 'ENOENT' ? 'its folder does not exist' : e.message}`, { kind: 'io', hint: 'Give a writable path', cause: e })
      })
      reject = fs.createWriteStream(input.rejectFile)
      reject.on('error', (e) => (rejectError = e))
    }
    const onBad = tolerant
      ? (b: BadRecord) => {
          rejected++
          reject!.write(`${JSON.stringify({ line: b.line, reason: b.reason, raw: b.raw ?? null })}\n`)
        }
      : abortOnBad(file)
    let bytes = 0
    let rows = 0
    const report = () => input.onProgress?.({ rows, bytes })
    const columnList = columns.map((c) => pg.escapeIdentifier(c)).join(', ')
    if (format === 'csv') {
      // PostgreSQL parses the CSV itself (COPY FORMAT csv): several times faster than
      // csv-parse with casts, and NULL/quoting semantics are exactly COPY's. Without
      // --reject-file the file goes through untouched and PostgreSQL's "line N" (physical
      // lines, the header and quoted newlines included) is the file's own line number.
      // With it, csv-parse sets malformed records aside and forwards the good ones' text.
      const o = input.csv ?? {}
      const lineMap = new LineMap()
      const skip = tolerant ? skipTypeErrors(client, pgdv.db.serverVersion, (n) => lineMap.inputLine(n), types, onBad) : undefined
      const copyOpts = [csvCopyOptions(tolerant ? { ...o, header: false } : o, (x) => client.escapeLiteral(x)), ...(skip?.options ?? []), ...freeze(staging)].join(', ')
      const copy = client.query(copyFrom(`COPY ${staging} (${columnList}) FROM STDIN WITH (${copyOpts})`))
      const onBytes = (n: number) => {
        bytes += n
        report()
      }
      let stages: unknown[]
      if (tolerant) {
        stages = csvRawStages(file, o, onBad, (sent, line) => {
          rows++
          lineMap.record(sent - 1, line)
        }, onBytes)
      } else {
        const counter = new Transform({
          transform(chunk: Buffer, _e, cb) {
            // Rows for the progress bar: newlines seen (quoted newlines make it an estimate).
            for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) rows++
            onBytes(chunk.length)
            cb(null, chunk)
          },
        })
        stages = [fs.createReadStream(file), counter, stripBom()]
      }
      try {
        await runPipeline([...stages, copy])
      } catch (e) {
        throw await mapCopyError(mapReadError(file, e), file, (n) => (tolerant ? lineMap.inputLine(n) : n), types)
      } finally {
        skip?.done()
        if (reject) await new Promise<void>((resolve) => reject!.end(resolve))
      }
      rows = copy.rowCount
    } else {
      // JSONL and Parquet: parsed here, encoded as COPY text.
      const rs = recordStages(file, format, { onBad, tolerant, onBytes: (n) => ((bytes += n), report()) }, columns)
      const lineMap = new LineMap()
      const encoder = new CopyEncoder({
        sourceIndex: columns.map((_c, i) => i),
        json: columns.map((c) => isJsonType(types.get(c)!)),
        text: false,
        lineMap,
        onRow: () => {
          rows++
        },
      })
      const skip = tolerant ? skipTypeErrors(client, pgdv.db.serverVersion, (n) => lineMap.inputLine(n), types, onBad) : undefined
      const opts = [...(skip?.options ?? []), ...freeze(staging)]
      const withOpts = opts.length ? ` WITH (${opts.join(', ')})` : ''
      const copy = client.query(copyFrom(`COPY ${staging} (${columnList}) FROM STDIN${withOpts}`))
      try {
        await runPipeline([...rs.stages, encoder, copy])
      } catch (e) {
        throw await mapCopyError(mapReadError(file, e), file, (n) => lineMap.inputLine(n), types)
      } finally {
        skip?.done()
        if (reject) await new Promise<void>((resolve) => reject!.end(resolve))
      }
      rows = copy.rowCount
    }
    report()
    if (rejectError) throw new PgdvError(`--reject-file ${input.rejectFile}: ${rejectError.message}; nothing was committed`, { kind: 'io', cause: rejectError })
    if (rows === 0 && rejected > 0) {
      throw new PgdvError(`every record of ${file} was rejected (${rejected}, see ${input.rejectFile}); nothing was committed`, { hint: 'Check the format options (--delimiter, --quote)' })
    }

    // 3. One transaction turns the staging table into a version.
    input.onCommitting?.(rows)
    const v = await commitStaging(client, staging, input, { source: { file: path.basename(file), format, rows, rejected, bytes: size } })
    return {
      dataset: input.dataset,
      ...v,
      loaded: rows,
      rejected,
      reject_file: input.rejectFile ?? null,
      new_columns: existing.length > 0 ? defs : [],
      source: file,
    }
  })
}

/** Commits the result of a query (or a table) in the same database, server-side: INSERT ... SELECT. */
export async function commitQuery(pgdv: Pgdv, input: CommitQueryInput): Promise<LoadResult> {
  if (!input.query === !input.table) throw new PgdvError('give either a query or a table', { hint: 'Use --from-query SQL or --from-table NAME' })
  const ds = await datasetForLoad(pgdv, input.dataset)
  const declared = input.columns ? parseColumnDefs(input.columns) : []
  return withLoadClient(pgdv, async (client, cleanup) => {
    let sql: string
    let what: string
    if (input.table) {
      try {
        const { rows } = await client.query<{ name: string }>('SELECT $1::regclass::text AS name', [input.table])
        sql = `SELECT * FROM ${rows[0].name}`
        what = `table ${rows[0].name}`
      } catch (e) {
        throw new PgdvError(`--from-table: ${(e as Error).message}`, { kind: 'not_found', hint: 'Give an existing table or view, schema-qualified if needed', cause: e })
      }
    } else {
      sql = input.query!.trim().replace(/;\s*$/, '')
      what = 'the query'
    }
    // A temp view gives the query's column names and exact types without running it.
    const view = `pg_temp.${pg.escapeIdentifier(`pgdv_src_${process.pid}_${Date.now().toString(36)}`)}`
    try {
      await client.query(`CREATE TEMP VIEW ${view} AS ${sql}`)
    } catch (e) {
      const err = toPgdvError(e)
      throw new PgdvError(`--from-query: ${err.message}`, { hint: err.hint ?? 'Check the SQL; it must be one SELECT', sqlstate: err.sqlstate, cause: e })
    }
    cleanup.push(`DROP VIEW IF EXISTS ${view}`)
    const source = await relationColumns(client, view)
    const names = source.map((c) => c.name)
    checkDuplicates(names, what)
    checkReserved(names, what)
    checkKeys(input.dataset, ds.key_columns, names, what)
    const existing = await datasetColumns(client, input.dataset, 'main')
    const defs = planColumns(source, existing, declared, () => [])
    const staging = await stage(client, input.dataset, defs)
    cleanup.push(`DROP TABLE IF EXISTS ${staging}`)
    const list = names.map((c) => pg.escapeIdentifier(c)).join(', ')
    let loaded: number
    try {
      const res = await client.query(`INSERT INTO ${staging} (${list}) SELECT ${list} FROM ${view}`)
      loaded = res.rowCount ?? 0
    } catch (e) {
      const err = toPgdvError(e)
      throw new PgdvError(`${what}: ${err.message}; nothing was committed`, { hint: err.hint, sqlstate: err.sqlstate, kind: err.kind, cause: e })
    }
    const v = await commitStaging(client, staging, input, { source: { query: input.query ?? null, table: input.table ?? null, rows: loaded } })
    return {
      dataset: input.dataset,
      ...v,
      loaded,
      rejected: 0,
      reject_file: null,
      new_columns: existing.length > 0 ? defs : [],
      source: input.table ? `table ${input.table}` : 'query',
    }
  })
}

// ---- checkout -----------------------------------------------------------------------

export interface CheckoutTableInput {
  dataset: string
  ref?: string
  out: string
  format?: OutputFormat
  /** Overwrite an existing file. */
  force?: boolean
  onProgress?: (p: ProgressUpdate) => void
  /** Files datasets: let checkoutFiles draw its own progress bar (on a TTY). */
  progress?: boolean
  /** Called with the version's row count before writing starts (progress total). */
  onStart?: (rows: number) => void
}

export interface CheckoutResult {
  dataset: string
  ref: string
  version_id: string
  out: string
  format: OutputFormat | 'files'
  rows: number
  bytes: number
}

async function exists(p: string): Promise<boolean> {
  return fsp.access(p).then(
    () => true,
    () => false,
  )
}

/** Writes one version of a table dataset to a CSV, JSONL or Parquet file, streamed with COPY TO. */
export async function checkoutTable(pgdv: Pgdv, input: CheckoutTableInput): Promise<CheckoutResult> {
  const ref = input.ref ?? 'main'
  const ds = await showDataset(pgdv, input.dataset)
  if (ds.kind === 'files') {
    // A files dataset is written to a folder by the files part (chunks verified).
    const r = await checkoutFiles(pgdv, { dataset: input.dataset, ref, out: input.out, force: input.force, progress: input.progress })
    return { dataset: input.dataset, ref, version_id: r.version_id, out: input.out, format: 'files', rows: r.files, bytes: r.bytes }
  }
  const format = input.format ?? outputFormatOf(input.out)
  if (!input.force && (await exists(input.out))) {
    throw new PgdvError(`${input.out} already exists`, { kind: 'conflict', hint: 'Pass --force to overwrite it, or choose another --out' })
  }
  const dir = path.dirname(path.resolve(input.out))
  if (!(await exists(dir))) throw new PgdvError(`the folder ${dir} does not exist`, { kind: 'not_found', hint: 'Create it first' })
  const tmp = path.join(dir, `.${path.basename(input.out)}.pgdv-${process.pid}-${Date.now().toString(36)}`)

  return withLoadClient(pgdv, async (client) => {
    await client.query("SET TimeZone TO 'UTC'")
    const { rows: vr } = await client.query<{ id: string }>('SELECT dv.resolve_ref(p_dataset => $1::text, p_ref => $2::text) AS id', [input.dataset, ref])
    const versionId = vr[0].id
    const { rows: rc } = await client.query<{ row_count: string }>('SELECT row_count FROM dv.versions WHERE id = $1::bigint', [versionId])
    input.onStart?.(Number(rc[0]?.row_count ?? 0))
    const { rows: sr } = await client.query<{ sql: string }>('SELECT dv.rows_sql(p_dataset => $1::text, p_ref => $2::text) AS sql', [input.dataset, versionId])
    const select = sr[0].sql
    const columns = await datasetColumns(client, input.dataset, versionId)
    let rows = 0
    try {
      if (format === 'csv') rows = await writeCsv(client, select, tmp, input.onProgress)
      else if (format === 'jsonl') rows = await writeJsonl(client, select, tmp, input.onProgress)
      else rows = await writeParquet(client, select, columns, tmp, input.onProgress)
      // Checked again: another process may have created the file meanwhile.
      if (!input.force && (await exists(input.out))) {
        throw new PgdvError(`${input.out} already exists`, { kind: 'conflict', hint: 'Pass --force to overwrite it, or choose another --out' })
      }
      await fsp.rename(tmp, input.out)
    } catch (e) {
      await fsp.rm(tmp, { force: true })
      throw e
    }
    const { size } = await fsp.stat(input.out)
    return { dataset: input.dataset, ref, version_id: versionId, out: input.out, format, rows, bytes: size }
  })
}
