// Files on S3: `pgdv init --store s3://...` against a real S3 server (s3rver), then
// add/checkout, blob put/get and doctor through the CLI, and the clear errors for a
// missing bucket and bad credentials.

import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Pgdv } from '../src/api/client.js'
import { checkoutFiles } from '../src/api/files.js'
import { cli } from './helpers/cli.js'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

interface S3rverInstance {
  run(): Promise<AddressInfo>
  close(): Promise<void>
}
const S3rver = createRequire(import.meta.url)('s3rver') as new (opts: Record<string, unknown>) => S3rverInstance

const BUCKET = 'pgdv-files'
let t: TestDatabase
let server: S3rverInstance
let dir: string
let endpoint: string
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

beforeAll(async () => {
  t = await freshDatabase()
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-files-s3-'))
  server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: path.join(dir, 's3'), configureBuckets: [{ name: BUCKET }] })
  endpoint = `http://127.0.0.1:${(await server.run()).port}`
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER'
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER'
})
afterAll(async () => {
  await server?.close()
  await t?.drop()
  await fs.rm(dir, { recursive: true, force: true })
})

const conn = () => ({ url: t.url, home: t.home })

describe('S3 store through the CLI', () => {
  it('init --store s3://... records the store; doctor probes the bucket', async () => {
    const r = await cli(['init', '--store', `s3://${BUCKET}/repo`, '--s3-endpoint', endpoint, '--s3-region', 'us-east-1', '--json'], conn())
    expect(r.exitCode, r.stderr).toBe(0)
    const cfg = JSON.parse(await fs.readFile(path.join(t.home, 'config.json'), 'utf8'))
    expect(cfg.store).toEqual({ url: `s3://${BUCKET}/repo`, s3: { endpoint, region: 'us-east-1' } })
    const d = await cli<{ checks: { name: string; ok: boolean; detail: string }[] }>(['doctor', '--json'], conn())
    const check = d.json!.checks.find((c) => c.name === 'object store')!
    expect(check).toMatchObject({ ok: true })
    expect(check.detail).toMatch(/bucket reachable; write, read, list, delete ok/)
  })

  it('blob put / get round-trips a multipart-sized blob byte for byte', async () => {
    const data = randomBytes(12 * 1024 * 1024 + 5)
    const file = path.join(dir, 'model.bin')
    await fs.writeFile(file, data)
    const put = await cli<{ hash: string; sha256: string; new_bytes: number }>(['blob', 'put', file, '--json'], conn())
    expect(put.exitCode, put.stderr).toBe(0)
    expect(put.json!.sha256).toBe(sha(data))
    const again = await cli<{ hash: string; sha256: string; new_bytes: number }>(['blob', 'put', file, '--json'], conn())
    expect(again.json!.new_bytes).toBe(0)
    const out = path.join(dir, 'model.out')
    const get = await cli(['blob', 'get', put.json!.hash, '--out', out], conn())
    expect(get.exitCode, get.stderr).toBe(0)
    expect(sha(await fs.readFile(out))).toBe(sha(data))
    const refuse = await cli(['blob', 'get', put.json!.hash, '--out', out], conn())
    expect(refuse.exitCode).toBe(1)
    expect(refuse.stderr).toMatch(/already exists.*--force/)
  })

  it('add / checkout round-trips a folder on S3; stats reports it', async () => {
    const src = path.join(dir, 'src')
    await fs.mkdir(path.join(src, 'sub'), { recursive: true })
    const files: Record<string, Buffer> = { 'a.bin': randomBytes(3_000_000), 'sub/b.txt': Buffer.from('hello'), 'sub/c.bin': randomBytes(40_000) }
    for (const [k, v] of Object.entries(files)) await fs.writeFile(path.join(src, k), v)
    expect((await cli(['dataset', 'create', 'imgs', '--files'], conn())).exitCode).toBe(0)
    const add = await cli<{ created: boolean; files: number }>(['add', 'imgs', src, '-m', 'first', '--json'], conn())
    expect(add.exitCode, add.stderr).toBe(0)
    expect(add.json).toMatchObject({ created: true, files: 3 })
    const out = path.join(dir, 'co')
    const pgdv = await Pgdv.open({ home: t.home, databaseUrl: t.url })
    try {
      await expect(checkoutFiles(pgdv, { dataset: 'imgs', ref: 'main', out })).resolves.toMatchObject({ files: 3 })
    } finally {
      await pgdv.close()
    }
    for (const [k, v] of Object.entries(files)) expect(sha(await fs.readFile(path.join(out, k)))).toBe(sha(v))
    const st = await cli<{ logical_bytes: number; stored_bytes: number }>(['stats', 'imgs', '--json'], conn())
    expect(st.json!.logical_bytes).toBe(3_040_005)
    expect(st.json!.stored_bytes).toBe(3_040_005)
  })

  it('a missing bucket: doctor fails with a hint, blob put fails with one line and stores nothing', async () => {
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-home-nb-'))
    const c = { url: t.url, home }
    expect((await cli(['init', '--store', 's3://no-such-bucket/x', '--s3-endpoint', endpoint], c)).exitCode).toBe(0)
    const d = await cli(['doctor'], c)
    expect(d.exitCode).toBe(1)
    expect(d.stdout).toMatch(/FAIL\s+object store.*no-such-bucket does not exist/)
    expect(d.stdout).toMatch(/hint: Create the bucket/)
    const before = await cli<{ logical_bytes: number }>(['stats', '--json'], c)
    const file = path.join(dir, 'x.bin')
    await fs.writeFile(file, randomBytes(1000))
    const put = await cli(['blob', 'put', file], c)
    expect(put.exitCode).toBe(1)
    expect(put.stderr).toMatch(/^Error: uploading pack [0-9a-f]{12} to s3:\/\/no-such-bucket\/x failed: bucket no-such-bucket does not exist.*Create the bucket/)
    const after = await cli<{ logical_bytes: number }>(['stats', '--json'], c)
    expect(after.json!.logical_bytes).toBe(before.json!.logical_bytes)
    await fs.rm(home, { recursive: true, force: true })
  })

  it('bad credentials fail with a clear line', async () => {
    const saved = process.env.AWS_ACCESS_KEY_ID
    process.env.AWS_ACCESS_KEY_ID = 'NOT-A-KEY'
    try {
      const file = path.join(dir, 'y.bin')
      await fs.writeFile(file, randomBytes(1000))
      const put = await cli(['blob', 'put', file], conn())
      expect(put.exitCode).toBe(1)
      expect(put.stderr).toMatch(/InvalidAccessKeyId.*AWS_ACCESS_KEY_ID/)
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved
    }
  })

  it('refuses a malformed S3 store spec at init', async () => {
    const r = await cli(['init', '--store', 's3://Bad_Bucket/x'], conn())
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/bucket name "Bad_Bucket" .* is invalid/)
  })
})
