// Garbage collection of chunks and packs (pgdv gc), on the filesystem store and on S3
// (a real s3rver): dropping a dataset frees its packs; a dry run changes nothing; no
// pack a version, blob or model references is ever deleted; packs mixing live and
// dead chunks are kept; packs sealed but never registered are collected after the
// grace period; a concurrent ingest keeps its packs (the files lock, and the grace
// period when its lock connection broke); a gc killed mid-delete is finished by the
// next, which does not delete a pack written again in between.

import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { createDataset, dropDataset } from '../src/api/datasets.js'
import { addFiles, checkoutFiles, getBlob, putBlob } from '../src/api/files.js'
import { gc } from '../src/api/gc.js'
import { registerModel } from '../src/api/models.js'
import { parseDuration } from '../src/files/gc.js'
import { PgdvError } from '../src/lib/errors.js'
import { IngestSession, writeContentRows } from '../src/files/ingest.js'
import { PackWriter, packKey } from '../src/packs/index.js'
import { FsStore, S3Store, StoreError, type ObjectStore } from '../src/store/index.js'
import { cli } from './helpers/cli.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'

interface S3rverInstance {
  run(): Promise<AddressInfo>
  close(): Promise<void>
}
const S3rver = createRequire(import.meta.url)('s3rver') as new (opts: Record<string, unknown>) => S3rverInstance

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const PACK = 256 * 1024

/** A real store whose deletes fail while `failing` is set: a gc that dies mid-delete. */
class FailingDeletes implements ObjectStore {
  failing = true
  constructor(private readonly inner: ObjectStore) {}
  put: ObjectStore['put'] = (k, b, o) => this.inner.put(k, b, o)
  get = (k: string, r?: { start?: number; end?: number }): Promise<Readable> => this.inner.get(k, r)
  head = (k: string) => this.inner.head(k)
  list = (p?: string) => this.inner.list(p)
  probe = () => this.inner.probe()
  describe = () => this.inner.describe()
  async delete(k: string): Promise<void> {
    if (this.failing) throw new StoreError('network', `could not reach the store to delete ${k} (ECONNRESET)`, k)
    await this.inner.delete(k)
  }
}

