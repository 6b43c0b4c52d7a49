import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { createDataset } from '../src/api/datasets.js'
import { downstream, ingestEvents, ingestOpenLineageFile, upstream } from '../src/api/lineage.js'
import { runInputs } from '../src/api/runs.js'
import { splitJsonValues } from '../src/lineage/openlineage.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'
import { fakeCommit } from './helpers/lineage-versions.js'

let t: TestDatabase
let pgdv: Pgdv
let dir: string
let v1: string
let v2: string

const ev = (type: string, runId: string, time: string, extra: Record<string, unknown> = {}) => ({
  eventType: type,
  eventTime: time,
  producer: 'https://example.com/test',
  schemaURL: 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent',
  run: { runId },
  job: { namespace: 'airflow://prod', name: 'etl.clean_images' },
  ...extra,
})

async function runByExternal(id: string) {
  return pgdv.db.one<{ id: string; status: string; started_at: Date; finished_at: Date | null }>('SELECT id, status, started_at, finished_at FROM dv.runs WHERE external_id = $1', [id])
}

beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-ol-'))
  await createDataset(pgdv, { name: 'images' })
  v1 = await fakeCommit(pgdv.db.pool, 'images')
  v2 = await fakeCommit(pgdv.db.pool, 'images')
})
afterAll(async () => {
  await pgdv?.close()
  await t?.drop()
  await fs.rm(dir, { recursive: true, force: true })
})

