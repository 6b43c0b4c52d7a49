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
