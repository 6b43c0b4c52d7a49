// File datasets end to end on the filesystem store: the CLI (add, cat, stats, blob),
// checkout through the API, and log / diff / branches / merge served by the row engine.

import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Pgdv } from '../src/api/client.js'
import { addFiles, checkoutFiles, storageStats } from '../src/api/files.js'
import { chunkBuffer, contentHashOf } from '../src/chunking/index.js'
import { cli } from './helpers/cli.js'
import { freshDatabase, openPgdv, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let pgdv: Pgdv
let work: string
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const conn = () => ({ url: t.url, home: t.home })

beforeAll(async () => {
  t = await freshDatabase()
  pgdv = await openPgdv(t)
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-files-e2e-'))
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

async function listTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const rel of (await fs.readdir(root, { recursive: true })).sort()) {
    const p = path.join(root, rel)
    const st = await fs.lstat(p)
    if (st.isSymbolicLink()) out[rel] = `-> ${await fs.readlink(p)}`
    else if (st.isFile()) out[rel] = sha(await fs.readFile(p))
  }
  return out
}

describe('pgdv add / checkout / cat / stats on the filesystem store', () => {
  const src = () => path.join(work, 'src')
  const big = randomBytes(5 * 1024 * 1024)

  it('adds a folder (ignore rules, symlink, FIFO skipped with a warning) and checks it out byte-identical', async () => {
    expect((await cli(['dataset', 'create', 'pics', '--files'], conn())).exitCode).toBe(0)
    await tree(src(), { 'big.bin': big, 'a/x.txt': 'x\n', 'a/y.txt': 'y\n', 'tmp/junk.tmp': 'junk', '.pgdvignore': 'tmp/\n', 'empty': '' })
    await fs.symlink('a/x.txt', path.join(src(), 'link-to-x'))
    execFileSync('mkfifo', [path.join(src(), 'fifo')])
    const r = await cli<{ created: boolean; files: number; links: number; version_id: string; warnings: string[] }>(['add', 'pics', src(), '-m', 'v1', '--tag', 'first', '--json'], conn())
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ created: true, files: 5, links: 1 })
    expect(r.json!.warnings).toEqual([expect.stringMatching(/skipped .*fifo/)])

    const out = path.join(work, 'co1')
    const co = await checkoutFiles(pgdv, { dataset: 'pics', ref: 'first', out })
    expect(co).toMatchObject({ files: 5, links: 1, bytes: big.length + 9 }) // + x\n, y\n, tmp/\n (.pgdvignore)
    await fs.rm(path.join(src(), 'fifo'))
    const want = await listTree(src())
    delete want['tmp/junk.tmp']
    expect(await listTree(out)).toEqual(want)
  })

  it('pgdv checkout writes a files dataset to a folder (rows-io command, files path)', async () => {
    const out = path.join(work, 'co-cli')
    const r = await cli<{ format: string; rows: number }>(['checkout', 'pics', 'first', '--out', out, '--json'], conn())
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ format: 'files', rows: 5 })
    expect(sha(await fs.readFile(path.join(out, 'big.bin')))).toBe(sha(big))
    const again = await cli(['checkout', 'pics', 'first', '--out', out], conn())
    expect(again.exitCode).toBe(1)
    expect(again.stderr).toMatch(/is not empty.*--force/)
  })

  it('cat streams one file to stdout; a missing path is a clear error', async () => {
    const r = await cli(['cat', 'pics', 'main', 'a/x.txt'], conn())
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout).toBe('x\n')
    const missing = await cli(['cat', 'pics', 'main', 'nope.txt'], conn())
    expect(missing.exitCode).toBe(1)
    expect(missing.stderr).toMatch(/"nope\.txt" is not a file of dataset "pics" at main/)
  })

  it('v2 (an edit, a removal, a new file): only new chunks stored; log and diff come from the row engine', async () => {
    const edited = Buffer.concat([big.subarray(0, 2_000_000), Buffer.from('inserted'), big.subarray(2_000_000)])
    await fs.writeFile(path.join(src(), 'big.bin'), edited)
    await fs.rm(path.join(src(), 'a/y.txt'))
    await fs.writeFile(path.join(src(), 'a/z.txt'), 'z\n')
    const r = await cli<{ added: number; removed: number; modified: number; new_bytes: number; bytes: number }>(['add', 'pics', src(), '-m', 'v2', '--json'], conn())
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ added: 1, removed: 1, modified: 1 })
    expect(r.json!.new_bytes).toBeLessThan(600_000) // a few 64 KiB chunks around the edit, not 5 MiB

    const log = await pgdv.db.query<{ message: string }>("SELECT message FROM dv.log('pics', 'main')")
    expect(log.map((l) => l.message).slice(0, 2)).toEqual(['v2', 'v1'])
    const diff = await pgdv.db.query<{ change: string; key: { path: string } }>("SELECT change, key FROM dv.diff('pics', 'first', 'main') ")
    expect(diff.map((d) => `${d.change} ${d.key.path}`).sort((a, b) => a.split(' ')[1].localeCompare(b.split(' ')[1]))).toEqual(['removed a/y.txt', 'added a/z.txt', 'modified big.bin'])

    const again = await cli<{ created: boolean }>(['add', 'pics', src(), '--json'], conn())
    expect(again.json).toMatchObject({ created: false })
  })

  it('--mode append adds files to the head; a branch and a merge work on files', async () => {
    const extra = path.join(work, 'extra')
    await tree(extra, { 'new/one.txt': '1' })
    const r = await cli<{ added: number; removed: number }>(['add', 'pics', extra, '--mode', 'append', '-m', 'append', '--json'], conn())
    expect(r.json).toMatchObject({ added: 1, removed: 0 })

    await pgdv.db.query("SELECT * FROM dv.branch_create('pics', 'dev', 'main')")
    const devFiles = path.join(work, 'dev')
    await tree(devFiles, { 'dev-only.txt': 'dev' })
    await addFiles(pgdv, { dataset: 'pics', paths: [devFiles], mode: 'append', branch: 'dev', message: 'dev work' })
    const merged = await pgdv.db.query<{ status: string }>("SELECT status FROM dv.merge('pics', 'dev', 'main')")
    expect(merged[0].status).toMatch(/merged|fast-forward/)
    const out = path.join(work, 'co-merged')
    await checkoutFiles(pgdv, { dataset: 'pics', ref: 'main', out })
    expect(await fs.readFile(path.join(out, 'dev-only.txt'), 'utf8')).toBe('dev')
    expect(await fs.readFile(path.join(out, 'new/one.txt'), 'utf8')).toBe('1')
    expect(await fs.readFile(path.join(out, 'a/z.txt'), 'utf8')).toBe('z\n')
  })

  it('stats: logical vs stored bytes per dataset and overall, in SQL and --json', async () => {
    const rows = await storageStats(pgdv)
    const pics = rows.find((r) => r.dataset === 'pics')!
    expect(pics.versions).toBeGreaterThanOrEqual(4)
    expect(pics.logical_bytes).toBeGreaterThan(3 * big.length)
    expect(pics.stored_bytes).toBeLessThan(big.length + 700_000)
    expect(pics.dedup_ratio).toBeGreaterThan(2.5)
    expect(rows[rows.length - 1].dataset).toBeNull()
    const j = await cli<{ logical_bytes: number; stored_bytes: number }>(['stats', 'pics', '--json'], conn())
    expect(j.json).toMatchObject({ logical_bytes: pics.logical_bytes, stored_bytes: pics.stored_bytes })
    const text = await cli(['stats'], conn())
    expect(text.stdout).toMatch(/DATASET\s+VERSIONS\s+FILES\s+LOGICAL_MB\s+STORED_MB\s+DEDUP/)
  })
})

