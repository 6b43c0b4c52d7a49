// Ingest below the version commit: chunks, packs, index rows, sessions, recovery,
// checkout of file rows, corruption, and the walk's bad inputs. Real PostgreSQL and
// the filesystem store.

import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { chunkBuffer, contentHashOf, EMPTY_CONTENT_HASH } from '../src/chunking/index.js'
import { checkoutRows, type FileRow } from '../src/files/checkout.js'
import { IngestSession, writeContentRows, type ContentRecord } from '../src/files/ingest.js'
import { resolveStoreUrl, s3Settings } from '../src/files/store.js'
import { walk } from '../src/files/walk.js'
import { s3Flags } from '../src/commands/init.js'
import { PackWriter, packKey } from '../src/packs/index.js'
import { FsStore } from '../src/store/index.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let pgdv: Pgdv
let work: string
let store: FsStore

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-files-'))
  store = new FsStore(path.join(work, 'store'))
})
afterAll(async () => {
  await pgdv?.close()
  await t?.drop()
  await fs.rm(work, { recursive: true, force: true })
})

async function tree(root: string, files: Record<string, Buffer | string>): Promise<void> {
  for (const [rel, data] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(root, rel)), { recursive: true })
    await fs.writeFile(path.join(root, rel), data)
  }
}

async function ingest(root: string): Promise<{ rows: FileRow[]; session: IngestSession }> {
  const { entries } = await walk([root])
  const session = await IngestSession.start({ db: pgdv.db, store, tempDir: path.join(work, 'tmp'), purpose: 'add', packTargetSize: 1 << 20, workers: 2 })
  const rows: FileRow[] = []
  for (const e of entries) {
    if (e.kind === 'symlink') {
      rows.push({ path: e.path, size: e.size, content_hash: null, mode: e.mode, link_target: e.linkTarget! })
      continue
    }
    const rec = await session.addFile(e)
    rows.push({ path: e.path, size: rec.size, content_hash: rec.hash, mode: e.mode, link_target: null })
  }
  await session.finish()
  await pgdv.db.tx((c) => writeContentRows(c, session.contents.values(), null))
  await session.end('committed')
  return { rows, session }
}

async function same(a: string, b: string): Promise<void> {
  const la = (await fs.readdir(a, { recursive: true })).sort()
  const lb = (await fs.readdir(b, { recursive: true })).sort()
  expect(lb).toEqual(la)
  for (const rel of la) {
    const st = await fs.lstat(path.join(a, rel))
    if (st.isSymbolicLink()) expect(await fs.readlink(path.join(b, rel))).toBe(await fs.readlink(path.join(a, rel)))
    else if (st.isFile()) expect(sha(await fs.readFile(path.join(b, rel)))).toBe(sha(await fs.readFile(path.join(a, rel))))
  }
}

