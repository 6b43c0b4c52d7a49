// Pictures of a lineage graph (the jsonb of dv.lineage_graph): Mermaid, Graphviz DOT,
// and SVG through Graphviz's `dot` when it is installed.

import { spawn } from 'node:child_process'
import { PgdvError } from '../lib/errors.js'

export interface GraphNode {
  key: string
  kind: string
  id: number | string
  name: string
  depth: number
}

export interface GraphEdge {
  from: string
  to: string
  relation: string
}

export interface LineageGraph {
  nodes: GraphNode[]
  edges: GraphEdge[]
}

export type GraphFormat = 'mermaid' | 'dot' | 'json' | 'svg'

const STYLE: Record<string, { fill: string; stroke: string; dot: string }> = {
  dataset_version: { fill: '#e3f2fd', stroke: '#1565c0', dot: 'cylinder' },
  run: { fill: '#fff3e0', stroke: '#ef6c00', dot: 'box' },
  model_version: { fill: '#e8f5e9', stroke: '#2e7d32', dot: 'hexagon' },
  job: { fill: '#f3e5f5', stroke: '#6a1b9a', dot: 'parallelogram' },
  external_dataset: { fill: '#eeeeee', stroke: '#616161', dot: 'cylinder' },
}

function mermaidId(key: string): string {
  return key.replace(/[^A-Za-z0-9_]/g, '_')
}

function mermaidLabel(text: string): string {
  // Inside "..." Mermaid takes entity codes; quotes and angle brackets would end or break the label.
  return text.replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;')
}

function mermaidShape(kind: string, label: string): string {
  const l = `"${mermaidLabel(label)}"`
  switch (kind) {
    case 'dataset_version':
    case 'external_dataset':
      return `[(${l})]`
    case 'model_version':
      return `{{${l}}}`
    case 'job':
      return `[/${l}/]`
    default:
      return `[${l}]`
  }
}

/** A Mermaid flowchart, left to right, one class per node kind; the start node is bold. */
export function toMermaid(g: LineageGraph): string {
  const lines = ['flowchart LR']
  for (const n of g.nodes) {
    lines.push(`  ${mermaidId(n.key)}${mermaidShape(n.kind, n.name)}:::${n.kind}`)
  }
  for (const e of g.edges) {
    lines.push(`  ${mermaidId(e.from)} -->|${mermaidLabel(e.relation).replace(/\|/g, '#124;')}| ${mermaidId(e.to)}`)
  }
  for (const [kind, s] of Object.entries(STYLE)) {
    if (g.nodes.some((n) => n.kind === kind)) lines.push(`  classDef ${kind} fill:${s.fill},stroke:${s.stroke}`)
  }
  const start = g.nodes.filter((n) => n.depth === 0).map((n) => mermaidId(n.key))
  if (start.length) lines.push(`  style ${start.join(',')} stroke-width:3px`)
  return `${lines.join('\n')}\n`
}

function dotString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`
}

/** Graphviz DOT, left to right, shapes and colours by node kind. */
export function toDot(g: LineageGraph): string {
  const lines = ['digraph lineage {', '  rankdir=LR;', '  node [fontname="Helvetica", style=filled];', '  edge [fontname="Helvetica", fontsize=10];']
  for (const n of g.nodes) {
    const s = STYLE[n.kind] ?? { fill: '#ffffff', stroke: '#000000', dot: 'box' }
    const attrs = [`label=${dotString(n.name)}`, `shape=${s.dot}`, `fillcolor=${dotString(s.fill)}`, `color=${dotString(s.stroke)}`]
    if (n.depth === 0) attrs.push('penwidth=3')
    lines.push(`  ${dotString(n.key)} [${attrs.join(', ')}];`)
  }
  for (const e of g.edges) lines.push(`  ${dotString(e.from)} -> ${dotString(e.to)} [label=${dotString(e.relation)}];`)
  lines.push('}')
  return `${lines.join('\n')}\n`
}

/** SVG from Graphviz's `dot`; a clear error when it is not installed. */
export async function toSvg(g: LineageGraph, dotBinary = 'dot'): Promise<string> {
  const src = toDot(g)
  return new Promise<string>((resolve, reject) => {
    const child = spawn(dotBinary, ['-Tsvg'], { stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(
          new PgdvError('--format svg needs Graphviz, and its `dot` program is not installed', {
            kind: 'unsupported',
            hint: 'Install Graphviz (e.g. apt-get install graphviz, brew install graphviz), or use --format dot or --format mermaid',
          }),
        )
      } else reject(e)
    })
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'))
      else reject(new PgdvError(`Graphviz dot failed (exit ${code}): ${Buffer.concat(err).toString('utf8').split('\n')[0]}`, { kind: 'internal' }))
    })
    child.stdin.on('error', () => {})
    child.stdin.end(src)
  })
}

export async function renderGraph(g: LineageGraph, format: GraphFormat): Promise<string> {
  switch (format) {
    case 'mermaid':
      return toMermaid(g)
    case 'dot':
      return toDot(g)
    case 'svg':
      return toSvg(g)
    default:
      return `${JSON.stringify(g, null, 2)}\n`
  }
}
