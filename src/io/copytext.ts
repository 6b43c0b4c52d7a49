// PostgreSQL COPY text format, both ways: encode loader rows for COPY ... FROM STDIN,
// decode COPY ... TO STDOUT lines for writers that need typed values (Parquet).
// Text format rules: fields split by TAB, rows end with LF, NULL is \N, and a
// backslash, TAB, LF or CR inside a value is written as \\, \t, \n, \r.

import { Transform, type TransformCallback } from 'node:stream'

const NEEDS_ESCAPE = /[\\\t\n\r]/

/** Escapes one non-null value for COPY text format. */
export function escapeCopyText(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s
  let out = ''
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === '\\') out += '\\\\'
    else if (c === '\t') out += '\\t'
    else if (c === '\n') out += '\\n'
    else if (c === '\r') out += '\\r'
    else out += c
  }
  return out
}

/** JSON.stringify that writes bigints as numbers (Parquet INT64 values arrive as bigint). */
export function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? (Number.isSafeInteger(Number(x)) ? Number(x) : x.toString()) : x))
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/**
 * A JS value as the text PostgreSQL's input function for the column expects.
 * `json` columns get JSON for every value (a JSON string "a" must stay "\"a\"");
 * other columns get scalars as text and nested values as JSON.
 */
export function valueToText(v: unknown, json: boolean): string | null {
  if (v === null || v === undefined) return null
  if (json) {
    return v instanceof Date ? JSON.stringify(v.toISOString()) : toJson(v)
  }
  switch (typeof v) {
    case 'string':
      return v
    case 'number':
      if (Number.isNaN(v)) return 'NaN'
      if (v === Infinity) return 'Infinity'
      if (v === -Infinity) return '-Infinity'
      return String(v)
    case 'bigint':
    case 'boolean':
      return String(v)
    default:
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString()
      if (v instanceof Uint8Array) return `\\x${hex(v)}`
      return toJson(v)
  }
}

/** One row as a COPY text line (with the trailing LF). */
export function encodeCopyRow(values: (string | null)[]): string {
  let line = ''
  for (let i = 0; i < values.length; i++) {
    if (i > 0) line += '\t'
    const v = values[i]
    line += v === null ? '\\N' : escapeCopyText(v)
  }
  return `${line}\n`
}

/** Splits one COPY text line (without its LF) into values; \N is null. */
export function decodeCopyLine(line: string): (string | null)[] {
  const fields = line.split('\t')
  const out: (string | null)[] = new Array(fields.length)
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]
    if (f === '\\N') out[i] = null
    else if (!f.includes('\\')) out[i] = f
    else out[i] = unescapeCopyText(f)
  }
  return out
}

const ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' }

function unescapeCopyText(f: string): string {
  let out = ''
  for (let i = 0; i < f.length; i++) {
    const c = f[i]
    if (c !== '\\' || i === f.length - 1) {
      out += c
      continue
    }
    const n = f[++i]
    if (n in ESCAPES) out += ESCAPES[n]
    else if (n >= '0' && n <= '7') {
      // \ooo octal byte (PostgreSQL never emits it on output, but accept it)
      let j = i
      while (j < i + 3 && j < f.length && f[j] >= '0' && f[j] <= '7') j++
      out += String.fromCharCode(parseInt(f.slice(i, j), 8))
      i = j - 1
    } else out += n
  }
  return out
}

/** Bytes → lines (LF-terminated, the LF removed), as strings in object mode. */
export class LineSplitter extends Transform {
  private rest = ''
  private readonly decoder = new TextDecoder('utf-8')

  constructor() {
    super({ readableObjectMode: true })
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const text = this.rest + this.decoder.decode(chunk, { stream: true })
    let start = 0
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      this.push(text.slice(start, nl))
      start = nl + 1
    }
    this.rest = text.slice(start)
    cb()
  }

  override _flush(cb: TransformCallback): void {
    const tail = this.rest + this.decoder.decode()
    if (tail.length > 0) this.push(tail)
    cb()
  }
}