describe('bad inputs', () => {
  it('refuses a non-empty checkout folder unless --force; nothing written', async () => {
    const out = path.join(work, 'busy')
    await tree(out, { 'mine.txt': 'keep' })
    await expect(checkoutFiles(pgdv, { dataset: 'pics', ref: 'main', out })).rejects.toMatchObject({
      message: expect.stringMatching(/checkout folder .*busy is not empty/),
      hint: expect.stringMatching(/--force/),
    })
    expect(await fs.readdir(out)).toEqual(['mine.txt'])
    await expect(checkoutFiles(pgdv, { dataset: 'pics', ref: 'main', out, force: true })).resolves.toMatchObject({ links: 1 })
  })

  it('a full disk during checkout is reported as such, naming the file', async (ctx) => {
    // A 1 MiB tmpfs needs root and mount rights; elsewhere the test is skipped.
    const small = path.join(work, 'tiny-disk')
    await fs.mkdir(small)
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small], { stdio: 'ignore' })
    } catch {
      ctx.skip()
    }
    try {
      const err = await checkoutFiles(pgdv, { dataset: 'pics', ref: 'first', out: path.join(small, 'out') }).catch((e: Error & { hint?: string }) => e)
      expect(err).toMatchObject({ message: expect.stringMatching(/the disk is full: could not write .*big\.bin/), hint: expect.stringMatching(/Free some space/) })
    } finally {
      execFileSync('umount', [small])
    }
  })

  it('checks out the empty root version of a new files dataset as an empty folder', async () => {
    await cli(['dataset', 'create', 'empty-files', '--files'], conn())
    const out = path.join(work, 'co-empty')
    await expect(checkoutFiles(pgdv, { dataset: 'empty-files', ref: 'main', out })).resolves.toMatchObject({ files: 0, links: 0 })
    expect(await fs.readdir(out)).toEqual([])
  })

  it('refuses a table dataset, an unknown dataset and a missing path, with one line each', async () => {
    await cli(['dataset', 'create', 'tbl'], conn())
    const a = await cli(['add', 'tbl', work], conn())
    expect(a.exitCode).toBe(2)
    expect(a.stderr).toMatch(/^Error: dataset "tbl" is a table dataset, not a files dataset/)
    const b = await cli(['add', 'nope', work], conn())
    expect(b.stderr).toMatch(/dataset "nope" does not exist.*dataset create nope --files/)
    const c = await cli(['add', 'pics', path.join(work, 'no-such-dir')], conn())
    expect(c.exitCode).toBe(1)
    expect(c.stderr).toMatch(/no-such-dir does not exist/)
  })

  it('a path with a newline is refused and no version is made', async () => {
    const bad = path.join(work, 'badnames')
    await tree(bad, { 'ok.txt': 'ok', 'two\nlines.txt': 'x' })
    const before = await pgdv.db.query("SELECT * FROM dv.log('pics', 'main')")
    const r = await cli(['add', 'pics', bad], conn())
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/two\\nlines\.txt.*contains a newline.*\.pgdvignore/)
    expect(await pgdv.db.query("SELECT * FROM dv.log('pics', 'main')")).toHaveLength(before.length)
  })
})

