// Network failures mid-upload against S3: a real s3rver behind a TCP proxy written
// here (node:net), which cuts connections after some bytes or refuses them for a
// while. Transient failures are retried and the add succeeds; a lasting outage fails
// with one line saying what failed and what to do, and no version; once the network
// is back, the same command completes without uploading again the packs already
// stored, and checks out byte for byte.

import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import { createRequire } from 'node:module'
import net, { type AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Pgdv } from '../src/api/client.js'
import { addFiles, checkoutFiles, type AddFilesResult } from '../src/api/files.js'
import { PgdvError } from '../src/lib/errors.js'
import { S3Store } from '../src/store/index.js'
import { cli } from './helpers/cli.js'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

interface S3rverInstance {
  run(): Promise<AddressInfo>
  close(): Promise<void>
}
const S3rver = createRequire(import.meta.url)('s3rver') as new (opts: Record<string, unknown>) => S3rverInstance

const BUCKET = 'pgdv-net'
// What failed (which pack, which store, why, after how many attempts) and what to do.
const OUTAGE_LINE = /^uploading pack [0-9a-f]{12} to s3:\/\/pgdv-net\/repo failed: could not reach the S3 endpoint http:\/\/127\.0\.0\.1:\d+ to upload packs\/[0-9a-f]{64} \(ECONNREFUSED, \d+ attempts over \d+ s\)\. Check the endpoint .* and the network, then run the same command again: it resumes$/
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/**
 * A TCP proxy in front of s3rver. It reads the HTTP request lines going through (to
 * count uploads per key), and can cut connections once they have carried some bytes
 * (a reset mid-request), or stop listening (connection refused) and drop every open
 * connection, until up() again on the same port.
 */
class FlakyProxy {
  port = 0
  private server?: net.Server
  private readonly sockets = new Set<net.Socket>()
  /** Connections still to cut (the next ones to carry that many bytes from the client). */
  private cuts = 0
  private cutAfter = 0
  cutsDone = 0
  /** Request lines seen, e.g. "PUT /pgdv-net/repo/packs/ab12...". */
  readonly requests: string[] = []
  onRequest?: (line: string) => void

  constructor(private readonly target: number) {}

  async up(): Promise<void> {
    const server = net.createServer((client) => this.accept(client))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => resolve())
    })
    this.port = (server.address() as AddressInfo).port
    this.server = server
  }

  /** Refuse new connections and reset the open ones. */
  down(): void {
    this.server?.close()
    this.server = undefined
    for (const s of this.sockets) s.resetAndDestroy()
    this.sockets.clear()
  }

  cutNext(connections: number, afterBytes: number): void {
    this.cuts = connections
    this.cutAfter = afterBytes
  }

  async close(): Promise<void> {
    this.down()
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.target, '127.0.0.1')
    this.sockets.add(client)
    this.sockets.add(upstream)
    let sent = 0
    let tail = ''
    const drop = (): void => {
      client.resetAndDestroy()
      upstream.destroy()
      this.sockets.delete(client)
      this.sockets.delete(upstream)
    }
    client.on('data', (d: Buffer) => {
      // A request line may follow the previous request's body directly (keep-alive), or
      // be split across reads: search the new bytes with the end of the previous read.
      const text = tail + d.toString('latin1')
      for (const m of text.matchAll(/(PUT|POST|GET|HEAD|DELETE) (\/\S*) HTTP\/1\.1\r\n/g)) {
        if (m.index + m[0].length <= tail.length) continue // counted with the previous read
        const line = `${m[1]} ${m[2]}`
        this.requests.push(line)
        this.onRequest?.(line)
      }
      tail = text.slice(-300)
      if (this.cuts > 0 && sent + d.length > this.cutAfter) {
        // Mid-request: the server got part of the body, the client a reset.
        this.cuts--
        upstream.write(d.subarray(0, Math.max(0, this.cutAfter - sent)))
        this.cutsDone++
        drop()
        return
      }
      sent += d.length
      if (!upstream.write(d)) client.pause()
    })
    upstream.on('drain', () => client.resume())
    upstream.on('data', (d: Buffer) => {
      if (!client.write(d)) upstream.pause()
    })
    client.on('drain', () => upstream.resume())
    client.on('error', () => drop())
    upstream.on('error', () => drop())
    client.on('close', () => drop())
    upstream.on('close', () => drop())
  }
}

