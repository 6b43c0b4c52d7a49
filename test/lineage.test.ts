import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { createDataset } from '../src/api/datasets.js'
import { addEdge, downstream, impact, lineageGraph, lineagePath, parseNodeSpec, resolveNode, upstream } from '../src/api/lineage.js'
import { registerModel } from '../src/api/models.js'
import { createExperiment, finishRun, startRun } from '../src/api/runs.js'
import { toDot, toMermaid } from '../src/lineage/render.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'
import { fakeCommit } from './helpers/lineage-versions.js'

let t: TestDatabase
let pgdv: Pgdv
const ids: Record<string, string> = {}

// raw@1 -> raw@2 ----------------------> clean (merge of raw@2 and labels@1)
//                  train run (clean, labels) -> model v1 -> eval run -> report@1
beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
  for (const name of ['raw', 'labels', 'clean', 'report']) await createDataset(pgdv, { name })
  ids.raw1 = await fakeCommit(pgdv.db.pool, 'raw')
  ids.raw2 = await fakeCommit(pgdv.db.pool, 'raw')
  ids.labels1 = await fakeCommit(pgdv.db.pool, 'labels')
  ids.clean1 = await fakeCommit(pgdv.db.pool, 'clean', { mergeParent: ids.raw2 })
  await createExperiment(pgdv, { name: 'exp' })
  const prep = await startRun(pgdv, { experiment: 'exp', name: 'prep', inputs: [`raw@${ids.raw2}`] })
  await finishRun(pgdv, prep.id, { outputs: ['clean@main'] })
  ids.prep = prep.id
  const train = await startRun(pgdv, { experiment: 'exp', name: 'train', inputs: ['clean', 'labels'] })
  ids.train = train.id
  ids.model1 = (await registerModel(pgdv, { model: 'resnet', run: train.id, artifactHash: 'a'.repeat(64) })).id
  await finishRun(pgdv, train.id)
  ids.report1 = await fakeCommit(pgdv.db.pool, 'report')
})
afterAll(async () => {
  await pgdv?.close()
  await t?.drop()
})

describe('automatic edges', () => {
  it('links parent versions (merge parents too), run inputs and outputs, and models', async () => {
    const edges = await pgdv.db.query<{ src_name: string; relation: string; dst_name: string }>('SELECT src_name, relation, dst_name FROM dv.lineage_edge_overview')
    const has = (a: string, r: string, b: string) => edges.some((e) => e.src_name === a && e.relation === r && e.dst_name === b)
    expect(has(`raw@v${ids.raw1}`, 'derived_from', `raw@v${ids.raw2}`)).toBe(true)
    expect(has(`raw@v${ids.raw2}`, 'derived_from', `clean@v${ids.clean1}`)).toBe(true)
    expect(has(`raw@v${ids.raw2}`, 'used_by', `prep #${ids.prep}`)).toBe(true)
    expect(has(`prep #${ids.prep}`, 'produced', `clean@v${ids.clean1}`)).toBe(true)
    expect(has(`labels@v${ids.labels1}`, 'used_by', `train #${ids.train}`)).toBe(true)
    expect(has(`train #${ids.train}`, 'produced', 'resnet v1')).toBe(true)
  })

  it('a pending version gets its edges when it is committed', async () => {
    const ds = await pgdv.db.one<{ id: string; head: string }>("SELECT d.id, r.version_id AS head FROM dv.datasets d JOIN dv.refs r ON r.dataset_id = d.id AND r.name = 'main' WHERE d.name = 'report'")
    const { id } = await pgdv.db.one<{ id: string }>("INSERT INTO dv.versions (dataset_id, parent_id, status) VALUES ($1, $2, 'pending') RETURNING id", [ds.id, ds.head])
    expect((await upstream(pgdv, { kind: 'dataset_version', id, name: '' })).length).toBe(0)
    await pgdv.db.query("UPDATE dv.versions SET status = 'committed', committed_at = now() WHERE id = $1", [id])
    expect((await upstream(pgdv, { kind: 'dataset_version', id, name: '' })).map((r) => r.id)).toContain(ds.head)
  })
})

