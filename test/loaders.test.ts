// Loaders and writers without a database: COPY text encoding, type inference, column
// definitions, streaming readers with line numbers, and the small flag parsers.

import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileWriter, parquetWriteRows } from 'hyparquet-writer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { planColumns } from '../src/api/load.js'
import { describeCommit } from '../src/commands/commit.js'
import { decodeCopyLine, encodeCopyRow, escapeCopyText, valueToText } from '../src/io/copytext.js'
import { LineMap } from '../src/io/encode.js'
import { formatColumnDefs, inferColumns, parseColumnDefs } from '../src/io/infer.js'
import { runPipeline } from '../src/io/pipe.js'
import { abortOnBad, type BadRecord, formatOf, type InputFormat, type InputRecord, mapReadError, readSample, recordStages } from '../src/io/readers.js'
import { outputFormatOf, parquetColumn } from '../src/io/writers.js'
import { parseAt, parseCharFlag, parseLoadSource } from '../src/lib/parse.js'
import { formatRate, progressEnabled } from '../src/lib/progress.js'

let dir: string
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-loaders-'))
})
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true })
})

async function write(name: string, text: string): Promise<string> {
  const p = path.join(dir, name)
  await fs.writeFile(p, text)
  return p
}

async function readAll(file: string, format: InputFormat, opts: { tolerant?: boolean; columns?: string[]; csv?: object } = {}) {
  const bad: BadRecord[] = []
  const records: InputRecord[] = []
  const rs = recordStages(file, format, { onBad: opts.tolerant ? (b) => void bad.push(b) : abortOnBad(file), tolerant: opts.tolerant, csv: opts.csv }, opts.columns)
  try {
    await runPipeline([
      ...rs.stages,
      async (src: AsyncIterable<InputRecord>) => {
        for await (const r of src) records.push(r)
      },
    ])
  } catch (e) {
    throw mapReadError(file, e)
  }
  return { records, bad, columns: rs.columns() }
}

describe('COPY text format', () => {
  it('escapes backslash, tab, newline and carriage return, and writes NULL as \\N', () => {
    expect(escapeCopyText('plain')).toBe('plain')
    expect(encodeCopyRow(['a\tb', 'c\nd', 'e\\f', 'g\rh', null, ''])).toBe('a\\tb\tc\\nd\te\\\\f\tg\\rh\t\\N\t\n')
  })
  it('decodes what it encodes, Unicode included', () => {
    const vals = ['tab\there', 'line\nbreak', 'back\\slash', null, '', 'ünïcødé 🚀', '\\N']
    const line = encodeCopyRow(vals)
    expect(decodeCopyLine(line.slice(0, -1))).toEqual(vals)
  })
  it('turns typed values into the text PostgreSQL reads', () => {
    expect(valueToText(12n, false)).toBe('12')
    expect(valueToText(true, false)).toBe('true')
    expect(valueToText(1.5, false)).toBe('1.5')
    expect(valueToText(NaN, false)).toBe('NaN')
    expect(valueToText(new Date('2024-01-02T03:04:05Z'), false)).toBe('2024-01-02T03:04:05.000Z')
    expect(valueToText({ a: [1, 2n] }, false)).toBe('{"a":[1,2]}')
    expect(valueToText('x', true)).toBe('"x"')
    expect(valueToText(null, true)).toBeNull()
    expect(valueToText(new Uint8Array([1, 255]), false)).toBe('\\x01ff')
  })
})

describe('type inference and column definitions', () => {
  it('infers from CSV text', () => {
    const rows = [
      { id: '1', score: '1.5', ok: 'true', day: '2024-01-02', at: '2024-01-02 03:04:05+00', name: 'a', empty: null },
      { id: '2', score: '2', ok: 'false', day: '2024-01-03', at: '2024-01-02T03:04:05Z', name: '7', empty: '' },
    ]
    const defs = inferColumns(Object.keys(rows[0]), rows, true)
    expect(Object.fromEntries(defs.map((d) => [d.name, d.type]))).toEqual({
      id: 'bigint',
      score: 'double precision',
      ok: 'boolean',
      day: 'date',
      at: 'timestamptz',
      name: 'text',
      empty: 'text',
    })
  })
  it('infers from JSON values: nested values are jsonb, numeric strings stay text', () => {
    const rows = [{ id: 1, v: 0.5, tags: ['a'], meta: { k: 1 }, code: '007', big: 12n }]
    const defs = inferColumns(Object.keys(rows[0]), rows, false)
    expect(defs.map((d) => d.type)).toEqual(['bigint', 'double precision', 'jsonb', 'jsonb', 'text', 'bigint'])
  })
  it('a value beyond bigint makes the column numeric-free text-safe double', () => {
    const defs = inferColumns(['n'], [{ n: '99999999999999999999' }], true)
    expect(defs[0].type).toBe('double precision')
  })
  it('parses --columns with quoted names and typmods', () => {
    expect(parseColumnDefs('id bigint, "first name" varchar(20), price numeric(10,2)')).toEqual([
      { name: 'id', type: 'bigint' },
      { name: 'first name', type: 'varchar(20)' },
      { name: 'price', type: 'numeric(10,2)' },
    ])
    expect(() => parseColumnDefs('id')).toThrow(/not a column definition/)
    expect(() => parseColumnDefs('id bigint; drop table x')).toThrow(/not a type name/)
    expect(formatColumnDefs([{ name: 'first name', type: 'text' }, { name: 'id', type: 'bigint' }])).toBe('"first name" text, "id" bigint')
  })
  it('plans only the columns the dataset lacks', () => {
    const existing = [{ name: 'id', type: 'bigint' }]
    const plan = planColumns(['id', 'label', 'score'], existing, [{ name: 'score', type: 'real' }], (names) => names.map((n) => ({ name: n, type: 'text' })))
    expect(plan).toEqual([
      { name: 'label', type: 'text' },
      { name: 'score', type: 'real' },
    ])
    expect(planColumns([{ name: 'id', type: 'integer' }], [], [], () => [])).toEqual([{ name: 'id', type: 'integer' }])
  })
})