describe('ingest and checkout of file rows', () => {
  it('round-trips a tree byte for byte (big, small, empty, nested, symlink) and dedups a second ingest', async () => {
    const src = path.join(work, 'src1')
    const big = randomBytes(3 * 1024 * 1024 + 17)
    await tree(src, { 'big.bin': big, 'copy.bin': big, 'a/small.txt': 'hello\n', 'a/b/empty': '', 'a/b/c/mid.bin': randomBytes(100_000) })
    await fs.symlink('a/small.txt', path.join(src, 'link'))
    const { rows, session } = await ingest(src)
    expect(rows.map((r) => r.path)).toEqual(['a/b/c/mid.bin', 'a/b/empty', 'a/small.txt', 'big.bin', 'copy.bin', 'link'])
    // The content hash is SHA-256 over the chunk digests (docs/files.md), recomputable in SQL from the index.
    const bigHash = rows.find((r) => r.path === 'big.bin')!.content_hash!
    const { h } = await pgdv.db.one<{ h: string }>(
      `SELECT encode(sha256(convert_to(E'pgdv-content-v1\\n', 'UTF8') || string_agg(decode(chunk_hash, 'hex'), ''::bytea ORDER BY seq)), 'hex') AS h
       FROM dv_files.content_chunks WHERE content_hash = $1`,
      [bigHash],
    )
    expect(h).toBe(bigHash)
    expect(bigHash).toBe(contentHashOf(chunkBuffer(big).chunks.map((c) => c.hash)))
    expect(session.stats.newBytes).toBeLessThan(big.length + 200_000)
    expect(session.stats.packs).toBeGreaterThanOrEqual(3)

    const out = path.join(work, 'out1')
    const st = await checkoutRows(rows, { db: pgdv.db, store, out })
    expect(st).toMatchObject({ files: 5, links: 1 })
    await same(src, out)

    // Same tree again: PostgreSQL says every chunk is stored; nothing is uploaded.
    const again = await ingest(src)
    expect(again.session.stats.newBytes).toBe(0)
    expect(again.session.stats.packs).toBe(0)
  })

  it('checks out a content stored under the old definition (hash = plain SHA-256 of the bytes), verified by hashing its bytes', async () => {
    const src = path.join(work, 'legacy')
    const data = randomBytes(300_000)
    await tree(src, { 'old.bin': data })
    const { rows, session } = await ingest(src)
    const rec = session.contents.get(rows[0].content_hash!)!
    await pgdv.db.tx((c) => writeContentRows(c, [{ ...rec, hash: sha(data) }], null))
    const out = path.join(work, 'legacy-out')
    await checkoutRows([{ ...rows[0], content_hash: sha(data) }], { db: pgdv.db, store, out })
    expect(sha(await fs.readFile(path.join(out, 'old.bin')))).toBe(sha(data))
    // Same chunks under a hash that matches neither definition: refused as corrupt.
    const wrong = 'ab'.repeat(32)
    await pgdv.db.tx((c) => writeContentRows(c, [{ ...rec, hash: wrong }], null))
    await expect(checkoutRows([{ ...rows[0], content_hash: wrong }], { db: pgdv.db, store, out: path.join(work, 'legacy-bad') })).rejects.toThrow(/old\.bin is corrupt/)
  })

  it('refuses a non-empty checkout folder unless forced', async () => {
    const out = path.join(work, 'busy')
    await tree(out, { 'x.txt': 'x' })
    await expect(checkoutRows([], { db: pgdv.db, store, out })).rejects.toThrow(/checkout folder .* is not empty.*/)
    await expect(checkoutRows([], { db: pgdv.db, store, out, force: true })).resolves.toMatchObject({ files: 0 })
  })

  it('a flipped byte in a pack fails the checkout naming the file, chunk and pack', async () => {
    const src = path.join(work, 'src2')
    await tree(src, { 'victim.bin': randomBytes(200_000) })
    const { rows } = await ingest(src)
    const { pack_id } = await pgdv.db.one<{ pack_id: string }>(
      'SELECT c.pack_id FROM dv_files.content_chunks cc JOIN dv_files.chunks c ON c.hash = cc.chunk_hash WHERE cc.content_hash = $1 AND cc.seq = 0',
      [rows[0].content_hash],
    )
    const file = store.pathOf(packKey(pack_id))
    const bytes = await fs.readFile(file)
    bytes[10] ^= 0xff
    await fs.chmod(file, 0o644)
    await fs.writeFile(file, bytes)
    const err = await checkoutRows(rows, { db: pgdv.db, store, out: path.join(work, 'out2') }).catch((e: Error) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as Error).message).toMatch(/victim\.bin/)
    expect((err as Error).message).toMatch(/chunk [0-9a-f]{64} in pack [0-9a-f]{64}.*corrupt/)
    await expect(fs.stat(path.join(work, 'out2', 'victim.bin'))).rejects.toThrow() // no half-written file left
  })

  it('a missing pack fails naming the file and pack', async () => {
    const src = path.join(work, 'src3')
    await tree(src, { 'gone.bin': randomBytes(50_000) })
    const { rows } = await ingest(src)
    // 50 kB may be one chunk or two (content-defined); take the pack of its first.
    const { pack_id } = await pgdv.db.one<{ pack_id: string }>('SELECT c.pack_id FROM dv_files.content_chunks cc JOIN dv_files.chunks c ON c.hash = cc.chunk_hash WHERE cc.content_hash = $1 ORDER BY cc.seq LIMIT 1', [rows[0].content_hash])
    await store.delete(packKey(pack_id))
    await expect(checkoutRows(rows, { db: pgdv.db, store, out: path.join(work, 'out3') })).rejects.toThrow(new RegExp(`gone\\.bin.*pack ${pack_id} is missing`))
  })

  it('registers a pack an earlier run uploaded but never registered, instead of uploading it again', async () => {
    // Simulate a run killed between upload and registration: record + upload, no index rows.
    const data = randomBytes(300_000)
    const { id } = await pgdv.db.one<{ id: string }>("INSERT INTO dv_files.ingest_sessions (purpose, state) VALUES ('add', 'failed') RETURNING id")
    const w = new PackWriter({
      store,
      tempDir: path.join(work, 'tmp'),
      onSeal: async (p) => {
        await pgdv.db.query('INSERT INTO dv_files.session_packs (session_id, pack_id, object_key, size) VALUES ($1, $2, $3, $4)', [id, p.packId, packKey(p.packId), p.size])
      },
    })
    const { chunkBuffer } = await import('../src/chunking/index.js')
    for (const c of chunkBuffer(data).chunks) await w.add(c.hash, c.data)
    await w.finish()
    expect((await pgdv.db.query('SELECT * FROM dv.unregistered_packs()')).length).toBe(1)

    const src = path.join(work, 'src4')
    await tree(src, { 'resume.bin': data })
    const { session } = await ingest(src)
    expect(session.stats.recoveredPacks).toBe(1)
    expect(session.stats.newBytes).toBe(0)
    expect((await pgdv.db.query('SELECT * FROM dv.unregistered_packs()')).length).toBe(0)
  })

  it('a content whose chunk is not registered cannot be written (foreign keys)', async () => {
    await expect(
      pgdv.db.tx((c) => writeContentRows(c, [{ hash: 'f'.repeat(64), size: 10, chunks: ['0'.repeat(64)] }], null)),
    ).rejects.toThrow(/foreign key/)
  })
})

