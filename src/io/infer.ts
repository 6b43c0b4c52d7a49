// Column types for a dataset that has no schema yet, inferred from a sample of the
// input, and the column definition lists handed to dv.stage(p_columns => ...).

import pg from 'pg'
import { PgdvError } from '../lib/errors.js'

export interface ColumnDef {
  name: string
  type: string
}

const INT = /^[-+]?\d{1,19}$/
const FLOAT = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(Infinity|NaN)$/i
const BOOL = /^(true|false|t|f)$/i
const DATE = /^\d{4}-\d{2}-\d{2}$/
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$/
const INT64_MAX = 9223372036854775807n
const INT64_MIN = -9223372036854775808n

type Kind = 'bigint' | 'double precision' | 'boolean' | 'date' | 'timestamptz' | 'jsonb' | 'bytea' | 'text'

// Widening order when two sample values disagree: the narrowest type that holds both.
function widen(a: Kind | undefined, b: Kind): Kind {
  if (a === undefined || a === b) return b
  const pair = new Set([a, b])
  if (pair.has('bigint') && pair.has('double precision')) return 'double precision'
  if (pair.has('date') && pair.has('timestamptz')) return 'timestamptz'
  return a === 'jsonb' || b === 'jsonb' ? (pair.has('text') ? 'text' : 'jsonb') : 'text'
}

function fitsInt64(s: string): boolean {
  const n = BigInt(s.replace(/^\+/, ''))
  return n >= INT64_MIN && n <= INT64_MAX
}

/** The type a text value (CSV) suggests. */
function kindOfText(s: string): Kind {
  const t = s.trim()
  if (INT.test(t) && fitsInt64(t)) return 'bigint'
  if (FLOAT.test(t)) return 'double precision'
  if (BOOL.test(t)) return 'boolean'
  if (DATE.test(t) && !Number.isNaN(Date.parse(t))) return 'date'
  if (TIMESTAMP.test(t) && !Number.isNaN(Date.parse(t.slice(0, 10)))) return 'timestamptz'
  return 'text'
}

/** The type a typed value (JSON, Parquet) suggests; strings only become dates or timestamps. */
function kindOfValue(v: unknown): Kind {
  switch (typeof v) {
    case 'bigint':
      return 'bigint'
    case 'number':
      return Number.isInteger(v) ? 'bigint' : 'double precision'
    case 'boolean':
      return 'boolean'
    case 'string': {
      const k = kindOfText(v)
      return k === 'date' || k === 'timestamptz' ? k : 'text'
    }
    default:
      if (v instanceof Date) return 'timestamptz'
      if (v instanceof Uint8Array) return 'bytea'
      return 'jsonb'
  }
}

/**
 * Infers one type per column from sample rows. Text sources (CSV) look inside the
 * strings; typed sources (JSON, Parquet) go by the value's JS type. A column with only
 * NULLs in the sample becomes text.
 */
export function inferColumns(columns: string[], sample: Record<string, unknown>[], textSource: boolean): ColumnDef[] {
  return columns.map((name) => {
    let kind: Kind | undefined
    for (const row of sample) {
      const v = row[name]
      if (v === null || v === undefined || (textSource && v === '')) continue
      kind = widen(kind, textSource ? kindOfText(String(v)) : kindOfValue(v))
      if (kind === 'text') break
    }
    return { name, type: kind ?? 'text' }
  })
}

/** A definition list for dv.stage: "id" bigint, "first name" text. */
export function formatColumnDefs(defs: ColumnDef[]): string {
  return defs.map((d) => `${pg.escapeIdentifier(d.name)} ${d.type}`).join(', ')
}

/**
 * Parses --columns 'id bigint, label text, "first name" varchar(20), price numeric(10,2)'.
 * Commas inside parentheses and quoted names are respected; the type text is passed to
 * PostgreSQL as written (it checks it).
 */
export function parseColumnDefs(spec: string): ColumnDef[] {
  const parts: string[] = []
  let depth = 0
  let quoted = false
  let cur = ''
  for (const c of spec) {
    if (c === '"') quoted = !quoted
    else if (!quoted && c === '(') depth++
    else if (!quoted && c === ')') depth--
    if (c === ',' && depth === 0 && !quoted) {
      parts.push(cur)
      cur = ''
    } else cur += c
  }
  parts.push(cur)
  return parts.map((p) => {
    const s = p.trim()
    const m = /^("(?:[^"]|"")+"|[^\s"]+)\s+(.+)$/s.exec(s)
    if (!m) {
      throw new PgdvError(`--columns: "${s}" is not a column definition`, { hint: "Write name and type pairs, e.g. --columns 'id bigint, label text'" })
    }
    const name = m[1].startsWith('"') ? m[1].slice(1, -1).replace(/""/g, '"') : m[1]
    if (/[;]/.test(m[2])) throw new PgdvError(`--columns: type "${m[2]}" of ${name} is not a type name`, { hint: 'Give a PostgreSQL type such as bigint, text, numeric(10,2)' })
    return { name, type: m[2].trim() }
  })
}

/** Whether values of a PostgreSQL type (as format_type prints it) take JSON text. */
export function isJsonType(type: string): boolean {
  return type === 'jsonb' || type === 'json'
}