describe('LineMap', () => {
  it('maps COPY lines back to input lines across multi-line records and skipped lines', () => {
    const m = new LineMap()
    const lines = [2, 3, 5, 6, 7, 10]
    lines.forEach((l, i) => m.record(i, l))
    expect(lines.map((_l, i) => m.inputLine(i + 1))).toEqual(lines)
  })
})

describe('readers', () => {
  it('CSV: header, quoted newlines, NULL vs empty, the line each record ends on', async () => {
    const f = await write('a.csv', 'id,name\n1,a\n\n2,"multi\nline"\n3,\n4,""\n')
    const r = await readAll(f, 'csv')
    expect(r.columns).toEqual(['id', 'name'])
    expect(r.records).toEqual([
      { line: 2, values: ['1', 'a'] },
      { line: 5, values: ['2', 'multi\nline'] },
      { line: 6, values: ['3', null] },
      { line: 7, values: ['4', ''] },
    ])
  })
  it('CSV: delimiter, quote, escape and null options', async () => {
    const f = await write('b.tsv', "id\tname\n1\t'it\\'s'\n2\tNULL\n")
    const r = await readAll(f, 'csv', { csv: { delimiter: '\t', quote: "'", escape: '\\', null: 'NULL' } })
    expect(r.records.map((x) => x.values)).toEqual([
      ['1', "it's"],
      ['2', null],
    ])
  })
  it('CSV: a malformed line aborts with file, line and reason', async () => {
    const f = await write('bad.csv', 'id,name\n1,a\n2,b,c\n3,d\n')
    await expect(readAll(f, 'csv')).rejects.toThrow(/bad\.csv line 3: expected 2 fields, got 3; nothing was committed/)
    await expect(readSample(f, 'csv', { onBad: abortOnBad(f) })).rejects.toThrow(/line 3/)
  })
  it('CSV: tolerant mode sets bad lines aside and keeps the rest', async () => {
    const f = await write('bad2.csv', 'id,name\n1,a\n2,b,c\n3,d\n4\n')
    const r = await readAll(f, 'csv', { tolerant: true })
    expect(r.records.map((x) => x.values[0])).toEqual(['1', '3'])
    expect(r.bad).toEqual([
      { line: 3, reason: 'expected 2 fields, got 3', raw: '2,b,c' },
      { line: 5, reason: 'expected 2 fields, got 1', raw: '4' },
    ])
  })
  it('JSONL: fields from the first lines, bad JSON and unknown fields with line numbers', async () => {
    const f = await write('a.jsonl', '{"id":1,"v":"x"}\n\n{"id":2,"tags":[1]}\nnot json\n[1]\n{"id":3,"zzz":1}\n')
    const s = await readSample(f, 'jsonl', { onBad: () => {}, tolerant: true }, 2)
    expect(s.columns.slice(0, 3)).toEqual(['id', 'v', 'tags'])
    expect(s.rows).toHaveLength(2)
    const cols = ['id', 'v', 'tags']
    const r = await readAll(f, 'jsonl', { tolerant: true, columns: cols })
    expect(r.records).toEqual([
      { line: 1, values: [1, 'x', null] },
      { line: 3, values: [2, null, [1]] },
    ])
    expect(r.bad.map((b) => [b.line, b.reason.slice(0, 12)])).toEqual([
      [4, 'invalid JSON'],
      [5, 'not a JSON o'],
      [6, 'field "zzz" '],
    ])
    await expect(readAll(f, 'jsonl', { columns: cols })).rejects.toThrow(/a\.jsonl line 4: invalid JSON/)
  })
  it('Parquet: columns from the footer, rows one row group at a time', async () => {
    const f = path.join(dir, 'a.parquet')
    const rows = Array.from({ length: 2500 }, (_v, i) => ({ id: BigInt(i), name: i % 7 === 1 ? null : `n${i}`, score: i / 4 }))
    await parquetWriteRows({
      writer: fileWriter(f),
      rows,
      columns: [
        { name: 'id', type: 'INT64' },
        { name: 'name', type: 'STRING' },
        { name: 'score', type: 'DOUBLE' },
      ],
      rowGroupSize: 1000,
    })
    const s = await readSample(f, 'parquet', { onBad: abortOnBad(f) }, 10)
    expect(s.columns).toEqual(['id', 'name', 'score'])
    expect(inferColumns(s.columns, s.rows, false).map((d) => d.type)).toEqual(['bigint', 'text', 'double precision'])
    const r = await readAll(f, 'parquet', { columns: s.columns })
    expect(r.records).toHaveLength(2500)
    expect(r.records[2499]).toEqual({ line: 2500, values: [2499n, 'n2499', 2499 / 4] })
    expect(r.records[8].values[1]).toBeNull()
  })
  it('formats from extensions and flags', () => {
    expect(formatOf('x.CSV')).toBe('csv')
    expect(formatOf('x.ndjson')).toBe('jsonl')
    expect(formatOf('x.dat', 'parquet')).toBe('parquet')
    expect(() => formatOf('x.dat')).toThrow(/cannot tell the format/)
    expect(outputFormatOf('out.parquet')).toBe('parquet')
    expect(() => outputFormatOf('out.xlsx')).toThrow(/cannot tell the output format/)
  })
})

