import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { createDataset } from '../src/api/datasets.js'
import { listModels, modelAliasHistory, modelVersionId, promoteModel, registerModel, rollbackModel, showModel } from '../src/api/models.js'
import { createExperiment, finishRun, logMetrics, startRun } from '../src/api/runs.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'
import { fakeCommit } from './helpers/lineage-versions.js'

let t: TestDatabase
let pgdv: Pgdv
const H = (c: string) => c.repeat(64)

beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
  await createDataset(pgdv, { name: 'flights' })
  await fakeCommit(pgdv.db.pool, 'flights')
  await createExperiment(pgdv, { name: 'exp' })
})
afterAll(async () => {
  await pgdv?.close()
  await t?.drop()
})

describe('model registry', () => {
  it('registers numbered versions from runs, with metrics defaulting to the run\'s latest', async () => {
    const run = await startRun(pgdv, { experiment: 'exp', inputs: ['flights'] })
    await logMetrics(pgdv, run.id, { acc: 0.7 })
    await logMetrics(pgdv, run.id, { acc: 0.9 })
    const v1 = await registerModel(pgdv, { model: 'resnet', run: run.id, artifactHash: `sha256:${H('a')}`, artifactUri: 's3://m/1.pt' })
    expect(v1).toMatchObject({ model: 'resnet', version: 1, run_id: run.id, artifact_hash: H('a'), artifact_uri: 's3://m/1.pt', metrics: { acc: 0.9 } })
    const v2 = await registerModel(pgdv, { model: 'resnet', run: run.id, artifactHash: H('b'), metrics: { acc: 0.95 } })
    expect(v2.version).toBe(2)
    await finishRun(pgdv, run.id)
    expect(await modelVersionId(pgdv, 'resnet', 'v2')).toBe(v2.id)
    expect(await modelVersionId(pgdv, 'resnet', 'latest')).toBe(v2.id)
    expect((await listModels(pgdv)).find((m) => m.name === 'resnet')).toMatchObject({ versions: '2', latest_version: 2 })
  })

  it('promotes and rolls back in one call each, with full history', async () => {
    const v1 = await modelVersionId(pgdv, 'resnet', '1')
    const v2 = await modelVersionId(pgdv, 'resnet', '2')
    const v3 = (await registerModel(pgdv, { model: 'resnet', artifactHash: H('c') })).id
    await promoteModel(pgdv, { model: 'resnet', alias: 'production', version: 1 })
    await promoteModel(pgdv, { model: 'resnet', alias: 'production', versionId: v2, reason: 'better acc' })
    await promoteModel(pgdv, { model: 'resnet', alias: 'production', version: '3' })
    await promoteModel(pgdv, { model: 'resnet', alias: 'challenger', version: 'latest' })
    expect(await modelVersionId(pgdv, 'resnet', 'production')).toBe(v3)
    expect((await rollbackModel(pgdv, { model: 'resnet', alias: 'production', reason: 'regression' })).id).toBe(v2)
    expect((await rollbackModel(pgdv, { model: 'resnet', alias: 'production' })).id).toBe(v1)
    await expect(rollbackModel(pgdv, { model: 'resnet', alias: 'production' })).rejects.toThrow(/no earlier version to roll back to/)
    const history = await modelAliasHistory(pgdv, 'resnet')
    expect(history.filter((h) => h.alias === 'production').map((h) => [h.action, h.old_version, h.new_version])).toEqual([
      ['rollback', 2, 1],
      ['rollback', 3, 2],
      ['promote', 2, 3],
      ['promote', 1, 2],
      ['promote', null, 1],
    ])
    expect(history.find((h) => h.reason === 'better acc')?.moved_by).toBeTruthy()
    const m = await showModel(pgdv, 'resnet')
    expect(m.aliases).toEqual({ challenger: 3, production: 1 })
    expect(m.model_versions.find((v) => v.version === 3)?.aliases).toEqual(['challenger'])
    // Promoting to where it points changes nothing.
    await promoteModel(pgdv, { model: 'resnet', alias: 'production', version: 1 })
    expect((await modelAliasHistory(pgdv, 'resnet')).length).toBe(history.length)
  })

  it('refuses an alias on a version of another model, and other bad input', async () => {
    const other = await registerModel(pgdv, { model: 'bert', artifactHash: H('d') })
    await expect(promoteModel(pgdv, { model: 'resnet', alias: 'production', versionId: other.id })).rejects.toThrow(
      new RegExp(`model version ${other.id} belongs to model "bert", not "resnet"`),
    )
    await expect(promoteModel(pgdv, { model: 'resnet', alias: 'production', version: 99 })).rejects.toThrow(/model "resnet" has no version or alias "99"/)
    await expect(promoteModel(pgdv, { model: 'nope', alias: 'production', version: 1 })).rejects.toThrow(/model "nope" does not exist/)
    await expect(promoteModel(pgdv, { model: 'resnet', alias: '7', version: 1 })).rejects.toThrow(/not allowed/)
    await expect(promoteModel(pgdv, { model: 'resnet', alias: 'latest', version: 1 })).rejects.toThrow(/reserved/)
    await expect(registerModel(pgdv, { model: 'resnet', artifactHash: 'xyz' })).rejects.toThrow(/is not a SHA-256/)
    await expect(registerModel(pgdv, { model: 'resnet', run: 424242 })).rejects.toThrow(/run 424242 does not exist/)
    await expect(registerModel(pgdv, { model: 'resnet', metrics: { acc: 'good' as unknown as number } })).rejects.toThrow(/JSON object of numbers/)
    const failed = await startRun(pgdv, { experiment: 'exp' })
    await finishRun(pgdv, failed.id, { status: 'failed' })
    await expect(registerModel(pgdv, { model: 'resnet', run: failed.id })).rejects.toThrow(/failed; a model version cannot come from it/)
    await expect(rollbackModel(pgdv, { model: 'resnet', alias: 'staging' })).rejects.toThrow(/has no alias "staging"/)
    expect((await showModel(pgdv, 'resnet')).versions).toBe('3')
    // Model versions are immutable.
    await expect(pgdv.db.query(`UPDATE dv.model_versions SET artifact_hash = '${H('e')}' WHERE id = ${other.id}`)).rejects.toThrow(/cannot change/)
  })
})