describe('walks', () => {
  it('upstream of a model version reaches every ancestor once, with depth and path', async () => {
    const rows = await upstream(pgdv, { kind: 'model-version', ref: ids.model1 })
    const byKey = new Map(rows.map((r) => [`${r.kind}:${r.id}`, r]))
    expect(byKey.get(`run:${ids.train}`)).toMatchObject({ depth: 1, relation: 'produced' })
    expect(byKey.get(`dataset_version:${ids.clean1}`)?.depth).toBe(2)
    expect(byKey.get(`dataset_version:${ids.raw1}`)?.path).toEqual([`model_version:${ids.model1}`, `run:${ids.train}`, `dataset_version:${ids.clean1}`, `dataset_version:${ids.raw2}`, `dataset_version:${ids.raw1}`])
    // raw@2 is reachable by two paths (merge parent and via prep): reported once.
    expect(rows.filter((r) => r.id === ids.raw2 && r.kind === 'dataset_version')).toHaveLength(1)
    expect(new Set(rows.map((r) => `${r.kind}:${r.id}`)).size).toBe(rows.length)
    expect((await upstream(pgdv, { kind: 'model_version', ref: ids.model1 }, 1)).map((r) => r.kind)).toEqual(['run'])
  })

  it('downstream and impact follow derived versions and run outputs transitively', async () => {
    const down = await downstream(pgdv, { kind: 'dataset', ref: `raw@${ids.raw1}` })
    expect(down.map((r) => r.name)).toContain('resnet v1')
    const imp = await impact(pgdv, `raw@${ids.raw1}`)
    expect(imp.map((r) => r.kind).sort()).toEqual(['model_version', 'run', 'run'])
    const model = imp.find((r) => r.kind === 'model_version')!
    expect(model.path[0]).toBe(`dataset_version:${ids.raw1}`)
    expect(model.path.at(-1)).toBe(`model_version:${ids.model1}`)
    expect(await impact(pgdv, 'report')).toEqual([])
  })

  it('is cycle-safe: an edge added by hand that closes a loop ends the walk', async () => {
    await addEdge(pgdv, { kind: 'model-version', ref: ids.model1 }, { kind: 'dataset', ref: `raw@${ids.raw1}` }, 'feedback')
    const down = await downstream(pgdv, { kind: 'dataset', ref: `raw@${ids.raw1}` }, 1000)
    expect(new Set(down.map((r) => `${r.kind}:${r.id}`)).size).toBe(down.length)
    expect(down.some((r) => r.kind === 'dataset_version' && r.id === ids.raw1)).toBe(false)
    await pgdv.db.query("DELETE FROM dv.lineage_edges WHERE relation = 'feedback'")
  })

  it('finds a shortest path either way, and nothing between unconnected nodes', async () => {
    const steps = await lineagePath(pgdv, { kind: 'dataset', ref: `raw@${ids.raw1}` }, { kind: 'model_version', ref: ids.model1 })
    expect(steps.map((s) => s.kind)).toEqual(['dataset_version', 'dataset_version', 'dataset_version', 'run', 'model_version'])
    expect(steps.map((s) => s.relation)).toEqual([null, 'derived_from', 'derived_from', 'used_by', 'produced'])
    expect(steps[0].direction).toBe('down')
    const up = await lineagePath(pgdv, { kind: 'model_version', ref: ids.model1 }, { kind: 'dataset', ref: `labels@${ids.labels1}` })
    expect(up.map((s) => s.kind)).toEqual(['model_version', 'run', 'dataset_version'])
    expect(up[0].direction).toBe('up')
    expect(await lineagePath(pgdv, { kind: 'dataset', ref: 'report' }, { kind: 'model_version', ref: ids.model1 })).toEqual([])
  })

  it('draws a graph of a model as jsonb, Mermaid and DOT', async () => {
    const g = await lineageGraph(pgdv, { kind: 'model', ref: 'resnet' }, 2)
    expect(g.nodes.find((n) => n.depth === 0)).toMatchObject({ kind: 'model_version', name: 'resnet v1' })
    expect(g.edges).toContainEqual({ from: `run:${ids.train}`, to: `model_version:${ids.model1}`, relation: 'produced' })
    const keys = new Set(g.nodes.map((n) => n.key))
    for (const e of g.edges) expect(keys.has(e.from) && keys.has(e.to)).toBe(true)
    const mermaid = toMermaid(g)
    expect(mermaid).toMatch(/^flowchart LR\n/)
    expect(mermaid).toContain(`run_${ids.train} -->|produced| model_version_${ids.model1}`)
    expect(toDot(g)).toContain(`"run:${ids.train}" -> "model_version:${ids.model1}" [label="produced"]`)
    // A node without edges is a one-node graph.
    await createDataset(pgdv, { name: 'lonely' })
    const lone = await lineageGraph(pgdv, { kind: 'dataset', ref: 'lonely' })
    expect(lone.nodes).toHaveLength(1)
  })
})

