// Lineage: resolve nodes as people write them, walk the graph (dv.lineage_* SQL
// functions), draw it, add edges by hand, and ingest OpenLineage events.

import { createReadStream } from 'node:fs'
import fs from 'node:fs/promises'
import { PgdvError, toPgdvError } from '../lib/errors.js'
import { parseEvent, splitJsonValues } from '../lineage/openlineage.js'
import { type GraphFormat, type LineageGraph, renderGraph } from '../lineage/render.js'
import type { Pgdv } from './client.js'

export type NodeKind = 'dataset_version' | 'run' | 'model_version' | 'job' | 'external_dataset'

export interface NodeRef {
  kind: NodeKind | 'model'
  id: string
  name: string
}

/** A node as typed on the command line: `run 17`, `dataset flights@v3`, `external NAMESPACE NAME`. */
export interface NodeSpec {
  kind: string
  ref: string
  name?: string
}

export interface WalkRow {
  kind: NodeKind
  id: string
  name: string
  depth: number
  relation: string
  /** kind:id keys from the start node to this one. */
  path: string[]
}

export interface ImpactRow {
  kind: 'run' | 'model_version'
  id: string
  name: string
  depth: number
  path: string[]
}

export interface PathStep {
  step: number
  kind: NodeKind
  id: string
  name: string
  relation: string | null
  direction: 'down' | 'up'
}

export interface EdgeInfo {
  src_kind: NodeKind
  src_id: string
  src_name: string
  relation: string
  dst_kind: NodeKind
  dst_id: string
  dst_name: string
  origin: 'auto' | 'manual' | 'openlineage'
  created_by: string
  created_at: Date
}

const TWO_PART = new Set(['external', 'external_dataset', 'external-dataset', 'job'])

/**
 * Reads one node from the front of args: KIND ID, or for external datasets and jobs
 * KIND NAMESPACE NAME (OpenLineage namespaces may contain "/" and ":", so they are a
 * word of their own). Returns the node and the arguments left over.
 */
export function parseNodeSpec(args: string[]): { spec: NodeSpec; rest: string[] } {
  const [kind, ref, ...more] = args
  const usage = 'Give a node as KIND ID: dataset flights@v3, run 17, model-version 42 (or resnet@production), model resnet, job NAMESPACE NAME, external NAMESPACE NAME'
  if (!kind || ref === undefined) throw new PgdvError(`a node needs a kind and an id, got "${args.join(' ')}"`, { hint: usage })
  if (TWO_PART.has(kind.toLowerCase())) {
    // `job 3` / `external 5` by id are accepted too, when nothing follows.
    if (more.length === 0) return { spec: { kind, ref }, rest: [] }
    return { spec: { kind, ref, name: more[0] }, rest: more.slice(1) }
  }
  return { spec: { kind, ref }, rest: more }
}

export async function resolveNode(pgdv: Pgdv, spec: NodeSpec): Promise<NodeRef> {
  return pgdv.db.one<NodeRef>('SELECT * FROM dv.lineage_node(p_kind => $1::text, p_ref => $2::text, p_name => $3::text)', [spec.kind, spec.ref, spec.name ?? null])
}

const asNode = async (pgdv: Pgdv, node: NodeRef | NodeSpec): Promise<NodeRef> => ('id' in node ? node : resolveNode(pgdv, node))

export async function upstream(pgdv: Pgdv, node: NodeRef | NodeSpec, maxDepth = 10): Promise<WalkRow[]> {
  const n = await asNode(pgdv, node)
  return pgdv.db.query<WalkRow>('SELECT * FROM dv.lineage_upstream(p_kind => $1::text, p_id => $2::bigint, p_max_depth => $3::int) ORDER BY depth, kind, id', [
    n.kind,
    n.id,
    maxDepth,
  ])
}

export async function downstream(pgdv: Pgdv, node: NodeRef | NodeSpec, maxDepth = 10): Promise<WalkRow[]> {
  const n = await asNode(pgdv, node)
  return pgdv.db.query<WalkRow>('SELECT * FROM dv.lineage_downstream(p_kind => $1::text, p_id => $2::bigint, p_max_depth => $3::int) ORDER BY depth, kind, id', [
    n.kind,
    n.id,
    maxDepth,
  ])
}

/** Every run and model version that depends on a dataset version (DATASET@REF), transitively. */
export async function impact(pgdv: Pgdv, datasetRef: string, maxDepth = 100): Promise<ImpactRow[]> {
  const at = datasetRef.indexOf('@')
  const dataset = at >= 0 ? datasetRef.slice(0, at) : datasetRef
  const ref = at >= 0 ? datasetRef.slice(at + 1) : 'main'
  return pgdv.db.query<ImpactRow>('SELECT * FROM dv.lineage_impact(p_dataset => $1::text, p_ref => $2::text, p_max_depth => $3::int)', [dataset, ref, maxDepth])
}

