// Small pure parsers for the lineage commands' flags, kept out of the commands so they
// can be tested.

import { PgdvError } from '../lib/errors.js'

/** key=value pairs; values that parse as JSON (numbers, true, "quoted", [..]) keep their type, others are strings. */
export function parseParams(pairs: string[] | undefined, flag = '--param'): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const p of pairs ?? []) {
    const eq = p.indexOf('=')
    if (eq <= 0) throw new PgdvError(`${flag} "${p}" is not KEY=VALUE`, { hint: `e.g. ${flag} lr=0.01 ${flag} optimizer=adam` })
    const key = p.slice(0, eq).trim()
    const raw = p.slice(eq + 1)
    let value: unknown = raw
    try {
      value = JSON.parse(raw)
    } catch {
      value = raw
    }
    out[key] = value
  }
  return out
}

/** key=number pairs; anything that is not a finite number is refused, naming the key. */
export function parseMetrics(pairs: string[] | undefined, flag = '--metric'): Record<string, number> {
  const out: Record<string, number> = {}
  for (const p of pairs ?? []) {
    const eq = p.indexOf('=')
    if (eq <= 0) throw new PgdvError(`${flag} "${p}" is not KEY=NUMBER`, { hint: `e.g. ${flag} loss=0.31 ${flag} acc=0.92` })
    const key = p.slice(0, eq).trim()
    const raw = p.slice(eq + 1).trim()
    const n = raw === '' ? Number.NaN : Number(raw)
    if (!Number.isFinite(n)) throw new PgdvError(`metric "${key}" is not a number: "${raw}"`, { hint: `Metric values are numbers, e.g. ${flag} ${key}=0.31` })
    out[key] = n
  }
  return out
}

/** A JSON object flag (--params '{"lr":0.01}'). */
export function parseJsonObject(text: string | undefined, flag: string): Record<string, unknown> {
  if (text === undefined) return {}
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (e) {
    throw new PgdvError(`${flag} is not valid JSON: ${(e as Error).message}`, { hint: `e.g. ${flag} '{"lr": 0.01}'` })
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PgdvError(`${flag} must be a JSON object`, { hint: `e.g. ${flag} '{"lr": 0.01}'` })
  return v as Record<string, unknown>
}

/** A depth flag: a whole number from 0 to 1000. */
export function parseDepth(v: number | undefined, fallback: number): number {
  const d = v ?? fallback
  if (!Number.isInteger(d) || d < 0 || d > 1000) throw new PgdvError(`--depth ${d} is out of range`, { hint: 'Give a depth from 0 to 1000' })
  return d
}