describe('nodes and bad input', () => {
  it('parses KIND ID and external NAMESPACE NAME', () => {
    expect(parseNodeSpec(['run', '17'])).toEqual({ spec: { kind: 'run', ref: '17' }, rest: [] })
    expect(parseNodeSpec(['external', 's3://bucket', 'raw/images', 'run', '3'])).toEqual({ spec: { kind: 'external', ref: 's3://bucket', name: 'raw/images' }, rest: ['run', '3'] })
    expect(() => parseNodeSpec(['run'])).toThrow(/needs a kind and an id/)
  })

  it('resolves names and refuses unknown nodes, refs and kinds with one line', async () => {
    expect(await resolveNode(pgdv, { kind: 'model-version', ref: 'resnet@latest' })).toMatchObject({ kind: 'model_version', id: ids.model1 })
    expect(await resolveNode(pgdv, { kind: 'dataset', ref: 'raw' })).toMatchObject({ kind: 'dataset_version', id: ids.raw2, name: `raw@v${ids.raw2}` })
    await expect(resolveNode(pgdv, { kind: 'run', ref: '99999' })).rejects.toThrow(/run "99999" does not exist/)
    await expect(resolveNode(pgdv, { kind: 'dataset', ref: 'raw@nope' })).rejects.toThrow(/ref "nope" of dataset "raw" does not exist/)
    await expect(resolveNode(pgdv, { kind: 'planet', ref: '1' })).rejects.toThrow(/node kind "planet" is not known/)
    await expect(resolveNode(pgdv, { kind: 'external', ref: 'warehouse', name: 'nope' })).rejects.toThrow(/external dataset "warehouse nope" does not exist/)
    await expect(pgdv.db.query("SELECT * FROM dv.lineage_upstream('run', 99999)")).rejects.toThrow(/run 99999 does not exist/)
    await expect(pgdv.db.query(`SELECT * FROM dv.lineage_upstream('run', ${ids.train}, -1)`)).rejects.toThrow(/depth -1 is out of range/)
    await expect(pgdv.db.query(`SELECT * FROM dv.lineage_add('run', ${ids.train}, 'run', ${ids.train})`)).rejects.toThrow(/to itself/)
    await expect(pgdv.db.query(`SELECT * FROM dv.lineage_add('run', ${ids.train}, 'run', 424242)`)).rejects.toThrow(/run 424242 does not exist/)
  })

  it('adds edges by hand to external datasets, idempotently', async () => {
    await pgdv.db.query("SELECT dv.external_dataset_id('warehouse', 'raw.images', true)")
    const e = await addEdge(pgdv, { kind: 'external', ref: 'warehouse', name: 'raw.images' }, { kind: 'dataset', ref: `raw@${ids.raw1}` }, 'copied_to')
    expect(e).toMatchObject({ src_kind: 'external_dataset', src_name: 'warehouse raw.images', relation: 'copied_to', origin: 'manual' })
    await addEdge(pgdv, { kind: 'external', ref: 'warehouse', name: 'raw.images' }, { kind: 'dataset', ref: `raw@${ids.raw1}` }, 'copied_to')
    const down = await downstream(pgdv, { kind: 'external', ref: 'warehouse', name: 'raw.images' })
    expect(down.map((r) => r.name)).toContain('resnet v1')
    expect((await pgdv.db.query("SELECT 1 FROM dv.lineage_edges WHERE relation = 'copied_to'")).length).toBe(1)
  })
})

describe('large walks', () => {
  // Levels of thousands of nodes, returned level by level: each node once, at its
  // shortest depth, with a path from the start, cross edges and cycles ended.
  it('walks a wide graph with cross edges and a cycle, each node once', async () => {
    const q = (sql: string) => pgdv.db.pool.query(sql)
    await q(`SELECT dv_internal.lineage_link('job', array_fill(990001::bigint, ARRAY[2500]), 'run', array_agg(r), 'ran') FROM generate_series(900001, 902500) r`)
    await q(`SELECT dv_internal.lineage_link('run', array_agg(r), 'external_dataset', array_agg(r), 'produced') FROM generate_series(900001, 902500) r`)
    await q(`SELECT dv_internal.lineage_link('external_dataset', array_agg(r), 'run', array_agg(900001 + (r + 1) % 2500), 'used_by') FROM generate_series(900001, 902500) r`)
    await q(`SELECT dv_internal.lineage_link('run', ARRAY[900001::bigint], 'job', ARRAY[990001::bigint], 'ran')`)
    const { rows } = await q(`SELECT w.kind, w.ref_id::int AS ref, w.depth, w.path
      FROM dv_internal.lineage_walk((SELECT array_agg(id) FROM dv.lineage_nodes WHERE kind = 'job' AND ref_id = 990001), true, 10) w`)
    expect(rows).toHaveLength(5000)
    expect(new Set(rows.map((r) => `${r.kind}:${r.ref}`)).size).toBe(5000)
    for (const r of rows) {
      expect(r.depth).toBe(r.kind === 'run' ? 1 : 2)
      const path = (r.path as string).split('>')
      expect(path).toHaveLength(r.depth + 1)
      expect(path[0]).toBe('job:990001')
      expect(path.at(-1)).toBe(`${r.kind}:${r.ref}`)
      if (r.kind === 'external_dataset') expect(path[1]).toBe(`run:${r.ref}`)
    }
  })
})
