// Small pure parsers for flag values, kept out of the commands so they can be tested.

import { PgdvError } from './errors.js'

/** "a,b" → ['a','b']; undefined → undefined (keyless). Spaces around names are trimmed. */
export function parseKeyColumns(flag: string | undefined): string[] | undefined {
  if (flag === undefined) return undefined
  const cols = flag.split(',').map((c) => c.trim())
  if (cols.some((c) => c === '')) {
    throw new PgdvError(`--key "${flag}" has an empty column name`, { hint: 'Give column names separated by commas, e.g. --key id or --key user_id,item_id' })
  }
  return cols
}

/** --delimiter/--quote/--escape: one character; \t and "tab" name a TAB. */
export function parseCharFlag(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  const v = value === '\\t' || value.toLowerCase() === 'tab' ? '\t' : value
  if (v.length !== 1) throw new PgdvError(`--${flag} "${value}" must be one character`, { hint: `e.g. --${flag} ';' or --${flag} '\\t'` })
  return v
}

export type LoadSource = { kind: 'file'; file: string } | { kind: 'query'; query: string } | { kind: 'table'; table: string }

/** Exactly one of FILE, --from-query, --from-table. */
export function parseLoadSource(file: string | undefined, query: string | undefined, table: string | undefined): LoadSource {
  const given = [file !== undefined, query !== undefined, table !== undefined].filter(Boolean).length
  if (given !== 1) {
    throw new PgdvError(given === 0 ? 'nothing to commit: give a FILE, --from-query SQL or --from-table NAME' : 'give only one of FILE, --from-query and --from-table', {
      hint: 'e.g. pgdv commit flights flights.csv, or pgdv commit flights --from-query "SELECT * FROM staging.flights"',
    })
  }
  if (file !== undefined) return { kind: 'file', file }
  if (query !== undefined) return { kind: 'query', query }
  return { kind: 'table', table: table! }
}

/** --at "2024-05-01 12:00" (any Date.parse form; no zone = UTC) → Date. */
export function parseAt(flag: string | undefined): Date | undefined {
  if (flag === undefined) return undefined
  const iso = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(flag.trim()) ? `${flag.trim().replace(' ', 'T')}Z` : flag
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) {
    throw new PgdvError(`--at "${flag}" is not a date and time`, { hint: 'e.g. --at "2024-05-01 12:00" (UTC) or --at 2024-05-01T12:00:00+02:00' })
  }
  return d
}
