// The canonical row encoding and SHA-256 row hash, byte for byte the same as the SQL in
// sql/migrations/003-rows.sql (dv_internal.canon_sql / hash_sql); the README ("How row versions are stored and hashed") is
// the specification. Values are accepted as node-postgres returns them (numbers,
// strings, Date, Buffer, parsed JSON) or as their canonical text.

import { createHash } from 'node:crypto'

/** A column as dv.dataset_columns reports it: name and format_type() spelling. */
export interface HashColumn {
  column_name: string
  data_type: string
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0')

function fraction(ms: number): string {
  return ms === 0 ? '' : `.${pad(ms, 3)}`.replace(/0+$/, '')
}

function dateText(d: Date, utc: boolean): string {
  const y = utc ? d.getUTCFullYear() : d.getFullYear()
  const m = (utc ? d.getUTCMonth() : d.getMonth()) + 1
  const day = utc ? d.getUTCDate() : d.getDate()
  if (y <= 0) throw new RangeError('dates before year 1 are hashed from their text, not from a Date')
  return `${pad(y, 4)}-${pad(m)}-${pad(day)}`
}

function timestampText(d: Date, utc: boolean): string {
  const h = utc ? d.getUTCHours() : d.getHours()
  const mi = utc ? d.getUTCMinutes() : d.getMinutes()
  const s = utc ? d.getUTCSeconds() : d.getSeconds()
  const ms = utc ? d.getUTCMilliseconds() : d.getMilliseconds()
  return `${dateText(d, utc)} ${pad(h)}:${pad(mi)}:${pad(s)}${fraction(ms)}`
}

/** numeric: no trailing fractional zeros (PostgreSQL's trim_scale). */
export function trimScale(text: string): string {
  const t = text.trim()
  if (!t.includes('.') || /[eE]/.test(t)) return t
  return t.replace(/0+$/, '').replace(/\.$/, '')
}

function jsonString(s: string): string {
  // PostgreSQL's escape_json: the short escapes, \u00XX for other control characters,
  // everything else (including non-ASCII) as is.
  let out = '"'
  for (const ch of s) {
    const c = ch.codePointAt(0) as number
    if (ch === '"') out += '\\"'
    else if (ch === '\\') out += '\\\\'
    else if (ch === '\b') out += '\\b'
    else if (ch === '\f') out += '\\f'
    else if (ch === '\n') out += '\\n'
    else if (ch === '\r') out += '\\r'
    else if (ch === '\t') out += '\\t'
    else if (c < 0x20) out += `\\u${c.toString(16).padStart(4, '0')}`
    else out += ch
  }
  return `${out}"`
}

function byteCompare(a: string, b: string): number {
  const ba = Buffer.from(a)
  const bb = Buffer.from(b)
  return ba.length - bb.length || Buffer.compare(ba, bb)
}

/** jsonb's text output: keys shortest first then bytewise, ", " and ": " separators. */
export function jsonbText(v: unknown): string {
  if (v === null || v === undefined) return 'null'
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`jsonb cannot hold ${v}`)
    return String(v)
  }
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'string') return jsonString(v)
  if (Array.isArray(v)) return `[${v.map(jsonbText).join(', ')}]`
  if (v instanceof Date) return jsonString(v.toISOString())
  if (typeof v === 'object') {
    const keys = Object.keys(v as object).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort(byteCompare)
    return `{${keys.map((k) => `${jsonString(k)}: ${jsonbText((v as Record<string, unknown>)[k])}`).join(', ')}}`
  }
  throw new TypeError(`cannot encode ${typeof v} as jsonb`)
}

function arrayElementJson(v: unknown, elementType: string): string {
  if (v === null || v === undefined) return 'null'
  if (Array.isArray(v)) return `[${v.map((x) => arrayElementJson(x, elementType)).join(', ')}]`
  if (/^(smallint|integer|bigint|numeric)/.test(elementType)) return String(v)
  if (elementType === 'boolean') return v === true || v === 't' || v === 'true' ? 'true' : 'false'
  return jsonbText(typeof v === 'string' ? v : String(v))
}

