// Runs the TypeScript pipeline example of the README exactly as written (only the
// package import is pointed at the sources), then checks what it recorded.

import fs from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { createDataset } from '../src/api/datasets.js'
import { ingestEvents, lineageGraph, upstream } from '../src/api/lineage.js'
import { modelAliasHistory } from '../src/api/models.js'
import { createTag } from '../src/api/refs.js'
import { createExperiment, finishRun, logMetrics, startRun } from '../src/api/runs.js'
import { toMermaid } from '../src/lineage/render.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'
import { fakeCommit } from './helpers/lineage-versions.js'

const root = fileURLToPath(new URL('..', import.meta.url))
let t: TestDatabase
let pgdv: Pgdv

beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
  await createDataset(pgdv, { name: 'flights', keyColumns: ['id'] })
  await createDataset(pgdv, { name: 'airports' })
  await fakeCommit(pgdv.db.pool, 'flights')
  await createTag(pgdv, 'flights', 'v1.0')
  await fakeCommit(pgdv.db.pool, 'airports')
  await createExperiment(pgdv, { name: 'delays' })
})
afterAll(async () => {
  await pgdv?.close()
  await t?.drop()
})

describe('the README pipeline example', () => {
  it('runs as written and records the run, metrics, model and alias', async () => {
    const doc = await fs.readFile(path.join(root, 'README.md'), 'utf8')
    const m = /<!-- example:pipeline -->\n```ts\n([\s\S]*?)```/.exec(doc)
    expect(m).not.toBeNull()
    const code = m![1]
    expect(code.trim().split('\n').length).toBeLessThanOrEqual(10)
    const file = path.join(root, 'test', `.example-pipeline-${process.pid}.ts`)
    await fs.writeFile(file, code.replace("from 'pgdv'", `from ${JSON.stringify(pathToFileURL(path.join(root, 'src/index.ts')).href)}`))
    const env = { PGDV_DATABASE_URL: process.env.PGDV_DATABASE_URL, PGDV_HOME: process.env.PGDV_HOME }
    process.env.PGDV_DATABASE_URL = t.url
    process.env.PGDV_HOME = t.home
    try {
      await import(pathToFileURL(file).href)
    } finally {
      await fs.rm(file, { force: true })
      for (const [k, v] of Object.entries(env)) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    }
    const up = await upstream(pgdv, { kind: 'model_version', ref: 'delay-model@production' })
    expect(up.map((r) => r.kind).sort()).toEqual(['dataset_version', 'dataset_version', 'dataset_version', 'dataset_version', 'run'])
    const run = up.find((r) => r.kind === 'run')!
    const metrics = await pgdv.db.query<{ step: string; value: number }>('SELECT step, value FROM dv.run_metric_history($1::bigint, $2)', [run.id, 'loss'])
    expect(metrics.map((x) => [Number(x.step), x.value])).toEqual([[0, 0.9], [1, 0.5], [2, 0.3]])
    expect((await modelAliasHistory(pgdv, 'delay-model'))[0]).toMatchObject({ alias: 'production', action: 'promote', new_version: 1 })
  })

  it('draws the graph shown in the docs', async () => {
    // A cleaning job recorded from OpenLineage writes flights from raw files; a second
    // training run on newer data is promoted.
    const ev = (type: string, time: string) => ({
      eventType: type, eventTime: time, run: { runId: 'c0ffee00-0000-4000-8000-000000000001' }, job: { namespace: 'airflow://prod', name: 'clean_flights' },
      inputs: [{ namespace: 's3://raw', name: 'flights/2026-01' }], outputs: [{ namespace: 'pgdv', name: 'flights@v1.0' }],
    })
    await ingestEvents(pgdv, [ev('START', '2026-01-01T10:00:00Z'), ev('COMPLETE', '2026-01-01T10:05:00Z')])
    await fakeCommit(pgdv.db.pool, 'flights')
    const run = await startRun(pgdv, { experiment: 'delays', name: 'retrain', inputs: ['flights@main', 'airports'] })
    await logMetrics(pgdv, run.id, { loss: 0.25 })
    await finishRun(pgdv, run.id)
    await pgdv.db.query("SELECT * FROM dv.model_register('delay-model', p_run => $1::bigint, p_artifact_hash => repeat('b', 64))", [run.id])
    const g = await lineageGraph(pgdv, { kind: 'model', ref: 'delay-model' }, 4)
    const mermaid = toMermaid(g)
    expect(mermaid).toContain('clean_flights')
    if (process.env.PGDV_WRITE_DOCS_MERMAID) await fs.writeFile(process.env.PGDV_WRITE_DOCS_MERMAID, mermaid)
  })
})