describe('writers', () => {
  it('maps PostgreSQL types to Parquet and parses COPY text', () => {
    expect(parquetColumn('id', 'bigint').parse('9007199254740993')).toBe(9007199254740993n)
    expect(parquetColumn('t', 'timestamp with time zone').parse('2024-01-02 03:04:05.5+00')).toEqual(new Date('2024-01-02T03:04:05.500Z'))
    expect(parquetColumn('ok', 'boolean').parse('t')).toBe(true)
    expect(parquetColumn('j', 'jsonb').type).toBe('JSON')
    expect(parquetColumn('n', 'numeric(10,2)').type).toBe('STRING')
  })
})

describe('flags and output', () => {
  it('parses one-character flags', () => {
    expect(parseCharFlag('delimiter', '\\t')).toBe('\t')
    expect(parseCharFlag('delimiter', 'tab')).toBe('\t')
    expect(parseCharFlag('quote', "'")).toBe("'")
    expect(parseCharFlag('quote', undefined)).toBeUndefined()
    expect(() => parseCharFlag('delimiter', ';;')).toThrow(/one character/)
  })
  it('parses --at, without a zone as UTC', () => {
    expect(parseAt('2024-05-01 12:00')).toEqual(new Date('2024-05-01T12:00:00Z'))
    expect(parseAt('2024-05-01T12:00:00+02:00')).toEqual(new Date('2024-05-01T10:00:00Z'))
    expect(parseAt(undefined)).toBeUndefined()
    expect(() => parseAt('soon')).toThrow(/not a date and time/)
  })
  it('takes exactly one load source', () => {
    expect(parseLoadSource('a.csv', undefined, undefined)).toEqual({ kind: 'file', file: 'a.csv' })
    expect(parseLoadSource(undefined, 'SELECT 1', undefined)).toEqual({ kind: 'query', query: 'SELECT 1' })
    expect(() => parseLoadSource(undefined, undefined, undefined)).toThrow(/nothing to commit/)
    expect(() => parseLoadSource('a.csv', 'SELECT 1', undefined)).toThrow(/only one/)
  })
  it('draws a progress bar only on a TTY without --json', () => {
    expect(progressEnabled({ isTTY: true, json: false })).toBe(true)
    expect(progressEnabled({ isTTY: false, json: false })).toBe(false)
    expect(progressEnabled({ isTTY: true, json: true })).toBe(false)
    expect(formatRate(5e6, 2000)).toBe('2.5')
  })
  it('describes a commit in one line (plus rejects and new columns)', () => {
    const base = { dataset: 'd', version_id: '5', parent_id: '4', branch: 'main', added: '1', removed: '2', modified: '3', row_count: '10', content_hash: null, loaded: 10, reject_file: null, new_columns: [], source: 'f' }
    expect(describeCommit({ ...base, created: true, rejected: 0 })).toBe('committed version 5 of "d" on main: +1 added, -2 removed, ~3 modified (10 rows)')
    expect(describeCommit({ ...base, created: false, rejected: 2, reject_file: 'r.jsonl' })).toMatch(/nothing changed[^\n]*\nset aside 2 bad records in r\.jsonl/)
  })
})