function floatHex(v: unknown, bytes: 4 | 8): string {
  const n = typeof v === 'number' ? v : Number(v)
  if (Number.isNaN(n)) return 'NaN'
  const b = Buffer.alloc(bytes)
  // + 0 turns -0 into 0, as the SQL does.
  if (bytes === 4) b.writeFloatBE(n + 0)
  else b.writeDoubleBE(n + 0)
  return b.toString('hex')
}

/** The canonical text of one non-NULL value of a column type (README, "Canonical row encoding"). */
export function canonicalText(value: unknown, type: string): string {
  if (type.endsWith('[]')) {
    const element = type.slice(0, -2)
    if (typeof value === 'string') return jsonbText(JSON.parse(value))
    return arrayElementJson(value, element)
  }
  if (type.startsWith('numeric')) return trimScale(typeof value === 'string' ? value : String(value))
  if (type === 'real') return floatHex(value, 4)
  if (type === 'double precision') return floatHex(value, 8)
  if (type === 'boolean') return value === true || value === 't' || value === 'true' ? 'true' : 'false'
  if (type === 'bytea') {
    if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value).toString('hex')
    return String(value).replace(/^\\x/, '').toLowerCase()
  }
  if (type === 'date' && value instanceof Date) return dateText(value, false)
  if (type.startsWith('timestamp') && value instanceof Date) return timestampText(value, type.endsWith('with time zone'))
  // node-postgres returns json/jsonb parsed: a JS string is a JSON string scalar.
  if (type === 'jsonb' || type === 'json') return jsonbText(value)
  if (type === 'uuid') return String(value).toLowerCase()
  if (Buffer.isBuffer(value)) return value.toString('hex')
  return String(value)
}

function netstring(s: string): string {
  return `${Buffer.byteLength(s)}:${s},`
}

/** The canonical row encoding: name and value netstrings of every non-NULL column, in order. */
export function rowEncoding(row: Record<string, unknown>, columns: readonly HashColumn[]): Buffer {
  let out = ''
  for (const c of columns) {
    const v = row[c.column_name]
    if (v === null || v === undefined) continue
    out += netstring(c.column_name) + netstring(canonicalText(v, c.data_type))
  }
  return Buffer.from(out, 'utf8')
}

/** SHA-256 row hash (32 bytes), equal to _dv_hash in SQL. */
export function rowHash(row: Record<string, unknown>, columns: readonly HashColumn[]): Buffer {
  return createHash('sha256').update(rowEncoding(row, columns)).digest()
}

/** SHA-256 of the key columns' encoding (_dv_key of a keyed dataset). */
export function keyHash(row: Record<string, unknown>, columns: readonly HashColumn[], keyColumns: readonly string[]): Buffer {
  const keyCols = keyColumns.map((k) => {
    const c = columns.find((x) => x.column_name === k)
    if (!c) throw new RangeError(`key column "${k}" is not among the columns`)
    return c
  })
  return rowHash(row, keyCols)
}

const MOD = 1n << 256n

/**
 * A version's content hash: order-independent over its rows (with duplicates). The sum of
 * all row hashes read as 256-bit big-endian unsigned integers, mod 2^256; content_hash =
 * hex SHA-256 of "<row count>:<sum as 64 hex digits>", or of "" for no rows.
 */
export class ContentHasher {
  private sum = 0n
  private count = 0n

  add(hash: Buffer, copies = 1): this {
    this.sum = (this.sum + BigInt(`0x${hash.toString('hex')}`) * BigInt(copies)) % MOD
    this.count += BigInt(copies)
    return this
  }

  digest(): string {
    if (this.count === 0n) return createHash('sha256').update('').digest('hex')
    return createHash('sha256').update(`${this.count}:${this.sum.toString(16).padStart(64, '0')}`).digest('hex')
  }
}