let t: TestDatabase
let server: S3rverInstance
let proxy: FlakyProxy
let direct: S3Store
let dir: string
const conn = () => ({ url: t.url, home: t.home })

/** Pack ids in the upload requests (PutObject, multipart start and parts) among the given request lines. */
function packUploads(lines: string[]): string[] {
  return lines.flatMap((l) => /^(?:PUT|POST) \S*\/packs\/([0-9a-f]{64})(?:\?|$)/.exec(l)?.[1] ?? [])
}

/** Packs in the bucket, listed straight from s3rver (not through the proxy). */
async function storedPacks(): Promise<Set<string>> {
  const ids = new Set<string>()
  for await (const o of direct.list('packs/')) ids.add(o.key.slice('packs/'.length))
  return ids
}

async function versions(dataset: string): Promise<number> {
  const pgdv = await Pgdv.open({ home: t.home, databaseUrl: t.url })
  try {
    const r = await pgdv.db.one<{ n: string }>('SELECT count(*) AS n FROM dv.versions v JOIN dv.datasets d ON d.id = v.dataset_id WHERE d.name = $1::text', [dataset])
    return Number(r.n)
  } finally {
    await pgdv.close()
  }
}

async function source(name: string, n: number): Promise<{ dir: string; files: Record<string, Buffer> }> {
  const src = path.join(dir, name)
  await fs.mkdir(src, { recursive: true })
  const files: Record<string, Buffer> = {}
  // Files big enough for several 512 KiB packs... the default 32 MiB pack would be one upload.
  for (let i = 0; i < n; i++) files[`f${i}.bin`] = randomBytes(600_000 + i * 1000)
  for (const [k, v] of Object.entries(files)) await fs.writeFile(path.join(src, k), v)
  return { dir: src, files }
}

/** pgdv add through the library, on the home's store (S3 behind the proxy), with small packs: one add is many uploads. */
async function add(dataset: string, src: string): Promise<AddFilesResult> {
  const pgdv = await Pgdv.open({ home: t.home, databaseUrl: t.url })
  try {
    return await addFiles(pgdv, { dataset, paths: [src], packTargetSize: 512 * 1024 })
  } finally {
    await pgdv.close()
  }
}

async function checkoutSame(dataset: string, files: Record<string, Buffer>): Promise<void> {
  const out = path.join(dir, `co-${dataset}`)
  const pgdv = await Pgdv.open({ home: t.home, databaseUrl: t.url })
  try {
    await checkoutFiles(pgdv, { dataset, ref: 'main', out })
  } finally {
    await pgdv.close()
  }
  for (const [k, v] of Object.entries(files)) expect(sha(await fs.readFile(path.join(out, k))), k).toBe(sha(v))
}

beforeAll(async () => {
  t = await freshDatabase()
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-s3-net-'))
  server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: path.join(dir, 's3'), configureBuckets: [{ name: BUCKET }] })
  const { port } = await server.run()
  direct = new S3Store({ bucket: BUCKET, prefix: 'repo', endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' })
  proxy = new FlakyProxy(port)
  await proxy.up()
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER'
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER'
  const init = await cli(['init', '--store', `s3://${BUCKET}/repo`, '--s3-endpoint', `http://127.0.0.1:${proxy.port}`], conn())
  expect(init.exitCode, init.stderr).toBe(0)
})
afterAll(async () => {
  delete process.env.PGDV_S3_MAX_ATTEMPTS
  await proxy?.close()
  await direct?.close()
  await server?.close()
  await t?.drop()
  await fs.rm(dir, { recursive: true, force: true })
})

