// Streaming readers: a file becomes records { line, values[] } aligned with a column
// list, one pipeline stage at a time, so memory stays bounded whatever the file size.
// Bad records go to onBad (which throws to abort, or sets them aside for --reject-file).

import fs from 'node:fs'
import path from 'node:path'
import { pipeline as streamPipeline, Readable, Transform, type TransformCallback } from 'node:stream'
import { parse as csvParse, type CsvError } from 'csv-parse'
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet'
import { PgdvError } from '../lib/errors.js'
import { LineSplitter } from './copytext.js'
import type { Stage } from './pipe.js'

export type InputFormat = 'csv' | 'jsonl' | 'parquet'

export interface InputRecord {
  /** 1-based line (CSV: the line the record ends on; JSONL: its line; Parquet: the row number). */
  line: number
  values: unknown[]
}

export interface BadRecord {
  line: number
  reason: string
  raw?: string
}

export interface CsvOptions {
  delimiter?: string
  quote?: string
  escape?: string
  /** Unquoted text read as NULL (default: the empty string, as PostgreSQL's CSV). */
  null?: string
  /** The first line names the columns (default true). Without it, columns are c1, c2, ... or --columns. */
  header?: boolean
}

export interface ReadOptions {
  csv?: CsvOptions
  /** Called for each malformed record; throw to abort the load. */
  onBad: (bad: BadRecord) => void
  /** Counts bytes read from the file (progress). */
  onBytes?: (n: number) => void
  /**
   * Malformed CSV records go to onBad instead of failing the parser (--reject-file).
   * Without it csv-parse's own error aborts the pipeline (onBad must not throw inside it).
   */
  tolerant?: boolean
}

/** Format from --format or the file extension. */
export function formatOf(file: string, flag?: string): InputFormat {
  if (flag) {
    if (flag === 'csv' || flag === 'jsonl' || flag === 'parquet') return flag
    throw new PgdvError(`--format ${flag} is not supported`, { hint: 'Use csv, jsonl or parquet' })
  }
  const ext = path.extname(file).toLowerCase()
  if (ext === '.csv' || ext === '.tsv' || ext === '.txt') return 'csv'
  if (ext === '.jsonl' || ext === '.ndjson' || ext === '.json') return 'jsonl'
  if (ext === '.parquet' || ext === '.pq') return 'parquet'
  throw new PgdvError(`cannot tell the format of ${file} from its extension`, { hint: 'Pass --format csv, jsonl or parquet' })
}

function badError(file: string, b: BadRecord): PgdvError {
  return new PgdvError(`${file} line ${b.line}: ${b.reason}; nothing was committed`, {
    hint: 'Fix that line, or pass --reject-file FILE to set bad rows aside',
  })
}

/** The default onBad: abort with the file, line and reason. */
export function abortOnBad(file: string): (b: BadRecord) => void {
  return (b) => {
    throw badError(file, b)
  }
}

function byteCounter(onBytes?: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      onBytes?.(chunk.length)
      cb(null, chunk)
    },
  })
}

function csvReason(e: CsvError): string {
  switch (e.code as string) {
    case 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH':
      return e.message.replace(/^.*expect (\d+), got (\d+).*$/s, 'expected $1 fields, got $2')
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'a quoted field is never closed'
    case 'INVALID_OPENING_QUOTE':
      return 'a quote inside an unquoted field (quote the whole field and double the quote)'
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'text right after a closing quote'
    default:
      return e.message.replace(/,? (at|on) line \d+.*$/s, '')
  }
}

function csvLine(e: { lines?: unknown; message: string }): number {
  if (typeof e.lines === 'number') return e.lines
  const m = /line (\d+)/.exec(e.message)
  return m ? Number(m[1]) : 0
}

function isCsvError(e: unknown): e is CsvError {
  const code = (e as { code?: unknown })?.code
  return typeof code === 'string' && (code.startsWith('CSV_') || code.startsWith('INVALID_'))
}

// ---- CSV --------------------------------------------------------------------------