describe('walk: what add accepts', () => {
  it('applies .pgdvignore (gitignore syntax, nested) and keeps symlinks as links', async () => {
    const src = path.join(work, 'ign')
    await tree(src, {
      '.pgdvignore': '*.tmp\ncache/\n!keep.tmp\n',
      'a.txt': 'a',
      'b.tmp': 'b',
      'keep.tmp': 'k',
      'cache/x': 'x',
      'sub/.pgdvignore': 'secret*\n',
      'sub/secret.txt': 's',
      'sub/public.txt': 'p',
    })
    await fs.symlink('/nonexistent/target', path.join(src, 'dangling'))
    const { entries } = await walk([src])
    expect(entries.map((e) => e.path)).toEqual(['.pgdvignore', 'a.txt', 'dangling', 'keep.tmp', 'sub/.pgdvignore', 'sub/public.txt'])
    expect(entries.find((e) => e.path === 'dangling')).toMatchObject({ kind: 'symlink', linkTarget: '/nonexistent/target' })
  })

  it('skips special files with a warning', async () => {
    const src = path.join(work, 'special')
    await tree(src, { 'f.txt': 'f' })
    execFileSync('mkfifo', [path.join(src, 'pipe')])
    const { entries, warnings } = await walk([src])
    expect(entries.map((e) => e.path)).toEqual(['f.txt'])
    expect(warnings).toEqual([expect.stringMatching(/skipped .*pipe: not a regular file/)])
  })

  it('refuses paths with a newline and paths that are not UTF-8, naming them', async () => {
    const nl = path.join(work, 'nl')
    await tree(nl, { 'bad\nname.txt': 'x' })
    await expect(walk([nl])).rejects.toThrow(/bad\\nname\.txt.*newline/)
    const bin = path.join(work, 'latin1')
    await fs.mkdir(bin)
    await fs.writeFile(Buffer.concat([Buffer.from(bin + '/caf'), Buffer.from([0xe9]), Buffer.from('.txt')]), 'x')
    await expect(walk([bin])).rejects.toThrow(/caf.*\.txt.* is not valid UTF-8/)
  })

  it('an unreadable file fails naming the file', async () => {
    // Tests run as root, who reads any mode: a folder where the file was gives a read error instead.
    const src = path.join(work, 'unread')
    await tree(src, { 'locked.bin': randomBytes(100) })
    const { entries } = await walk([src])
    const session = await IngestSession.start({ db: pgdv.db, store, tempDir: path.join(work, 'tmp'), purpose: 'add' })
    await fs.rm(path.join(src, 'locked.bin'))
    await fs.mkdir(path.join(src, 'locked.bin')) // now a folder: EISDIR on read
    await expect(session.addFile(entries[0])).rejects.toThrow(/cannot read .*locked\.bin \(EISDIR\)/)
    await session.abort()
  })

  it('addFiles reads small files in worker batches: same contents as addFile, a file changed since the walk is re-read, an unreadable one is named', async () => {
    const src = path.join(work, 'batch')
    const files: Record<string, string | Buffer> = { 'empty': '', 'grows.txt': 'short' }
    for (let i = 0; i < 600; i++) files[`d${i % 7}/f${i}.bin`] = randomBytes(1 + ((i * 97) % 9000))
    await tree(src, files)
    const { entries } = await walk([src])
    // Changed after the walk: bigger than the small-file limit now.
    await fs.writeFile(path.join(src, 'grows.txt'), randomBytes(200_000))
    const session = await IngestSession.start({ db: pgdv.db, store, tempDir: path.join(work, 'tmp'), purpose: 'add' })
    const got = new Map<string, ContentRecord>()
    await session.addFiles(entries, (e, rec) => got.set(e.path!, rec))
    await session.finish()
    await pgdv.db.tx((c) => session.writeContents(c, null))
    await session.end('committed')
    expect(got.size).toBe(entries.length)
    for (const e of entries) {
      const data = await fs.readFile(e.abs)
      const { chunks, summary } = chunkBuffer(data)
      expect(got.get(e.path)!, e.path).toMatchObject({ hash: summary.hash, size: data.length, chunks: chunks.map((c) => c.hash) })
    }
    expect(got.get('empty')!.hash).toBe(EMPTY_CONTENT_HASH)
    // Every content reached the index with its chunk list (most of them written while reading).
    const { n } = await pgdv.db.one<{ n: string }>('SELECT count(*) AS n FROM dv_files.contents WHERE hash = ANY($1::text[])', [[...new Set([...got.values()].map((r) => r.hash))]])
    expect(Number(n)).toBe(new Set([...got.values()].map((r) => r.hash)).size)

    const bad = await IngestSession.start({ db: pgdv.db, store, tempDir: path.join(work, 'tmp'), purpose: 'add' })
    await fs.rm(path.join(src, 'd3/f3.bin'))
    await fs.mkdir(path.join(src, 'd3/f3.bin')) // a folder now: EISDIR on read
    await expect(bad.addFiles(entries, () => undefined)).rejects.toThrow(/cannot read .*f3\.bin \(EISDIR\)/)
    await bad.abort()
  })

  it('a file that keeps changing while read fails naming it', async () => {
    const src = path.join(work, 'changing')
    await tree(src, { 'grow.bin': randomBytes(20 * 1024 * 1024) })
    const { entries } = await walk([src])
    // Stale size/mtime from the walk and a file that changes again before the retry's check.
    const session = await IngestSession.start({ db: pgdv.db, store, tempDir: path.join(work, 'tmp'), purpose: 'add' })
    let n = 0
    const timer = setInterval(() => void fs.appendFile(path.join(src, 'grow.bin'), `x${n++}`), 2)
    try {
      await expect(session.addFile(entries[0])).rejects.toThrow(/grow\.bin changed while it was being read/)
    } finally {
      clearInterval(timer)
      await session.abort()
    }
  })
})