describe('OpenLineage ingest', () => {
  it('maps runs, jobs, pgdv datasets (by name, @ref or version facet) and external datasets', async () => {
    const e = ev('START', 'run-a', '2026-01-01T10:00:00Z', {
      inputs: [
        { namespace: 'pgdv', name: `images@${v1}` },
        { namespace: 's3://raw-bucket', name: 'images/2026/01' },
      ],
      outputs: [{ namespace: 'warehouse', name: 'clean.images' }],
    })
    expect(await ingestEvents(pgdv, [e])).toEqual({ received: 1, ingested: 1, duplicates: 0 })
    await ingestEvents(pgdv, [ev('COMPLETE', 'run-a', '2026-01-01T10:05:00Z', { inputs: [{ namespace: 'pgdv', name: 'images', facets: { version: { datasetVersion: 'main' } } }] })])
    const run = await runByExternal('run-a')
    expect(run).toMatchObject({ status: 'succeeded' })
    expect(run.finished_at?.toISOString()).toBe('2026-01-01T10:05:00.000Z')
    expect((await runInputs(pgdv, run.id)).map((i) => i.version_id).sort()).toEqual([v1, v2].sort())
    const up = await upstream(pgdv, { kind: 'run', ref: 'run-a' })
    expect(up.map((r) => `${r.kind} ${r.name}`).sort()).toEqual(
      ['dataset_version images@v' + v1, 'dataset_version images@v' + v2, 'external_dataset s3://raw-bucket images/2026/01', 'job airflow://prod etl.clean_images', `dataset_version images@v${Number(v1) - 1}`]
        .sort(),
    )
    const down = await downstream(pgdv, { kind: 'external', ref: 's3://raw-bucket', name: 'images/2026/01' })
    expect(down.map((r) => r.name)).toEqual(['etl.clean_images #' + run.id, 'warehouse clean.images'])
    expect((await pgdv.db.query('SELECT 1 FROM dv.openlineage_events')).length).toBe(2)
  })

  it('is idempotent: the same event twice changes nothing', async () => {
    const inputs = [{ namespace: 'warehouse', name: 'x' }]
    const e = ev('START', 'run-b', '2026-01-02T10:00:00Z', { inputs })
    const count = async () => pgdv.db.one<{ e: string; r: string; l: string; n: string }>(
      'SELECT (SELECT count(*) FROM dv.openlineage_events) e, (SELECT count(*) FROM dv.runs) r, (SELECT count(*) FROM dv.lineage_edges) l, (SELECT count(*) FROM dv.lineage_nodes) n',
    )
    await ingestEvents(pgdv, [e])
    const before = await count()
    // Same content, keys in another order: the same event.
    const reordered = JSON.parse(JSON.stringify({ job: e.job, run: e.run, eventTime: e.eventTime, eventType: e.eventType, producer: e.producer, schemaURL: e.schemaURL, inputs }))
    expect(await ingestEvents(pgdv, [e, reordered])).toEqual({ received: 2, ingested: 0, duplicates: 2 })
    expect(await count()).toEqual(before)
  })

  it('ends COMPLETE when START arrives after COMPLETE; the later terminal event wins', async () => {
    await ingestEvents(pgdv, [ev('COMPLETE', 'run-c', '2026-01-03T10:05:00Z')])
    await ingestEvents(pgdv, [ev('START', 'run-c', '2026-01-03T10:00:00Z'), ev('RUNNING', 'run-c', '2026-01-03T10:01:00Z')])
    const c = await runByExternal('run-c')
    expect(c.status).toBe('succeeded')
    expect(c.started_at.toISOString()).toBe('2026-01-03T10:00:00.000Z')
    // In one batch, out of order.
    await ingestEvents(pgdv, [ev('FAIL', 'run-d', '2026-01-03T11:05:00Z'), ev('START', 'run-d', '2026-01-03T11:00:00Z')])
    expect((await runByExternal('run-d')).status).toBe('failed')
    await ingestEvents(pgdv, [ev('ABORT', 'run-d', '2026-01-03T11:00:30Z')]) // earlier than the FAIL
    expect((await runByExternal('run-d')).status).toBe('failed')
    await ingestEvents(pgdv, [ev('ABORT', 'run-e', '2026-01-03T12:00:00Z'), ev('OTHER', 'run-e', '2026-01-03T12:01:00Z')])
    expect((await runByExternal('run-e')).status).toBe('killed')
  })

  it('streams JSONL, pretty-printed objects and JSON arrays from files', async () => {
    const jsonl = path.join(dir, 'events.jsonl')
    await fs.writeFile(jsonl, [ev('START', 'run-f', '2026-01-04T10:00:00Z'), ev('COMPLETE', 'run-f', '2026-01-04T10:01:00Z')].map((e) => JSON.stringify(e)).join('\n') + '\n')
    expect(await ingestOpenLineageFile(pgdv, jsonl, { batchSize: 1 })).toMatchObject({ received: 2, ingested: 2, batches: 2 })
    expect((await runByExternal('run-f')).status).toBe('succeeded')
    const arr = path.join(dir, 'events.json')
    await fs.writeFile(arr, JSON.stringify([ev('START', 'run-g', '2026-01-04T11:00:00Z', { job: { namespace: 'x', name: 'has } and " in it' } })], null, 2))
    expect(await ingestOpenLineageFile(pgdv, arr)).toMatchObject({ received: 1, ingested: 1 })
    expect(await ingestOpenLineageFile(pgdv, jsonl)).toMatchObject({ received: 2, ingested: 0, duplicates: 2 })
  })

  it('splits JSON values across chunk boundaries with their start lines', async () => {
    const text = '{"a": "x}\\"{"}\n\n{\n  "b": [1, {"c": 2}]\n}\n'
    const chunks = text.match(/.{1,3}/gs)!
    const out = []
    for await (const v of splitJsonValues(Readable.from(chunks))) out.push(v)
    expect(out).toEqual([
      { line: 1, text: '{"a": "x}\\"{"}' },
      { line: 3, text: '{\n  "b": [1, {"c": 2}]\n}' },
    ])
  })

  it('refuses malformed events naming the line and field, and ingests nothing', async () => {
    const count = async () => (await pgdv.db.one<{ n: string }>('SELECT count(*) AS n FROM dv.openlineage_events')).n
    const before = await count()
    const file = path.join(dir, 'bad.jsonl')
    const good = JSON.stringify(ev('START', 'run-h', '2026-01-05T10:00:00Z'))
    const cases: [string, RegExp][] = [
      [`${good}\n${JSON.stringify({ ...ev('START', 'x', '2026-01-05T10:00:00Z'), run: {} })}\n`, /bad\.jsonl line 2: field "run\.runId" is missing or not a string/],
      [`${good}\n\n${JSON.stringify(ev('START', 'x', 'yesterday'))}\n`, /line 3: field "eventTime" is not an ISO 8601 time/],
      [`${good}\n${JSON.stringify(ev('BEGIN', 'x', '2026-01-05T10:00:00Z'))}\n`, /line 2: field "eventType" is "BEGIN"/],
      [`${good}\n${JSON.stringify(ev('START', 'x', '2026-01-05T10:00:00Z', { inputs: [{ namespace: 'a', name: 'b' }, { namespace: 'a' }] }))}\n`, /line 2: field "inputs\[1\]\.name" is missing/],
      [`${good}\n${JSON.stringify(ev('START', 'x', '2026-01-05T10:00:00Z', { inputs: [{ namespace: 'pgdv', name: 'images@nope' }] }))}\n`, /line 2: field "inputs\[0\]" names pgdv dataset images at "nope"/],
      [`${good}\n{"eventType": "START", "eventTime": }\n`, /line 2: invalid JSON/],
      [`${good}\n{"eventType": "START"\n`, /line 2: the event starting here is not closed/],
      [`${good}\n42\n`, /line 2: expected an OpenLineage event/],
    ]
    for (const [content, re] of cases) {
      await fs.writeFile(file, content)
      await expect(ingestOpenLineageFile(pgdv, file, { batchSize: 1 })).rejects.toThrow(re)
    }
    expect(await count()).toBe(before)
    await expect(pgdv.db.query(`SELECT * FROM dv.openlineage_ingest('{"eventTime": "2026-01-01T00:00:00Z"}')`)).rejects.toThrow(/OpenLineage event #1: field "run.runId"/)
    await expect(pgdv.db.query(`SELECT * FROM dv.openlineage_ingest_batch('{}')`)).rejects.toThrow(/must be a JSON array/)
    await expect(ingestOpenLineageFile(pgdv, path.join(dir, 'missing.jsonl'))).rejects.toThrow(/does not exist/)
  })
})
