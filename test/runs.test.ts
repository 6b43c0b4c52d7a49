import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { createDataset } from '../src/api/datasets.js'
import { createTag } from '../src/api/refs.js'
import {
  compareRuns, createExperiment, finishRun, listExperiments, listRuns, logMetrics, logParams, logRun, reproduceRun, runInputs, showRun, startRun,
} from '../src/api/runs.js'
import type { CheckoutFilesInput, CheckoutTableInput } from '../src/lineage/checkout.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'
import { fakeCommit } from './helpers/lineage-versions.js'

let t: TestDatabase
let pgdv: Pgdv
let v1: string
let v2: string

beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
  await createDataset(pgdv, { name: 'flights', keyColumns: ['id'] })
  await createDataset(pgdv, { name: 'images', kind: 'files' })
  v1 = await fakeCommit(pgdv.db.pool, 'flights')
  await createTag(pgdv, 'flights', 'v1.0')
  v2 = await fakeCommit(pgdv.db.pool, 'flights')
  await fakeCommit(pgdv.db.pool, 'images')
  await createExperiment(pgdv, { name: 'delays', description: 'predict delays', tags: ['team:ops'] })
})
afterAll(async () => {
  await pgdv?.close()
  await t?.drop()
})

describe('experiments', () => {
  it('creates, lists and refuses duplicates and bad names', async () => {
    expect((await listExperiments(pgdv)).map((e) => e.name)).toEqual(['delays'])
    await expect(createExperiment(pgdv, { name: 'delays' })).rejects.toThrow(/experiment "delays" already exists/)
    await expect(createExperiment(pgdv, { name: 'a@b' })).rejects.toThrow(/not allowed/)
  })
})

describe('runs', () => {
  it('pins inputs at start: a ref becomes the exact version id and content hash', async () => {
    const run = await startRun(pgdv, { experiment: 'delays', name: 'train', params: { lr: 0.01, layers: [64, 32] }, inputs: ['flights@v1.0', 'images'], codeRef: 'abc123', tags: ['baseline'] })
    expect(run).toMatchObject({ status: 'running', experiment: 'delays', name: 'train', code_ref: 'abc123', inputs: '2', tags: ['baseline'] })
    const inputs = await runInputs(pgdv, run.id)
    const hashes = await pgdv.db.query<{ id: string; content_hash: string }>('SELECT id, content_hash FROM dv.versions WHERE id = ANY($1::bigint[])', [[v1]])
    expect(inputs.find((i) => i.dataset === 'flights')).toMatchObject({ ref: 'v1.0', version_id: v1, content_hash: hashes[0].content_hash, dataset_kind: 'table' })
    expect(inputs.find((i) => i.dataset === 'images')).toMatchObject({ ref: 'main', dataset_kind: 'files' })
    // Moving main later changes nothing about what the run read.
    await fakeCommit(pgdv.db.pool, 'images')
    expect((await runInputs(pgdv, run.id)).map((i) => i.version_id)).toEqual(inputs.map((i) => i.version_id))
    await finishRun(pgdv, run.id)
  })

  it('keeps metric history per step, auto-numbers steps, merges params', async () => {
    const run = await startRun(pgdv, { experiment: 'delays', inputs: ['flights@main'] })
    await logMetrics(pgdv, run.id, { loss: 0.9, acc: 0.5 })
    await logMetrics(pgdv, run.id, { loss: 0.5 })
    await logMetrics(pgdv, run.id, { loss: 0.3 }, 10)
    await logParams(pgdv, run.id, { epochs: 3 })
    const d = await showRun(pgdv, run.id)
    expect(d.metrics).toEqual({ loss: 0.3, acc: 0.5 })
    expect(d.metric_history.filter((m) => m.key === 'loss').map((m) => [Number(m.step), m.value])).toEqual([[0, 0.9], [1, 0.5], [10, 0.3]])
    expect(d.params).toEqual({ epochs: 3 })
    expect(d.input_versions[0]).toMatchObject({ dataset: 'flights', version_id: v2 })
  })

  it('finishes exactly once, with outputs pinned', async () => {
    const run = await startRun(pgdv, { experiment: 'delays', inputs: ['flights@v1.0'] })
    const done = await finishRun(pgdv, run.id, { status: 'failed', note: 'OOM', outputs: ['images@main'] })
    expect(done).toMatchObject({ status: 'failed', note: 'OOM', outputs: '1' })
    expect(done.finished_at).toBeInstanceOf(Date)
    await expect(finishRun(pgdv, run.id)).rejects.toThrow(new RegExp(`run ${run.id} already finished \\(failed`))
    await expect(logMetrics(pgdv, run.id, { loss: 1 })).rejects.toThrow(/already finished/)
    expect((await showRun(pgdv, run.id)).status).toBe('failed')
    await expect(finishRun(pgdv, run.id + '0', {})).rejects.toThrow(/run \d+ does not exist/)
  })

  it('refuses bad input with one clear line and leaves nothing behind', async () => {
    const before = await listRuns(pgdv)
    await expect(startRun(pgdv, { experiment: 'nope' })).rejects.toThrow(/experiment "nope" does not exist/)
    await expect(startRun(pgdv, { experiment: 'delays', inputs: ['flights@nope'] })).rejects.toThrow(/ref "nope" of dataset "flights" does not exist/)
    await expect(startRun(pgdv, { experiment: 'delays', inputs: ['ghost@main'] })).rejects.toThrow(/dataset "ghost" does not exist/)
    expect((await listRuns(pgdv)).length).toBe(before.length)

    const run = await startRun(pgdv, { experiment: 'delays' })
    await expect(logMetrics(pgdv, run.id, { loss: 'high' as unknown as number })).rejects.toThrow(/metric "loss" of run \d+ is not a number/)
    // The SQL function checks too (psql users), and nothing of the call is stored.
    await expect(pgdv.db.query(`SELECT * FROM dv.run_log_metrics(${run.id}, '{"ok": 1, "bad": "x"}')`)).rejects.toThrow(/metric "bad" of run \d+ is not a number/)
    await expect(logRun(pgdv, run.id, { metrics: { ok: 1 }, inputs: ['flights@nope'] })).rejects.toThrow(/does not exist/)
    expect((await showRun(pgdv, run.id)).metric_history).toEqual([])
    await expect(finishRun(pgdv, run.id, { status: 'done' as 'succeeded' })).rejects.toThrow(/not a final status/)
    await expect(showRun(pgdv, 999999)).rejects.toThrow(/run 999999 does not exist/)
  })

  it('compares two runs side by side', async () => {
    const a = await startRun(pgdv, { experiment: 'delays', params: { lr: 0.1, bs: 32 }, inputs: ['flights@v1.0'] })
    const b = await startRun(pgdv, { experiment: 'delays', params: { lr: 0.01, bs: 32 }, inputs: ['flights@main'] })
    await logMetrics(pgdv, a.id, { acc: 0.8 })
    await logMetrics(pgdv, b.id, { acc: 0.85 })
    const rows = await compareRuns(pgdv, a.id, b.id)
    expect(rows.find((r) => r.section === 'param' && r.key === 'lr')).toMatchObject({ a: '0.1', b: '0.01', same: false })
    expect(rows.find((r) => r.section === 'param' && r.key === 'bs')).toMatchObject({ same: true })
    expect(rows.find((r) => r.section === 'metric' && r.key === 'acc')).toMatchObject({ a: '0.8', b: '0.85', same: false })
    expect(rows.find((r) => r.section === 'input' && r.key === 'flights')).toMatchObject({ a: `v${v1}`, b: `v${v2}`, same: false })
  })
})