function csvParser(o: CsvOptions, onBad: (b: BadRecord) => void, tolerant: boolean): Transform {
  const nullText = o.null ?? ''
  const parser = csvParse({
    delimiter: o.delimiter ?? ',',
    quote: o.quote ?? '"',
    escape: o.escape ?? o.quote ?? '"',
    bom: true,
    info: true,
    raw: true,
    skip_empty_lines: true,
    skip_records_with_error: tolerant,
    on_skip: tolerant
      ? (err: CsvError | undefined, raw: string | undefined) => {
          onBad({ line: err ? csvLine(err) : 0, reason: err ? csvReason(err) : 'malformed record', raw: raw?.replace(/\r?\n$/, '') })
          return undefined
        }
      : undefined,
    // PostgreSQL's CSV convention: an unquoted NULL string is NULL, a quoted one is text.
    cast: (value, ctx) => (!ctx.quoting && value === nullText ? null : value),
  })
  return parser
}

/** CSV records (arrays), the header consumed; columns come from the header or `columns`. */
function csvRecords(o: CsvOptions, onColumns: (cols: string[]) => void): Transform {
  const header = o.header ?? true
  let first = true
  return new Transform({
    objectMode: true,
    transform({ record, info }: { record: (string | null)[]; info: { lines: number } }, _e, cb) {
      if (first) {
        first = false
        onColumns(record.map((c, i) => (header && c !== null && c !== '' ? c : `c${i + 1}`)))
        if (header) return cb()
      }
      cb(null, { line: info.lines, values: record } satisfies InputRecord)
    },
  })
}

// ---- JSONL ------------------------------------------------------------------------

// A Transform, not an async generator: an error thrown by onBad must reach pipeline()
// as itself (a generator stage that throws surfaces as an AbortError on Node 20).
function jsonlRecords(onBad: (b: BadRecord) => void, fixedColumns: string[] | undefined, onColumns: (cols: string[]) => void): Transform {
  const cols: string[] = fixedColumns ? [...fixedColumns] : []
  const index = new Map(cols.map((c, i) => [c, i]))
  let n = 0
  const one = (raw: string): InputRecord | undefined => {
    n++
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw
    if (text.trim() === '') return undefined
    let obj: unknown
    try {
      obj = JSON.parse(text)
    } catch (e) {
      onBad({ line: n, reason: `invalid JSON (${(e as Error).message.replace(/ in JSON at position.*$/, '')})`, raw: text })
      return undefined
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
      onBad({ line: n, reason: 'not a JSON object', raw: text })
      return undefined
    }
    const values: unknown[] = new Array(cols.length).fill(null)
    for (const [k, v] of Object.entries(obj)) {
      let i = index.get(k)
      if (i === undefined) {
        if (fixedColumns) {
          onBad({ line: n, reason: `field "${k}" is not a column of this load (fields are taken from the first lines; declare it with --columns)`, raw: text })
          return undefined
        }
        i = cols.length
        cols.push(k)
        index.set(k, i)
        values.push(null)
      }
      values[i] = v
    }
    onColumns(cols)
    return { line: n, values }
  }
  return new Transform({
    objectMode: true,
    transform(raw: string, _e, cb) {
      let rec: InputRecord | undefined
      try {
        rec = one(raw)
      } catch (e) {
        return cb(e as Error)
      }
      cb(null, rec)
    },
  })
}

// ---- Parquet ------------------------------------------------------------------------

/** Parquet column names (top level) and total rows, from the footer only. */
export async function parquetInfo(file: string): Promise<{ columns: string[]; rows: number; rowGroups: { rows: number; bytes: number }[] }> {
  const buf = await asyncBufferFromFile(file)
  let meta
  try {
    meta = await parquetMetadataAsync(buf)
  } catch (e) {
    throw new PgdvError(`${file} is not a readable Parquet file: ${(e as Error).message}`, { hint: 'Check the file, or pass --format for another format' })
  }
  return {
    columns: parquetSchema(meta).children.map((c) => c.element.name),
    rows: Number(meta.num_rows),
    rowGroups: meta.row_groups.map((g) => ({ rows: Number(g.num_rows), bytes: Number(g.total_compressed_size ?? g.total_byte_size) })),
  }
}

