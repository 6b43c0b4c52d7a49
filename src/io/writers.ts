// Checkout writers: a version's SELECT (dv.rows_sql) streamed out with COPY TO STDOUT.
// CSV and JSONL go from PostgreSQL to the file untouched; Parquet decodes COPY text
// into typed values and writes row groups of bounded size.

import fs from 'node:fs'
import path from 'node:path'
import { Transform } from 'node:stream'
import type pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import { fileWriter, parquetWriteRows } from 'hyparquet-writer'
import type { BasicType } from 'hyparquet-writer/src/types.js'
import { PgdvError } from '../lib/errors.js'
import type { ProgressUpdate } from '../lib/progress.js'
import { decodeCopyLine, LineSplitter } from './copytext.js'
import { runPipeline } from './pipe.js'

export type OutputFormat = 'csv' | 'jsonl' | 'parquet'

export function outputFormatOf(file: string, flag?: string): OutputFormat {
  if (flag) {
    if (flag === 'csv' || flag === 'jsonl' || flag === 'parquet') return flag
    throw new PgdvError(`--format ${flag} is not supported`, { hint: 'Use csv, jsonl or parquet' })
  }
  const ext = path.extname(file).toLowerCase()
  if (ext === '.csv') return 'csv'
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl'
  if (ext === '.parquet' || ext === '.pq') return 'parquet'
  throw new PgdvError(`cannot tell the output format of ${file} from its extension`, { hint: 'Name it .csv, .jsonl or .parquet, or pass --format' })
}

function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      onBytes(chunk.length)
      cb(null, chunk)
    },
  })
}

async function copyOut(client: pg.ClientBase, copySql: string, file: string, onProgress?: (p: ProgressUpdate) => void): Promise<number> {
  const stream = client.query(copyTo(copySql))
  let bytes = 0
  let lines = 0
  const count = new Transform({
    transform(chunk: Buffer, _e, cb) {
      bytes += chunk.length
      // Rows for the progress bar: lines written (a CSV value with a newline makes it an estimate).
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines++
      onProgress?.({ rows: lines, bytes })
      cb(null, chunk)
    },
  })
  await runPipeline([stream, count, fs.createWriteStream(file, { flags: 'wx' })])
  return stream.rowCount
}

export function writeCsv(client: pg.ClientBase, select: string, file: string, onProgress?: (p: ProgressUpdate) => void): Promise<number> {
  return copyOut(client, `COPY (${select}) TO STDOUT WITH (FORMAT csv, HEADER true)`, file, onProgress)
}

/**
 * One JSON object per line. CSV format with a control-character quote and delimiter
 * that row_to_json always escapes means PostgreSQL writes each JSON text verbatim (text
 * format would double every backslash).
 */
export function writeJsonl(client: pg.ClientBase, select: string, file: string, onProgress?: (p: ProgressUpdate) => void): Promise<number> {
  return copyOut(client, `COPY (SELECT row_to_json(r.*) FROM (${select}) r) TO STDOUT WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')`, file, onProgress)
}

interface ParquetColumn {
  name: string
  type: BasicType
  parse: (s: string) => unknown
}

function pgTimestamp(s: string): Date | null {
  if (s === 'infinity' || s === '-infinity') return null
  // "2024-01-02 03:04:05.678+00" (TimeZone UTC, DateStyle ISO) → ISO 8601
  const iso = s.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')
  const d = new Date(/[Zz]|[+-]\d\d:\d\d$/.test(iso) ? iso : `${iso}Z`)
  return Number.isNaN(d.getTime()) ? null : d
}

/** How a PostgreSQL column type (format_type text) is written to Parquet. */
export function parquetColumn(name: string, pgType: string): ParquetColumn {
  const t = pgType.toLowerCase()
  if (t === 'bigint') return { name, type: 'INT64', parse: (s) => BigInt(s) }
  if (t === 'integer' || t === 'smallint') return { name, type: 'INT32', parse: (s) => Number(s) }
  if (t === 'double precision' || t === 'real') return { name, type: 'DOUBLE', parse: (s) => Number(s) }
  if (t === 'boolean') return { name, type: 'BOOLEAN', parse: (s) => s === 't' }
  if (t.startsWith('timestamp')) return { name, type: 'TIMESTAMP', parse: pgTimestamp }
  if (t === 'jsonb' || t === 'json') return { name, type: 'JSON', parse: (s) => JSON.parse(s) }
  if (t === 'bytea') return { name, type: 'BYTE_ARRAY', parse: (s) => new Uint8Array(Buffer.from(s.slice(2), 'hex')) }
  // numeric, date, uuid, text, arrays, ...: their PostgreSQL text form, losslessly.
  return { name, type: 'STRING', parse: (s) => s }
}

export const PARQUET_ROW_GROUP = 100_000

export async function writeParquet(
  client: pg.ClientBase,
  select: string,
  columns: { name: string; type: string }[],
  file: string,
  onProgress?: (p: ProgressUpdate) => void,
): Promise<number> {
  const cols = columns.map((c) => parquetColumn(c.name, c.type))
  const stream = client.query(copyTo(`COPY (${select}) TO STDOUT`))
  let rows = 0
  let bytes = 0
  // Fails on an existing file, like the CSV and JSONL writers.
  fs.closeSync(fs.openSync(file, 'wx'))
  const writer = fileWriter(file)
  await runPipeline([
    stream,
    counter((n) => (bytes += n)),
    new LineSplitter(),
    async function* (lines: AsyncIterable<string>) {
      for await (const line of lines) {
        const vals = decodeCopyLine(line)
        const row: Record<string, unknown> = {}
        for (let i = 0; i < cols.length; i++) {
          const v = vals[i]
          row[cols[i].name] = v === null || v === undefined ? null : cols[i].parse(v)
        }
        rows++
        if (rows % 10_000 === 0) onProgress?.({ rows, bytes })
        yield row
      }
    },
    async (source: AsyncIterable<Record<string, unknown>>) => {
      // parquetWriteRows pulls one row group at a time from the async source.
      await parquetWriteRows({
        writer,
        rows: source,
        columns: cols.map((c) => ({ name: c.name, type: c.type, nullable: true })),
        rowGroupSize: PARQUET_ROW_GROUP,
      })
    },
  ])
  onProgress?.({ rows, bytes })
  return rows
}
