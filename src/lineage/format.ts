// Text output of lineage walks for the CLI (the --json output is the rows themselves).

import type { ImpactRow, NodeRef, WalkRow } from '../api/lineage.js'
import { formatTable } from '../lib/base.js'

/** Paths as display names: a → b → c. */
export function namedPath(path: string[], names: Map<string, string>): string {
  return path.map((k) => names.get(k) ?? k).join(' → ')
}

export function nameMap(start: NodeRef, rows: (WalkRow | ImpactRow)[]): Map<string, string> {
  const m = new Map<string, string>([[`${start.kind}:${start.id}`, start.name]])
  for (const r of rows) m.set(`${r.kind}:${r.id}`, r.name)
  return m
}

export function formatWalk(start: NodeRef, rows: (WalkRow | ImpactRow)[], direction: string): string {
  if (rows.length === 0) return `${start.name} (${start.kind} ${start.id}) has nothing ${direction}`
  const names = nameMap(start, rows)
  const table = rows.map((r) => ({ depth: r.depth, kind: r.kind, id: r.id, name: r.name, path: namedPath(r.path, names) }))
  return `${direction} of ${start.name} (${start.kind} ${start.id}): ${rows.length} node(s)\n${formatTable(table, ['depth', 'kind', 'id', 'name', 'path'])}`
}
