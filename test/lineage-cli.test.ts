// The lineage commands end to end, as a user types them, with --json and without.

import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { createDataset } from '../src/api/datasets.js'
import { cli } from './helpers/cli.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'
import { fakeCommit } from './helpers/lineage-versions.js'
import { commitRows } from './helpers/versions.js'

let t: TestDatabase
let pgdv: Pgdv
let conn: { url: string; home: string }
let dir: string
let v1: string

beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
  conn = { url: t.url, home: t.home }
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-cli-lineage-'))
  await createDataset(pgdv, { name: 'flights' })
  v1 = await fakeCommit(pgdv.db.pool, 'flights')
})
afterAll(async () => {
  await pgdv?.close()
  await t?.drop()
  await fs.rm(dir, { recursive: true, force: true })
})

const ok = async <T>(args: string[]) => {
  const r = await cli<T>(args, conn)
  if (r.exitCode !== 0) throw new Error(`pgdv ${args.join(' ')} failed: ${r.stderr || r.stdout}`)
  return r
}

describe('pgdv experiment / run / model / lineage', () => {
  let run1: string
  let run2: string

  it('creates experiments and runs, logs metrics, finishes, shows, lists and compares', async () => {
    await ok(['experiment', 'create', 'delays', '-d', 'predict delays'])
    expect((await ok<{ name: string }[]>(['experiment', 'list', '--json'])).json?.map((e) => e.name)).toEqual(['delays'])
    const r1 = await ok<{ id: string; inputs: string }>(['run', 'start', '-e', 'delays', '--name', 'train', '-i', 'flights@main', '--param', 'lr=0.1', '--param', 'opt=adam', '--json'])
    run1 = r1.json!.id
    expect(r1.json?.inputs).toBe('1')
    await ok(['run', 'log', run1, '--metric', 'loss=0.5', '--metric', 'acc=0.8'])
    await ok(['run', 'log', run1, '-m', 'loss=0.3', '--step', '5'])
    const fin = await ok<{ status: string }>(['run', 'finish', run1, '--json'])
    expect(fin.json?.status).toBe('succeeded')
    run2 = (await ok<{ id: string }>(['run', 'start', '-e', 'delays', '-i', `flights@${v1}`, '--params', '{"lr":0.01}', '--json'])).json!.id
    const show = await ok(['run', 'show', run1])
    expect(show.stdout).toContain('status     succeeded')
    expect(show.stdout).toMatch(/flights\s+main\s+\d+\s+[0-9a-f]{64}/)
    const list = await ok<{ id: string }[]>(['run', 'list', '-e', 'delays', '--json'])
    expect(list.json?.map((r) => r.id)).toEqual([run2, run1])
    const cmp = await ok(['run', 'compare', run1, run2])
    expect(cmp.stdout).toMatch(/param\s+lr\s+0\.1\s+0\.01\s+\*/)
  })

  it('refuses a second finish and non-numeric metrics with one line and a non-zero exit', async () => {
    const again = await cli(['run', 'finish', run1], conn)
    expect(again.exitCode).toBe(1)
    expect(again.stderr.trim().split('\n')).toHaveLength(1)
    expect(again.stderr).toMatch(/already finished \(succeeded/)
    const bad = await cli(['run', 'log', run2, '--metric', 'loss=high'], conn)
    expect(bad.exitCode).not.toBe(0)
    expect(bad.stderr).toMatch(/metric "loss" is not a number: "high"/)
    const unknown = await cli(['run', 'show', '99999', '--json'], conn)
    expect(unknown.exitCode).toBe(1)
    expect((unknown.json as { error: { message: string } }).error.message).toMatch(/run 99999 does not exist/)
  })

  it('reproduces a run from its pinned inputs through the real checkouts', async () => {
    await commitRows(pgdv, 'labels', [{ id: 1, label: 'cat' }, { id: 2, label: 'dog' }], { columns: 'id int, label text', create: { key: ['id'] } })
    const run = (await ok<{ id: string }>(['run', 'start', '-e', 'delays', '-i', 'labels', '--json'])).json!.id
    await commitRows(pgdv, 'labels', [{ id: 3, label: 'fox' }], { mode: 'append' })
    const out = path.join(dir, 'repro')
    const r = await ok<{ inputs: { verified: string }[] }>(['run', 'reproduce', run, '--out', out, '--json'])
    expect(r.json?.inputs.map((i) => i.verified)).toEqual(['ok'])
    expect((await fs.readFile(path.join(out, 'labels.csv'), 'utf8')).trim().split('\n')).toHaveLength(3) // header + the 2 pinned rows
    const again = await cli(['run', 'reproduce', run, '--out', out], conn)
    expect(again.exitCode).toBe(1)
    expect(again.stderr).toMatch(/is not empty/)
  })

  it('registers, promotes, rolls back and shows models', async () => {
    const a = await ok<{ id: string; version: number }>(['model', 'register', 'delay-model', '--run', run1, '--artifact-hash', 'a'.repeat(64), '--artifact-uri', 's3://m/1', '--json'])
    expect(a.json?.version).toBe(1)
    await ok(['model', 'register', 'delay-model', '--run', run1, '--metric', 'acc=0.9'])
    await ok(['model', 'promote', 'delay-model', 'production', '1'])
    const p = await ok<{ version: number }>(['model', 'promote', 'delay-model', 'production', 'latest', '--reason', 'better', '--json'])
    expect(p.json?.version).toBe(2)
    const rb = await ok<{ version: number }>(['model', 'rollback', 'delay-model', 'production', '--json'])
    expect(rb.json?.version).toBe(1)
    const show = await ok<{ alias_history: { action: string }[] }>(['model', 'show', 'delay-model', '--json'])
    expect(show.json?.alias_history.map((h) => h.action)).toEqual(['rollback', 'promote', 'promote'])
    expect((await ok(['model', 'list'])).stdout).toContain('{"production":1}')
    await ok(['model', 'register', 'other', '--artifact-hash', 'b'.repeat(64)])
    const other = (await ok<{ id: string }>(['model', 'register', 'other', '--json'])).json!.id
    const cross = await cli(['model', 'promote', 'delay-model', 'staging', '--id', other], conn)
    expect(cross.exitCode).toBe(2) // a usage error
    expect(cross.stderr).toMatch(/belongs to model "other", not "delay-model"/)
  })

  it('walks and draws the graph with nodes given as KIND ID', async () => {
    const up = await ok<{ nodes: { kind: string; name: string }[] }>(['lineage', 'up', 'model-version', 'delay-model@production', '--json'])
    expect(up.json?.nodes.map((n) => n.kind)).toEqual(['run', 'dataset_version', 'dataset_version'])
    const text = await ok(['lineage', 'up', 'model-version', 'delay-model@1'])
    expect(text.stdout).toContain(`delay-model v1 → train #${run1} → flights@v${v1}`)
    const down = await ok<{ nodes: { name: string }[] }>(['lineage', 'down', 'dataset', `flights@${v1}`, '--depth', '1', '--json'])
    expect(down.json?.nodes.map((n) => n.name).sort()).toEqual([`run #${run2}`, `train #${run1}`])
    const imp = await ok<{ impacted: { kind: string }[] }>(['lineage', 'impact', `flights@${v1}`, '--json'])
    expect(imp.json?.impacted.filter((r) => r.kind === 'model_version')).toHaveLength(2)
    const p = await ok<{ steps: { kind: string }[] }>(['lineage', 'path', 'dataset', `flights@${v1}`, 'model-version', 'delay-model@2', '--json'])
    expect(p.json?.steps.map((s) => s.kind)).toEqual(['dataset_version', 'run', 'model_version'])
    const mermaid = await ok(['lineage', 'graph', 'model', 'delay-model', '--format', 'mermaid'])
    expect(mermaid.stdout).toMatch(/^flowchart LR/)
    const dot = await ok(['lineage', 'graph', 'run', run1, '--format', 'dot', '--out', path.join(dir, 'g.dot')])
    expect(dot.stdout).toMatch(/wrote \d+ node\(s\)/)
    expect(await fs.readFile(path.join(dir, 'g.dot'), 'utf8')).toMatch(/^digraph lineage \{/)
    const json = await ok<{ nodes: unknown[]; edges: unknown[] }>(['lineage', 'graph', 'run', run1, '--json'])
    expect(json.json?.edges.length).toBeGreaterThan(0)
    const svg = await cli(['lineage', 'graph', 'run', run1, '--format', 'svg'], conn)
    if (svg.exitCode === 0) expect(svg.stdout).toContain('<svg')
    else expect(svg.stderr).toMatch(/Graphviz.*not installed/)
  })

  it('adds edges by hand and ingests OpenLineage files', async () => {
    const file = path.join(dir, 'ol.jsonl')
    const e = (type: string, time: string) => ({
      eventType: type, eventTime: time, run: { runId: 'ol-1' }, job: { namespace: 'airflow://prod', name: 'copy' },
      inputs: [{ namespace: 's3://bucket', name: 'raw/images' }], outputs: [{ namespace: 'pgdv', name: 'flights' }],
    })
    await fs.writeFile(file, `${JSON.stringify(e('START', '2026-01-01T00:00:00Z'))}\n${JSON.stringify(e('COMPLETE', '2026-01-01T00:01:00Z'))}\n`)
    const r = await ok<{ ingested: number }>(['lineage', 'ingest', file, '--json'])
    expect(r.json?.ingested).toBe(2)
    const down = await ok<{ nodes: { kind: string }[] }>(['lineage', 'down', 'external', 's3://bucket', 'raw/images', '--json'])
    expect(down.json?.nodes.map((n) => n.kind)).toContain('dataset_version')
    const add = await ok<{ relation: string }>(['lineage', 'add', 'external', 's3://bucket', 'raw/images', 'run', run2, '--relation', 'sampled_by', '--json'])
    expect(add.json?.relation).toBe('sampled_by')
    await fs.writeFile(file, `${JSON.stringify(e('START', '2026-01-01T00:00:00Z'))}\n{"eventType": "START", "eventTime": "2026-01-01T00:00:00Z", "job": {"namespace": "a", "name": "b"}}\n`)
    const bad = await cli(['lineage', 'ingest', file], conn)
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr).toMatch(/ol\.jsonl line 2: field "run\.runId" is missing/)
    const badNode = await cli(['lineage', 'up', 'planet', '3'], conn)
    expect(badNode.stderr).toMatch(/node kind "planet" is not known/)
  })
})