for (const kind of ['fs', 's3'] as const) {
  describe(`gc on the ${kind} store`, () => {
    let t: TestDatabase
    let pgdv: Pgdv
    let store: ObjectStore
    let server: S3rverInstance | undefined
    let work: string

    beforeAll(async () => {
      t = await freshDatabase()
      pgdv = await openPgdv(t)
      work = await fs.mkdtemp(path.join(os.tmpdir(), `pgdv-gc-${kind}-`))
      if (kind === 'fs') {
        store = new FsStore(path.join(t.home, 'objects'))
      } else {
        server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: path.join(work, 's3'), configureBuckets: [{ name: 'gc-bucket' }] })
        const { port } = await server.run()
        store = new S3Store({
          bucket: 'gc-bucket',
          prefix: 'repo',
          endpoint: `http://127.0.0.1:${port}`,
          region: 'us-east-1',
          forcePathStyle: true,
          accessKeyId: 'S3RVER',
          secretAccessKey: 'S3RVER',
        })
      }
    })
    afterAll(async () => {
      await store?.close?.()
      await server?.close()
      await pgdv?.close()
      await t?.drop()
      await fs.rm(work, { recursive: true, force: true })
    })

    async function folder(name: string, files: Record<string, Buffer>): Promise<string> {
      const dir = path.join(work, name)
      await fs.mkdir(dir, { recursive: true })
      for (const [rel, data] of Object.entries(files)) await fs.writeFile(path.join(dir, rel), data)
      return dir
    }

    async function add(dataset: string, dir: string, packTargetSize = PACK): Promise<void> {
      await createDataset(pgdv, { name: dataset, kind: 'files' }).catch(() => undefined)
      await addFiles(pgdv, { dataset, paths: [dir], store, packTargetSize })
    }

    /** Pack ids a dataset's files use (through the index). */
    async function packsOf(dataset: string): Promise<Set<string>> {
      const rows = await pgdv.db.query<{ pack_id: string }>(
        `SELECT DISTINCT c.pack_id FROM dv_files.dataset_contents dc JOIN dv.datasets d ON d.id = dc.dataset_id
         JOIN dv_files.content_chunks cc ON cc.content_hash = dc.content_hash JOIN dv_files.chunks c ON c.hash = cc.chunk_hash
         WHERE d.name = $1::text`,
        [dataset],
      )
      return new Set(rows.map((r) => r.pack_id))
    }

    async function storedPacks(): Promise<Set<string>> {
      const ids = new Set<string>()
      for await (const o of store.list('packs/')) ids.add(o.key.slice('packs/'.length))
      return ids
    }

    async function checkoutSame(dataset: string, ref: string, files: Record<string, Buffer>): Promise<void> {
      const out = await fs.mkdtemp(path.join(work, 'co-'))
      await checkoutFiles(pgdv, { dataset, ref, out, store, force: true })
      expect((await fs.readdir(out)).sort()).toEqual(Object.keys(files).sort())
      for (const [rel, data] of Object.entries(files)) expect(sha(await fs.readFile(path.join(out, rel))), `${dataset}@${ref}: ${rel}`).toBe(sha(data))
      await fs.rm(out, { recursive: true, force: true })
    }

    async function snapshot(): Promise<unknown> {
      const counts = await pgdv.db.one(
        `SELECT (SELECT count(*) FROM dv_files.packs) AS packs, (SELECT count(*) FROM dv_files.chunks) AS chunks,
                (SELECT count(*) FROM dv_files.contents) AS contents, (SELECT count(*) FROM dv_files.content_chunks) AS content_chunks,
                (SELECT count(*) FROM dv_files.session_packs) AS session_packs, (SELECT count(*) FROM dv_files.gc_queue) AS queue,
                (SELECT count(*) FROM dv_files.ingest_sessions WHERE state = 'running') AS running`,
      )
      return { counts, stored: [...(await storedPacks())].sort() }
    }

    it('frees the packs of a dropped dataset; keeps a pack mixing live and dead chunks, and says so', async () => {
      const shared = randomBytes(300_000)
      const g1 = randomBytes(200_000)
      const keepFiles = { 'shared.bin': shared, 'k.bin': randomBytes(400_000) }
      const soloFiles = { 's1.bin': randomBytes(700_000), 's2.bin': randomBytes(50_000) }
      // One pack holds "gone"'s shared.bin and g1.bin; "keep" then reuses shared.bin's chunks from it.
      await add('gone', await folder('gone', { 'shared.bin': shared, 'g1.bin': g1 }), 32 << 20)
      await add('keep', await folder('keep', keepFiles))
      await add('solo', await folder('solo', soloFiles))
      const [gonePacks, keepPacks, soloPacks] = [await packsOf('gone'), await packsOf('keep'), await packsOf('solo')]
      expect(gonePacks.size).toBe(1)
      const mixed = [...gonePacks][0]!
      expect(keepPacks.has(mixed)).toBe(true)
      expect(soloPacks.size).toBeGreaterThan(1)

      await dropDataset(pgdv, 'gone')
      await dropDataset(pgdv, 'solo')
      const r = await gc(pgdv, { store, graceMs: 0 })
      expect(r.dry_run).toBe(false)
      expect(r.deleted_packs).toBe(soloPacks.size)
      expect(r.kept_mixed).toBe(1)
      expect(r.mixed_dead_bytes).toBe(g1.length)
      const m = r.packs.find((p) => p.pack_id === mixed)!
      expect(m).toMatchObject({ kind: 'mixed', action: 'keep' })
      expect(m.reason).toMatch(/repacking is not implemented yet/)

      const stored = await storedPacks()
      for (const p of soloPacks) expect(stored.has(p), `solo pack ${p}`).toBe(false)
      for (const p of keepPacks) expect(stored.has(p), `keep pack ${p}`).toBe(true)
      const left = await pgdv.db.one<{ n: string }>('SELECT count(*) AS n FROM dv_files.chunks WHERE pack_id = ANY($1::text[])', [[...soloPacks]])
      expect(Number(left.n)).toBe(0)
      await checkoutSame('keep', 'main', keepFiles)
      // Nothing left to do: a second gc deletes nothing.
      expect((await gc(pgdv, { store, graceMs: 0 })).deleted_packs).toBe(0)
    })

    it('a dry run changes nothing and lists exactly what gc then deletes', async () => {
      await add('dry', await folder('dry', { 'a.bin': randomBytes(600_000), 'b.txt': Buffer.from('dry run') }))
      const packs = await packsOf('dry')
      await dropDataset(pgdv, 'dry')
      const before = await snapshot()
      const dry = await gc(pgdv, { store, graceMs: 0, dryRun: true })
      expect(await snapshot()).toEqual(before)
      expect(dry.dry_run).toBe(true)
      const would = dry.packs.filter((p) => p.action === 'delete').map((p) => p.pack_id).sort()
      expect(would).toEqual([...packs].sort())
      // Within a grace period the same packs are kept, and why is said.
      const young = await gc(pgdv, { store, graceMs: 3600_000, dryRun: true })
      expect(young.deleted_packs).toBe(0)
      expect(young.packs.filter((p) => packs.has(p.pack_id)).every((p) => p.action === 'keep' && /less than 1 h ago \(grace period\)/.test(p.reason))).toBe(true)

      const real = await gc(pgdv, { store, graceMs: 0 })
      expect(real.packs.filter((p) => p.action === 'delete').map((p) => p.pack_id).sort()).toEqual(would)
      expect(real.deleted_bytes).toBe(dry.deleted_bytes)
    })

    it('never deletes a pack a version, a blob or a model artifact references', async () => {
      // c.txt is one byte: where it starts its pack, s3rver 3.7 answers its Range (bytes=0-0) with the whole pack.
      const v1 = { 'a.bin': randomBytes(500_000), 'b.bin': randomBytes(400_000), 'c.txt': Buffer.from('c') }
      const dir = await folder('hist', v1)
      await add('hist', dir)
      // v2 drops b.bin and c.txt: only version v1 still names them.
      await fs.rm(path.join(dir, 'b.bin'))
      await fs.rm(path.join(dir, 'c.txt'))
      await add('hist', dir)
      // As if the versions had been made from plain SQL: the mark must read the version rows themselves.
      await pgdv.db.query(`DELETE FROM dv_files.dataset_contents WHERE dataset_id = (SELECT id FROM dv.datasets WHERE name = 'hist')`)

      // A blob, and a model artifact whose only other reference was a dropped dataset.
      const blobFile = path.join(work, 'model.bin')
      const blobData = randomBytes(350_000)
      await fs.writeFile(blobFile, blobData)
      const blob = await putBlob(pgdv, { file: blobFile, store })
      const art = randomBytes(300_000)
      await add('artifacts', await folder('artifacts', { 'weights.bin': art }))
      // The registry names a stored artifact by its content hash (what blob put prints).
      const [{ h }] = await pgdv.db.query<{ h: string }>("SELECT r->>'content_hash' AS h FROM dv.rows('artifacts', 'main') r WHERE r->>'path' = 'weights.bin'")
      await registerModel(pgdv, { model: 'gc-model', artifactHash: h })
      await dropDataset(pgdv, 'artifacts')

      const r = await gc(pgdv, { store, graceMs: 0 })
      expect(r.deleted_packs).toBe(0)
      await checkoutSame('hist', 'main~1', v1)
      await checkoutSame('hist', 'main', { 'a.bin': v1['a.bin'] })
      const out = path.join(work, 'blob.out')
      await getBlob(pgdv, { hash: blob.hash, out, store, force: true })
      expect(sha(await fs.readFile(out))).toBe(sha(blobData))
      await getBlob(pgdv, { hash: h, out, store, force: true })
      expect(sha(await fs.readFile(out))).toBe(sha(art))
      // Every pack the index knows is in the store.
      const stored = await storedPacks()
      for (const p of await pgdv.db.query<{ id: string }>('SELECT id FROM dv_files.packs')) expect(stored.has(p.id), p.id).toBe(true)
    })

    it('collects a pack an ingest sealed but never registered, after the grace period', async () => {
      const { id: session } = await pgdv.db.one<{ id: string }>(`INSERT INTO dv_files.ingest_sessions (purpose, state) VALUES ('add', 'failed') RETURNING id`)
      const writer = new PackWriter({
        store,
        tempDir: path.join(work, 'tmp'),
        onSeal: async (p) => {
          await pgdv.db.query(`INSERT INTO dv_files.session_packs (session_id, pack_id, object_key, size) VALUES ($1::bigint, $2::text, $3::text, $4::bigint)`, [session, p.packId, packKey(p.packId), p.size])
        },
      })
      const data = randomBytes(100_000)
      await writer.add(sha(data), data)
      const [pack] = await writer.finish()
      expect((await pgdv.db.query<{ pack_id: string }>('SELECT pack_id FROM dv.unregistered_packs()')).map((r) => r.pack_id)).toContain(pack!.packId)

      const young = await gc(pgdv, { store, graceMs: 3600_000 })
      expect(young.packs.find((p) => p.pack_id === pack!.packId)).toMatchObject({ kind: 'unregistered', action: 'keep' })
      expect(await store.head(packKey(pack!.packId))).not.toBeNull()

      const r = await gc(pgdv, { store, graceMs: 0 })
      expect(r.deleted_unregistered).toBe(1)
      expect(await store.head(packKey(pack!.packId))).toBeNull()
      expect(await pgdv.db.query('SELECT * FROM dv_files.session_packs WHERE pack_id = $1::text', [pack!.packId])).toEqual([])
    })

    it('waits for a running ingest, which keeps its packs; gc --wait 0 refuses naming it', async () => {
      const data = randomBytes(900_000)
      const file = path.join(work, 'concurrent.bin')
      await fs.writeFile(file, data)
      const st = await fs.stat(file)
      const session = await IngestSession.start({ db: pgdv.db, store, tempDir: path.join(t.home, 'tmp'), purpose: 'blob', packTargetSize: PACK })
      const rec = await session.addFile({ abs: file, size: st.size, mtimeMs: st.mtimeMs })
      await session.finish() // packs uploaded and registered, nothing references them yet

      await expect(gc(pgdv, { store, graceMs: 0, waitMs: 0 })).rejects.toThrow(/gc cannot start: ingests are running: pgdv ingest pid \d+ on /)
      const cliRun = await cli(['gc', '--wait', '0', '--grace', '0'], { url: t.url, home: t.home })
      expect(cliRun.exitCode).toBe(1)
      expect(cliRun.stderr).toMatch(/^Error: gc cannot start: ingests are running: .* Run gc again when they finish, or give it longer with --wait/)

      // A gc that waits: it queues behind the ingest, which then commits (as blob put does).
      const waiting = gc(pgdv, { store, graceMs: 0, waitMs: 120_000 })
      for (;;) {
        const hs = await pgdv.db.query<{ mode: string; granted: boolean }>('SELECT mode, granted FROM dv.files_lock_holders()')
        if (hs.some((h) => h.mode === 'gc' && !h.granted)) break
        await new Promise((r) => setTimeout(r, 20))
      }
      await pgdv.db.tx(async (c) => {
        await writeContentRows(c, session.contents.values(), null)
        await c.query('INSERT INTO dv_files.blobs (content_hash) VALUES ($1::text)', [rec.hash])
      })
      await session.end('committed')
      const r = await waiting
      expect(r.deleted_packs).toBe(0)
      const out = path.join(work, 'concurrent.out')
      await getBlob(pgdv, { hash: rec.hash, out, store, force: true })
      expect(sha(await fs.readFile(out))).toBe(sha(data))
    })

    it('an ingest whose lock connection broke keeps its packs through the grace period, and registers nothing more', async () => {
      const data = randomBytes(700_000)
      const file = path.join(work, 'orphaned.bin')
      await fs.writeFile(file, data)
      const st = await fs.stat(file)
      const session = await IngestSession.start({ db: pgdv.db, store, tempDir: path.join(t.home, 'tmp'), purpose: 'blob', packTargetSize: PACK })
      const rec = await session.addFile({ abs: file, size: st.size, mtimeMs: st.mtimeMs })
      await session.finish()
      // The database drops the ingest's lock connection (a restart, a network cut): gc can now run.
      await pgdv.db.query(`SELECT pg_terminate_backend(pid) FROM dv.files_lock_holders() WHERE mode = 'ingest'`)
      const contentRows = async (): Promise<number> =>
        Number((await pgdv.db.one<{ n: string }>('SELECT count(*) AS n FROM dv_files.contents WHERE hash = $1::text', [rec.hash])).n)
      expect(await contentRows()).toBe(1) // written while reading, not yet named by anything
      const r = await gc(pgdv, { store, waitMs: 30_000, graceMs: 3600_000 })
      expect(r.deleted_packs).toBe(0)
      expect(r.kept_young).toBeGreaterThan(0)
      expect(await contentRows()).toBe(1) // young: kept for the commit to come
      await pgdv.db.tx(async (c) => {
        await writeContentRows(c, session.contents.values(), null)
        await c.query('INSERT INTO dv_files.blobs (content_hash) VALUES ($1::text)', [rec.hash])
      })
      await session.end('committed')
      const out = path.join(work, 'orphaned.out')
      await getBlob(pgdv, { hash: rec.hash, out, store, force: true })
      expect(sha(await fs.readFile(out))).toBe(sha(data))

      // Without the lock, an ingest does not register packs: a gc might be deleting the same key.
      const late = await IngestSession.start({ db: pgdv.db, store, tempDir: path.join(t.home, 'tmp'), purpose: 'blob', packTargetSize: PACK })
      await pgdv.db.query(`SELECT pg_terminate_backend(pid) FROM dv.files_lock_holders() WHERE mode = 'ingest'`)
      const other = path.join(work, 'late.bin')
      await fs.writeFile(other, randomBytes(300_000))
      const ost = await fs.stat(other)
      await late.addFile({ abs: other, size: ost.size, mtimeMs: ost.mtimeMs })
      const err = await late.finish().then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(PgdvError)
      expect((err as PgdvError).oneLine()).toMatch(/^the ingest lost its hold on the files lock .*run the command again: it resumes$/)
      await late.abort()
    })

    it('a gc killed mid-delete is finished by the next one, which keeps a pack written again meanwhile', async () => {
      // One file: its chunks reach the packs in file order, so adding it again writes the
      // same content-addressed packs (several files are read in parallel, in any order).
      const files = { 'x.bin': randomBytes(500_000) }
      const dir = await folder('again', files)
      await add('again', dir)
      const packs = await packsOf('again')
      await dropDataset(pgdv, 'again')
      const flaky = new FailingDeletes(store)
      const err = await gc(pgdv, { store: flaky, graceMs: 0 }).then(() => undefined, (e: unknown) => e)
      expect((err as PgdvError).oneLine()).toMatch(/^gc deleting a pack: .*ECONNRESET.*run pgdv gc again to finish deleting them$/)
      // The index forgot the packs; the objects are still there, queued.
      const queued = new Set((await pgdv.db.query<{ pack_id: string }>('SELECT pack_id FROM dv_files.gc_queue')).map((q) => q.pack_id))
      for (const p of packs) expect(queued.has(p), p).toBe(true)
      for (const p of packs) expect(await store.head(packKey(p)), p).not.toBeNull()
      expect(await pgdv.db.query('SELECT * FROM dv_files.packs WHERE id = ANY($1::text[])', [[...packs]])).toEqual([])
      const dry = await gc(pgdv, { store, graceMs: 0, dryRun: true })
      const leftovers = dry.packs.filter((p) => p.reason === 'queued by an earlier gc that did not finish')
      expect(new Set(leftovers.map((p) => p.pack_id))).toEqual(queued)

      // The same files again: the same content-addressed packs are written and registered again.
      await add('again', dir)
      expect(await packsOf('again')).toEqual(packs)
      flaky.failing = false
      const r = await gc(pgdv, { store: flaky, graceMs: 0 })
      expect(r.packs.filter((p) => packs.has(p.pack_id) && p.action === 'delete')).toEqual([])
      // The other leftovers were deleted; the queue is empty.
      expect(r.deleted_packs).toBe(queued.size - packs.size)
      expect(await pgdv.db.query('SELECT * FROM dv_files.gc_queue')).toEqual([])
      await checkoutSame('again', 'main', files)
    })
  })
}