/** Parquet rows, one row group at a time (never the whole file in memory). */
async function* parquetRecords(file: string, columns: string[], onBytes?: (n: number) => void, maxRows = Infinity): AsyncGenerator<InputRecord> {
  const buf = await asyncBufferFromFile(file)
  const meta = await parquetMetadataAsync(buf)
  let start = 0
  for (const g of meta.row_groups) {
    const n = Number(g.num_rows)
    const end = Math.min(start + n, maxRows)
    if (end > start) {
      const rows = await parquetReadObjects({ file: buf, metadata: meta, rowStart: start, rowEnd: end, columns })
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i]
        yield { line: start + i + 1, values: columns.map((c) => r[c]) }
      }
    }
    onBytes?.(Number(g.total_compressed_size ?? g.total_byte_size))
    start += n
    if (start >= maxRows) return
  }
}

// ---- entry points -----------------------------------------------------------------

export interface RecordStream {
  /** From the file to InputRecords, for pipeline(). */
  stages: Stage[]
  /** Input column names; known once the first record (CSV header, first JSON line) passed. */
  columns: () => string[]
}

/**
 * Builds the reader stages for one file. For JSONL, `columns` fixes the field list
 * (fields from the sample); other fields are bad records.
 */
export function recordStages(file: string, format: InputFormat, opts: ReadOptions, columns?: string[]): RecordStream {
  let cols: string[] = columns ?? []
  const setCols = (c: string[]) => {
    cols = c
  }
  const tolerant = opts.tolerant ?? false
  let stages: Stage[]
  if (format === 'csv') {
    const o = opts.csv ?? {}
    stages = [fs.createReadStream(file), byteCounter(opts.onBytes), csvParser(o, opts.onBad, tolerant), csvRecords(o, columns ? () => {} : setCols)]
  } else if (format === 'jsonl') {
    stages = [fs.createReadStream(file), byteCounter(opts.onBytes), new LineSplitter(), jsonlRecords(opts.onBad, columns, setCols)]
  } else {
    if (!columns) throw new PgdvError('internal: Parquet columns must be read from the footer first', { kind: 'internal' })
    stages = [Readable.from(parquetRecords(file, columns, opts.onBytes))]
  }
  return { stages, columns: () => cols }
}

export interface Sample {
  columns: string[]
  rows: Record<string, unknown>[]
}

/** The first `n` good records of a file (bad ones skipped or thrown by onBad), for inference. */
export async function readSample(file: string, format: InputFormat, opts: ReadOptions, n = 1000): Promise<Sample> {
  if (format === 'parquet') {
    const info = await parquetInfo(file)
    const rows: Record<string, unknown>[] = []
    for await (const r of parquetRecords(file, info.columns, undefined, n)) rows.push(Object.fromEntries(info.columns.map((c, i) => [c, r.values[i]])))
    return { columns: info.columns, rows }
  }
  const rs = recordStages(file, format, { ...opts, onBytes: undefined })
  // The callback form returns the last stream; an error in any stage destroys it, so the
  // loop below sees it. Breaking out early closes the chain (the premature close is ignored).
  const last = (streamPipeline as unknown as (...a: unknown[]) => AsyncIterable<InputRecord>)(...rs.stages, () => {})
  const records: InputRecord[] = []
  try {
    for await (const r of last) {
      records.push(r)
      if (records.length >= n) break
    }
  } catch (e) {
    throw mapReadError(file, e)
  }
  const columns = rs.columns()
  return { columns, rows: records.map((r) => Object.fromEntries(columns.map((c, i) => [c, r.values[i] ?? null]))) }
}

/**
 * PostgreSQL's COPY ... (FORMAT csv) options for the same CSV settings, for loads that let
 * the server parse (no --reject-file): its parser is several times faster than any in JS.
 */
