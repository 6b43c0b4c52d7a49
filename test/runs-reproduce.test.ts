// Reproduce with versions made by the real row engine (dv.stage + COPY + dv.commit): the
// run's pinned input is checked out byte for byte after main has moved on.

import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { to as copyTo } from 'pg-copy-streams'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { createDataset } from '../src/api/datasets.js'
import { addFiles } from '../src/api/files.js'
import { upstream } from '../src/api/lineage.js'
import { registerModel } from '../src/api/models.js'
import { createExperiment, finishRun, reproduceRun, runInputs, startRun } from '../src/api/runs.js'
import type { CheckoutTableInput } from '../src/lineage/checkout.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'
import { commitRows } from './helpers/versions.js'

let t: TestDatabase
let pgdv: Pgdv
let dir: string

// A stand-in for rows-io's checkoutTable (wired at merge): COPY of dv.rows_sql to CSV.
async function checkoutCsv(p: Pgdv, input: CheckoutTableInput): Promise<void> {
  const { sql } = await p.db.one<{ sql: string }>('SELECT dv.rows_sql($1, $2) AS sql', [input.dataset, input.ref])
  await p.db.withClient(async (c) => {
    await pipeline(c.query(copyTo(`COPY (${sql} ORDER BY 1) TO STDOUT WITH (FORMAT csv, HEADER)`)), createWriteStream(input.out))
  })
}

const sha = async (f: string) => createHash('sha256').update(await fs.readFile(f)).digest('hex')

beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-repro-real-'))
  await createExperiment(pgdv, { name: 'exp' })
})
afterAll(async () => {
  await pgdv?.close()
  await t?.drop()
  await fs.rm(dir, { recursive: true, force: true })
})

describe('reproduce with real commits', () => {
  it('checks out the pinned version byte for byte after main moved on', async () => {
    const first = await commitRows(pgdv, 'labels', [{ id: 1, label: 'cat' }, { id: 2, label: 'dog' }], { columns: 'id int, label text', create: { key: ['id'] }, tag: 'v1.0' })
    const run = await startRun(pgdv, { experiment: 'exp', inputs: ['labels@main'] })
    const pinned = await runInputs(pgdv, run.id)
    expect(pinned[0]).toMatchObject({ version_id: first.version_id, content_hash: first.content_hash, ref: 'main' })
    await checkoutCsv(pgdv, { dataset: 'labels', ref: first.version_id, out: path.join(dir, 'then.csv'), format: 'csv', force: true })
    await registerModel(pgdv, { model: 'm', run: run.id, artifactHash: 'c'.repeat(64) })
    await finishRun(pgdv, run.id)

    const second = await commitRows(pgdv, 'labels', [{ id: 2, label: 'wolf' }, { id: 3, label: 'fox' }], { mode: 'upsert' })
    expect(second.version_id).not.toBe(first.version_id)

    const out = path.join(dir, 'repro')
    const r = await reproduceRun(pgdv, run.id, { out, checkouts: { checkoutTable: checkoutCsv } })
    expect(r.inputs[0].version_id).toBe(first.version_id)
    expect(await sha(path.join(out, 'labels.csv'))).toBe(await sha(path.join(dir, 'then.csv')))
    expect(await fs.readFile(path.join(out, 'labels.csv'), 'utf8')).toBe('id,label\n1,cat\n2,dog\n')
    const manifest = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8'))
    expect(manifest.inputs[0]).toMatchObject({ dataset: 'labels', version_id: first.version_id, content_hash: first.content_hash, file_sha256: await sha(path.join(dir, 'then.csv')) })
    await expect(reproduceRun(pgdv, run.id, { out, checkouts: { checkoutTable: checkoutCsv } })).rejects.toThrow(/is not empty/)

    // dv.commit's versions are in the graph: the second is derived from the first.
    const up = await upstream(pgdv, { kind: 'dataset', ref: `labels@${second.version_id}` })
    expect(up.map((u) => u.id)).toContain(first.version_id)
  })

  it('reproduces table and files inputs through the wired checkouts (rows-io, files), byte for byte', async () => {
    await createDataset(pgdv, { name: 'pics', kind: 'files' })
    const src = path.join(dir, 'pics-src')
    await fs.mkdir(path.join(src, 'a'), { recursive: true })
    await fs.writeFile(path.join(src, 'a/cat.jpg'), Buffer.alloc(100_000, 7))
    await fs.writeFile(path.join(src, 'readme.txt'), 'v1\n')
    await addFiles(pgdv, { dataset: 'pics', paths: [src], cwd: src })
    const run = await startRun(pgdv, { experiment: 'exp', inputs: ['pics', 'labels@v1.0'] })
    await fs.writeFile(path.join(src, 'readme.txt'), 'v2 changed\n')
    await addFiles(pgdv, { dataset: 'pics', paths: [src], cwd: src })

    const out = path.join(dir, 'repro-wired')
    const r = await reproduceRun(pgdv, run.id, { out })
    expect(r.inputs.map((i) => [i.dataset, i.verified])).toEqual([['labels', 'ok'], ['pics', 'ok']])
    expect(await fs.readFile(path.join(out, 'labels.csv'), 'utf8')).toMatch(/^id,label\r?\n1,cat\r?\n2,dog\r?\n$/)
    const files = (await fs.readdir(path.join(out, 'pics'), { recursive: true })).map(String).sort()
    expect(files).toContain('readme.txt')
    const readme = files.find((f) => f.endsWith('readme.txt'))!
    expect(await fs.readFile(path.join(out, 'pics', readme), 'utf8')).toBe('v1\n')
    const cat = files.find((f) => f.endsWith('cat.jpg'))!
    expect(await sha(path.join(out, 'pics', cat))).toBe(createHash('sha256').update(Buffer.alloc(100_000, 7)).digest('hex'))
  })
})