describe('S3 uploads through a failing network', () => {
  it('retries connections cut mid-upload and a spell of refused connections; the add succeeds', async () => {
    const { dir: src, files } = await source('transient', 8)
    expect((await cli(['dataset', 'create', 'transient', '--files'], conn())).exitCode).toBe(0)
    proxy.cutNext(4, 100_000)
    let refused = false
    const start = proxy.requests.length
    proxy.onRequest = (line) => {
      // At the third pack upload, refuse every connection for a second and a half.
      if (!refused && packUploads(proxy.requests.slice(start)).length === 3 && packUploads([line]).length) {
        refused = true
        proxy.down()
        setTimeout(() => void proxy.up(), 1500)
      }
    }
    const r = await add('transient', src)
    proxy.onRequest = undefined
    expect(r).toMatchObject({ created: true, files: 8 })
    expect(r.packs).toBeGreaterThan(4)
    expect(proxy.cutsDone).toBe(4)
    expect(refused).toBe(true)
    // Some pack was sent more than once: the cuts and the refusal were retried.
    const ups = packUploads(proxy.requests.slice(start))
    expect(ups.length).toBeGreaterThan(new Set(ups).size)
    await checkoutSame('transient', files)
  })

  it('a lasting outage fails with one line and no version; back online, the rerun uploads only the missing packs', async () => {
    const { dir: src, files } = await source('outage', 10)
    expect((await cli(['dataset', 'create', 'outage', '--files'], conn())).exitCode).toBe(0)
    const storedBefore = await storedPacks()
    let down = false
    const start = proxy.requests.length
    proxy.onRequest = (line) => {
      // The network goes away during the fourth pack upload, for good.
      if (!down && packUploads(proxy.requests.slice(start)).length === 4 && packUploads([line]).length) {
        down = true
        proxy.down()
      }
    }
    // Fewer attempts than the default six (~15 s of backoff), to keep the test short.
    process.env.PGDV_S3_MAX_ATTEMPTS = '3'
    const err = await add('outage', src).then(() => undefined, (e: unknown) => e)
    proxy.onRequest = undefined
    expect(down).toBe(true)
    expect(err).toBeInstanceOf(PgdvError)
    const line = (err as PgdvError).oneLine()
    console.log(`outage error: ${line}`)
    expect(line).not.toMatch(/\n/)
    expect(line).toMatch(OUTAGE_LINE)
    expect(await versions('outage')).toBe(1) // only the empty root
    const storedDuring = new Set([...(await storedPacks())].filter((p) => !storedBefore.has(p)))
    expect(storedDuring.size).toBeGreaterThan(0)

    // The CLI prints that line alone, and exits 1.
    const cliRun = await cli(['add', 'outage', src], conn())
    expect(cliRun.exitCode).toBe(1)
    expect(cliRun.stderr.trim().split('\n')).toHaveLength(1)
    expect(cliRun.stderr.trim()).toMatch(new RegExp(`^Error: ${OUTAGE_LINE.source.slice(1)}`))
    expect(await versions('outage')).toBe(1)
    delete process.env.PGDV_S3_MAX_ATTEMPTS

    await proxy.up()
    const before = proxy.requests.length
    // Through the CLI this time, with its default pack size: what is stored is not sent again either way.
    const rerun = await cli<{ created: boolean; files: number; packs: number; recovered_packs: number }>(['add', 'outage', src, '--json'], conn())
    expect(rerun.exitCode, rerun.stderr).toBe(0)
    expect(rerun.json).toMatchObject({ created: true, files: 10 })
    const sent = packUploads(proxy.requests.slice(before))
    expect(sent.length).toBeGreaterThan(0) // the rest did have to be uploaded
    const again = sent.filter((p) => storedDuring.has(p))
    expect(again, 'packs uploaded again').toEqual([])
    console.log(`outage: ${storedDuring.size} packs stored before the outage; the rerun uploaded ${new Set(sent).size} new pack(s), registered ${rerun.json!.recovered_packs} left unregistered, re-sent none`)
    expect(await versions('outage')).toBe(2)
    await checkoutSame('outage', files)
  })
})