export async function lineagePath(pgdv: Pgdv, from: NodeRef | NodeSpec, to: NodeRef | NodeSpec, maxDepth = 50): Promise<PathStep[]> {
  const a = await asNode(pgdv, from)
  const b = await asNode(pgdv, to)
  return pgdv.db.query<PathStep>(
    'SELECT * FROM dv.lineage_path(p_from_kind => $1::text, p_from_id => $2::bigint, p_to_kind => $3::text, p_to_id => $4::bigint, p_max_depth => $5::int)',
    [a.kind, a.id, b.kind, b.id, maxDepth],
  )
}

export async function lineageGraph(pgdv: Pgdv, node: NodeRef | NodeSpec, depth = 3): Promise<LineageGraph> {
  const n = await asNode(pgdv, node)
  const row = await pgdv.db.one<{ g: LineageGraph }>('SELECT dv.lineage_graph(p_kind => $1::text, p_id => $2::bigint, p_depth => $3::int) AS g', [n.kind, n.id, depth])
  return row.g
}

export async function drawLineage(pgdv: Pgdv, node: NodeRef | NodeSpec, opts: { depth?: number; format?: GraphFormat } = {}): Promise<string> {
  return renderGraph(await lineageGraph(pgdv, node, opts.depth ?? 3), opts.format ?? 'mermaid')
}

export async function addEdge(pgdv: Pgdv, from: NodeRef | NodeSpec, to: NodeRef | NodeSpec, relation = 'derived_from'): Promise<EdgeInfo> {
  const a = await asNode(pgdv, from)
  const b = await asNode(pgdv, to)
  return pgdv.db.one<EdgeInfo>('SELECT * FROM dv.lineage_add(p_src_kind => $1::text, p_src_id => $2::bigint, p_dst_kind => $3::text, p_dst_id => $4::bigint, p_relation => $5::text)', [
    a.kind,
    a.id,
    b.kind,
    b.id,
    relation,
  ])
}

// ---------------------------------------------------------------------------
// OpenLineage
// ---------------------------------------------------------------------------

export interface IngestResult {
  file: string
  received: number
  ingested: number
  duplicates: number
  batches: number
}

export interface IngestOptions {
  /** Events per call of dv.openlineage_ingest_batch (default 1000). */
  batchSize?: number
  /** Called after each batch with the events read so far. */
  onProgress?: (events: number) => void
}

/** Ingests OpenLineage events (objects, not text) in one transaction. */
export async function ingestEvents(pgdv: Pgdv, events: unknown[]): Promise<Omit<IngestResult, 'file' | 'batches'>> {
  const row = await pgdv.db.one<{ received: number; ingested: number; duplicates: number }>('SELECT * FROM dv.openlineage_ingest_batch(p_events => $1::jsonb)', [JSON.stringify(events)])
  return row
}

/**
 * Streams a JSON / JSON Lines file of OpenLineage RunEvents into pgdv in batches, all in
 * one transaction: a bad event anywhere (its line and field named) leaves nothing ingested.
 */
export async function ingestOpenLineageFile(pgdv: Pgdv, file: string, opts: IngestOptions = {}): Promise<IngestResult> {
  const batchSize = opts.batchSize ?? 1000
  try {
    await fs.access(file)
  } catch {
    throw new PgdvError(`file ${file} does not exist or cannot be read`, { kind: 'not_found', hint: 'Give the path of a .json or .jsonl file of OpenLineage events' })
  }
  const result: IngestResult = { file, received: 0, ingested: 0, duplicates: 0, batches: 0 }
  await pgdv.db.tx(async (client) => {
    let texts: string[] = []
    let lines: number[] = []
    const send = async (batch: string[], batchLines: number[]) => {
      try {
        const { rows } = await client.query<{ received: number; ingested: number; duplicates: number }>('SELECT * FROM dv.openlineage_ingest_batch(p_events => $1::jsonb)', [
          `[${batch.join(',')}]`,
        ])
        result.received += rows[0].received
        result.ingested += rows[0].ingested
        result.duplicates += rows[0].duplicates
        result.batches++
        opts.onProgress?.(result.received)
      } catch (e) {
        const err = toPgdvError(e)
        const m = /^OpenLineage event #(\d+): (.*)$/s.exec(err.message)
        if (m) throw new PgdvError(`${file} line ${batchLines[Number(m[1]) - 1]}: ${m[2]}`, { hint: 'Fix that event; nothing was ingested', sqlstate: err.sqlstate })
        throw err
      }
    }
    // One batch in the database while the next is read and parsed here; never more,
    // so memory stays at two batches and the file is read no faster than it is stored.
    let inflight: Promise<void> | undefined
    const flush = async () => {
      if (texts.length === 0) return
      if (inflight) await inflight
      inflight = send(texts, lines)
      inflight.catch(() => {}) // awaited below; avoid an unhandled rejection meanwhile
      texts = []
      lines = []
    }
    for await (const ev of splitJsonValues(createReadStream(file, { encoding: 'utf8', highWaterMark: 256 * 1024 }), file)) {
      parseEvent(ev, file) // syntax, with the line
      texts.push(ev.text)
      lines.push(ev.line)
      if (texts.length >= batchSize) await flush()
    }
    await flush()
    if (inflight) await inflight
  })
  if (result.received === 0) throw new PgdvError(`${file} holds no OpenLineage events`, { hint: 'Give a JSON array of RunEvents or one event per line' })
  return result
}