describe('reproduce', () => {
  it('checks out exactly the pinned versions through the injected checkouts and writes a manifest', async () => {
    const run = await startRun(pgdv, { experiment: 'delays', inputs: ['flights@v1.0', 'images@main'] })
    await fakeCommit(pgdv.db.pool, 'flights') // main moves on; the run still reads v1.0
    const out = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-repro-'))
    const calls: (CheckoutTableInput | CheckoutFilesInput)[] = []
    const pinned = await runInputs(pgdv, run.id)
    const r = await reproduceRun(pgdv, run.id, {
      out,
      force: true,
      checkouts: {
        checkoutTable: async (_p, input) => {
          calls.push(input)
          await fs.writeFile(input.out, `rows of ${input.dataset}@${input.ref}\n`)
          return { contentHash: pinned.find((i) => i.dataset === input.dataset)!.content_hash! }
        },
        checkoutFiles: async (_p, input) => {
          calls.push(input)
          await fs.mkdir(input.out, { recursive: true })
          await fs.writeFile(path.join(input.out, 'a.jpg'), 'jpg')
        },
      },
    })
    expect(calls.map((c) => [c.dataset, c.ref])).toEqual(pinned.map((i) => [i.dataset, i.version_id]))
    expect(calls[0]).toMatchObject({ format: 'csv', ref: v1 })
    expect(r.inputs.map((i) => i.verified)).toEqual(['ok', 'catalog-only'])
    const manifest = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8'))
    expect(manifest.pgdv_run).toBe(run.id)
    expect(manifest.inputs[0]).toMatchObject({ dataset: 'flights', version_id: v1, content_hash: pinned[0].content_hash, path: 'flights.csv' })
    expect(manifest.inputs[0].file_sha256).toMatch(/^[0-9a-f]{64}$/)

    // A checkout that reports another hash is an integrity error.
    await expect(
      reproduceRun(pgdv, run.id, { out, force: true, checkouts: { checkoutTable: async () => ({ contentHash: 'f'.repeat(64) }), checkoutFiles: async () => undefined } }),
    ).rejects.toThrow(/produced content hash f+, expected/)
    await fs.rm(out, { recursive: true, force: true })
  })

  it('says clearly when a checkout is not wired, before writing anything', async () => {
    const run = await startRun(pgdv, { experiment: 'delays', inputs: ['flights@main'] })
    const out = path.join(os.tmpdir(), `pgdv-repro-none-${process.pid}`)
    await expect(reproduceRun(pgdv, run.id, { out, checkouts: { checkoutTable: undefined, checkoutFiles: undefined } })).rejects.toThrow(
      /checkout of table\/files inputs is not wired/,
    )
    await expect(fs.stat(out)).rejects.toThrow()
    const empty = await startRun(pgdv, { experiment: 'delays' })
    await expect(reproduceRun(pgdv, empty.id, { out })).rejects.toThrow(/has no pinned inputs/)
  })
})