describe('store settings (pure)', () => {
  it('resolves store URLs against the home', () => {
    expect(resolveStoreUrl('/h', 'objects')).toBe('/h/objects')
    expect(resolveStoreUrl('/h', 'file://objects')).toBe('/h/objects')
    expect(resolveStoreUrl('/h', 'file:///data/o')).toBe('/data/o')
    expect(resolveStoreUrl('/h', 's3://b/p')).toBe('s3://b/p')
  })

  it('environment overrides the recorded S3 settings', () => {
    const cfg = { endpoint: 'http://a:9000', region: 'eu-west-1', forcePathStyle: true }
    expect(s3Settings(cfg, {})).toEqual(cfg)
    expect(s3Settings(cfg, { PGDV_S3_ENDPOINT: 'http://b:9000', PGDV_S3_REGION: 'us-east-2', PGDV_S3_FORCE_PATH_STYLE: 'false' })).toEqual({
      endpoint: 'http://b:9000',
      region: 'us-east-2',
      forcePathStyle: false,
    })
    expect(s3Settings(undefined, { AWS_REGION: 'ap-south-1' })).toEqual({ endpoint: undefined, region: 'ap-south-1', forcePathStyle: undefined })
  })

  it('init records only the S3 flags given', () => {
    expect(s3Flags({})).toBeUndefined()
    expect(s3Flags({ 's3-endpoint': 'http://x:9000' })).toEqual({ endpoint: 'http://x:9000' })
    expect(s3Flags({ 's3-region': 'r', 's3-path-style': false })).toEqual({ region: 'r', forcePathStyle: false })
  })
})