describe('gc from the CLI', () => {
  let t: TestDatabase
  beforeAll(async () => {
    t = await freshDatabase()
  })
  afterAll(async () => {
    await t?.drop()
  })

  it('gc --dry-run --json, then gc --grace 0 --json; a bad --grace is a usage error', async () => {
    const conn = { url: t.url, home: t.home }
    const src = path.join(t.home, '..', `${path.basename(t.home)}-cli-src`)
    await fs.mkdir(src)
    try {
      await fs.writeFile(path.join(src, 'f.bin'), randomBytes(200_000))
      expect((await cli(['dataset', 'create', 'tmpds', '--files'], conn)).exitCode).toBe(0)
      expect((await cli(['add', 'tmpds', src], conn)).exitCode).toBe(0)
      expect((await cli(['dataset', 'drop', 'tmpds', '--force'], conn)).exitCode).toBe(0)
      const dry = await cli<{ dry_run: boolean; deleted_packs: number }>(['gc', '--dry-run', '--grace', '0', '--json'], conn)
      expect(dry.exitCode, dry.stderr).toBe(0)
      expect(dry.json).toMatchObject({ dry_run: true, deleted_packs: 1 })
      const kept = await cli(['gc'], conn) // default grace 1h: the pack is young
      expect(kept.stdout).toMatch(/deleted 0 pack\(s\), 0\.0 MB; kept 0 live, 1 within the grace period/)
      const real = await cli<{ deleted_packs: number; deleted_bytes: number }>(['gc', '--grace', '0', '--json'], conn)
      expect(real.json).toMatchObject({ deleted_packs: 1 })
      expect(real.json!.deleted_bytes).toBeGreaterThan(200_000)
      const bad = await cli(['gc', '--grace', 'soon'], conn)
      expect(bad.exitCode).toBe(2)
      expect(bad.stderr).toMatch(/^Error: --grace "soon" is not a duration\. Give e\.g\. --grace 1h/)
    } finally {
      await fs.rm(src, { recursive: true, force: true })
    }
  })

  it('parses durations', () => {
    expect(parseDuration('0', '--grace')).toBe(0)
    expect(parseDuration('90s', '--grace')).toBe(90_000)
    expect(parseDuration('1h30m', '--grace')).toBe(5_400_000)
    expect(parseDuration('2d', '--grace')).toBe(172_800_000)
    expect(parseDuration('1.5h', '--grace')).toBe(5_400_000)
    expect(() => parseDuration('', '--wait')).toThrow(/not a duration/)
    expect(() => parseDuration('10', '--wait')).toThrow(/not a duration/)
    expect(() => parseDuration('-1h', '--wait')).toThrow(/not a duration/)
  })
})