describe('stat cache', () => {
  it('a second add does not read files unchanged since the head was added; a rewrite with the old mtime is read; --reread reads all', async () => {
    await cli(['dataset', 'create', 'cached', '--files'], conn())
    const dir = path.join(work, 'cached')
    await tree(dir, { 'big.bin': randomBytes(1_000_000), 'small.txt': 'small\n', 'sub/other.bin': randomBytes(70_000) })
    // Files changed within 2 s before an add are never trusted (racy): let them age.
    await new Promise((r) => setTimeout(r, 2100))
    const first = await addFiles(pgdv, { dataset: 'cached', paths: [dir], message: 'c1' })
    expect(first).toMatchObject({ files: 3, unchanged: 0 })
    const second = await addFiles(pgdv, { dataset: 'cached', paths: [dir] })
    expect(second).toMatchObject({ files: 3, unchanged: 3, bytes: 0, created: false })

    // Same size, mtime set back: ctime still moves, so the file is read again.
    const p = path.join(dir, 'big.bin')
    const st = await fs.stat(p)
    const changed = randomBytes(1_000_000)
    await fs.writeFile(p, changed)
    await fs.utimes(p, st.atime, st.mtime)
    const third = await addFiles(pgdv, { dataset: 'cached', paths: [dir], message: 'c3' })
    expect(third).toMatchObject({ unchanged: 2, modified: 1, created: true })
    const out = path.join(work, 'co-cached')
    await checkoutFiles(pgdv, { dataset: 'cached', ref: 'main', out })
    expect(sha(await fs.readFile(path.join(out, 'big.bin')))).toBe(sha(changed))

    const reread = await cli<{ unchanged: number; created: boolean }>(['add', 'cached', dir, '--reread', '--json'], conn())
    expect(reread.json).toMatchObject({ unchanged: 0, created: false })
    // A branch has its own cache: a new one (same head) reads everything once.
    await pgdv.db.query("SELECT * FROM dv.branch_create('cached', 'other', 'main')")
    const other = await addFiles(pgdv, { dataset: 'cached', paths: [dir], branch: 'other' })
    expect(other.unchanged).toBe(0)
  })
})

describe('blobs', () => {
  it('blob put prints the content hash (JSON: also the plain SHA-256); blob get writes it back verified; unknown hashes are clear errors', async () => {
    const data = randomBytes(700_000)
    const file = path.join(work, 'weights.bin')
    await fs.writeFile(file, data)
    const put = await cli(['blob', 'put', file], conn())
    expect(put.exitCode, put.stderr).toBe(0)
    const hash = put.stdout.trim()
    expect(hash).toBe(contentHashOf(chunkBuffer(data).chunks.map((c) => c.hash)))
    const json = await cli<{ hash: string; sha256: string; size: number }>(['blob', 'put', file, '--json'], conn())
    expect(json.json).toMatchObject({ hash, sha256: sha(data), size: data.length })
    // A one-chunk blob too: its plain SHA-256 comes from its only chunk.
    await fs.writeFile(path.join(work, 'tiny.bin'), 'tiny')
    const tiny = await cli<{ hash: string; sha256: string }>(['blob', 'put', path.join(work, 'tiny.bin'), '--json'], conn())
    expect(tiny.json).toMatchObject({ hash: contentHashOf([sha(Buffer.from('tiny'))]), sha256: sha(Buffer.from('tiny')) })
    const out = path.join(work, 'weights.out')
    expect((await cli(['blob', 'get', hash, '--out', out], conn())).exitCode).toBe(0)
    expect(sha(await fs.readFile(out))).toBe(sha(data))
    const unknown = await cli(['blob', 'get', 'a'.repeat(64), '--out', path.join(work, 'u')], conn())
    expect(unknown.exitCode).toBe(1)
    expect(unknown.stderr).toMatch(/no blob or file with content hash a{64} is stored/)
    const bad = await cli(['blob', 'get', 'xyz', '--out', path.join(work, 'u')], conn())
    expect(bad.stderr).toMatch(/"xyz" is not a content hash/)
  })
})