export function csvCopyOptions(o: CsvOptions, literal: (s: string) => string): string {
  const opts = ['FORMAT csv', `HEADER ${o.header === false ? 'false' : 'true'}`]
  if (o.delimiter !== undefined) opts.push(`DELIMITER ${literal(o.delimiter)}`)
  if (o.quote !== undefined) opts.push(`QUOTE ${literal(o.quote)}`)
  if (o.escape !== undefined) opts.push(`ESCAPE ${literal(o.escape)}`)
  if (o.null !== undefined) opts.push(`NULL ${literal(o.null)}`)
  return opts.join(', ')
}

/**
 * --reject-file for CSV: csv-parse only finds the malformed records (and their lines);
 * the good records' own text goes on to COPY ... (FORMAT csv) unchanged, so PostgreSQL
 * still parses the values (NULLs and quoting exactly as without --reject-file). Without
 * `info` or `cast` csv-parse runs ~15x faster; lines are counted from each record's text.
 * `sentLine(copyLine, fileLine)` records where each record ends in both streams.
 */
export function csvRawStages(
  file: string,
  o: CsvOptions,
  onBad: (b: BadRecord) => void,
  onRecord: (sentEndLine: number, fileEndLine: number) => void,
  onBytes?: (n: number) => void,
): Stage[] {
  let fileLine = 0
  let sentLine = 0
  let first = true
  const newlines = (t: string) => {
    let n = 0
    for (let i = t.indexOf('\n'); i >= 0; i = t.indexOf('\n', i + 1)) n++
    return n
  }
  const advance = (raw: string) => (fileLine += newlines(raw) + (raw.endsWith('\n') ? 0 : 1))
  const parser = csvParse({
    delimiter: o.delimiter ?? ',',
    quote: o.quote ?? '"',
    escape: o.escape ?? o.quote ?? '"',
    bom: true,
    raw: true,
    skip_empty_lines: false,
    skip_records_with_error: true,
    on_skip: (err: CsvError | undefined, raw: string | undefined) => {
      if (raw !== undefined) advance(raw)
      else if (err) fileLine = csvLine(err)
      const blank = raw !== undefined && raw.trim() === ''
      onBad({ line: fileLine, reason: blank ? 'a blank line' : err ? csvReason(err) : 'malformed record', raw: raw?.replace(/\r?\n$/, '') })
      return undefined
    },
  })
  let buf = ''
  const toCopy = new Transform({
    writableObjectMode: true,
    transform({ raw }: { raw: string }, _e, cb) {
      advance(raw)
      if (first) {
        first = false
        if (o.header ?? true) return cb()
      }
      const text = raw.endsWith('\n') ? raw : `${raw}\n`
      sentLine += newlines(text)
      onRecord(sentLine, fileLine)
      buf += text
      if (buf.length >= 64 * 1024) {
        const out = buf
        buf = ''
        cb(null, out)
      } else cb()
    },
    flush(cb) {
      cb(null, buf.length > 0 ? buf : undefined)
    },
  })
  return [fs.createReadStream(file), byteCounter(onBytes), parser, toCopy]
}

/** Drops a UTF-8 byte order mark at the start of a stream (PostgreSQL would read it as data). */
export function stripBom(): Transform {
  let first = true
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      if (first) {
        first = false
        if (chunk.length >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3)
      }
      cb(null, chunk)
    },
  })
}

/** csv-parse and fs errors → one line naming the file and line. */
export function mapReadError(file: string, e: unknown): unknown {
  if (e instanceof PgdvError) return e
  if (isCsvError(e)) return badError(file, { line: csvLine(e), reason: csvReason(e) })
  const err = e as { code?: string }
  if (err?.code === 'ENOENT') return new PgdvError(`${file} does not exist`, { kind: 'not_found', hint: 'Check the path' })
  if (err?.code === 'EISDIR') return new PgdvError(`${file} is a folder, not a file`, { hint: 'Give a CSV, JSONL or Parquet file' })
  return e
}

export type { TransformCallback }
