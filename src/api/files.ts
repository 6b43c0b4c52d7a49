// File datasets and blobs: add (ingest + version through the row engine), checkout,
// cat, blob put/get, storage stats. The chunking, packs and index work is in
// src/files; a version of a files dataset is rows (path, size, content_hash, mode,
// link_target) made with dv.stage + COPY + dv.commit, so log, diff, branches and
// merge of the row engine serve files unchanged.

import { createWriteStream } from 'node:fs'
import { rename, stat, unlink } from 'node:fs/promises'
import path from 'node:path'
import type { Writable } from 'node:stream'
import { parse } from 'csv-parse'
import type pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import type { ChunkerOptions } from '../chunking/index.js'
import { PgdvError, toPgdvError } from '../lib/errors.js'
import { createProgress } from '../lib/progress.js'
import { PackReader } from '../packs/index.js'
import { StoreError, type ObjectStore } from '../store/index.js'
import { checkoutRows, chunkRefs, contentSizes, streamContent, type CheckoutStats, type FileRow } from '../files/checkout.js'
import { copyRows } from '../files/copy.js'
import { IngestSession, type IngestStats } from '../files/ingest.js'
import { cachedHash, loadStatCache, saveStatCache } from '../files/statcache.js'
import { openHomeStore, storeError } from '../files/store.js'
import { walk, type WalkEntry } from '../files/walk.js'
import type { Pgdv } from './client.js'
import type { CommitResult } from './rows.js'

export interface FilesContext {
  /** Object store to use instead of the home's configured one (tests, library use). */
  store?: ObjectStore
  /** Show a progress bar on stderr when it is a TTY (the CLI turns it on). */
  progress?: boolean
}

export interface AddFilesInput extends FilesContext {
  dataset: string
  paths: string[]
  branch?: string
  tag?: string
  message?: string
  /** replace: the version holds exactly these files; append: these files are added to (or replace same paths in) the head's. */
  mode?: 'replace' | 'append'
  force?: boolean
  /** Read every file, even those the stat cache says are unchanged. */
  reread?: boolean
  cwd?: string
  chunker?: ChunkerOptions
  workers?: number
  packTargetSize?: number
  onWarning?: (line: string) => void
}

export interface AddFilesResult {
  dataset: string
  version_id: string
  parent_id: string | null
  branch: string
  created: boolean
  added: number
  removed: number
  modified: number
  files: number
  /** Files not read: unchanged since the add that made the branch head (stat cache). */
  unchanged: number
  links: number
  bytes: number
  new_bytes: number
  new_chunks: number
  packs: number
  recovered_packs: number
  warnings: string[]
}

export interface DatasetRow {
  id: string
  kind: string
}

export async function filesDataset(pgdv: Pgdv, name: string): Promise<DatasetRow> {
  const rows = await pgdv.db.query<DatasetRow>('SELECT id, kind FROM dv.datasets WHERE name = $1::text', [name])
  if (rows.length === 0) {
    throw new PgdvError(`dataset "${name}" does not exist`, { kind: 'not_found', hint: `Create it with \`pgdv dataset create ${name} --files\`` })
  }
  if (rows[0].kind !== 'files') {
    throw new PgdvError(`dataset "${name}" is a table dataset, not a files dataset`, { hint: 'Use `pgdv commit` for tables, or create a dataset with --files' })
  }
  return rows[0]
}

export function storeOf(pgdv: Pgdv, ctx: FilesContext): { store: ObjectStore; owned: boolean } {
  if (ctx.store) return { store: ctx.store, owned: false }
  return { store: openHomeStore(pgdv.home, pgdv.config), owned: true }
}

const tempDir = (pgdv: Pgdv): string => path.join(pgdv.home, 'tmp')

/**
 * `pgdv add`: chunks and stores the files, then commits a version of them. Killed
 * at any moment it leaves no version; run again, it uploads only what is missing.
 */
export async function addFiles(pgdv: Pgdv, input: AddFilesInput): Promise<AddFilesResult> {
  const ds = await filesDataset(pgdv, input.dataset)
  const mode = input.mode ?? 'replace'
  if (mode !== 'replace' && mode !== 'append') throw new PgdvError(`mode "${String(mode)}" is not known for files`, { hint: 'Use replace or append' })
  const walkStarted = Date.now()
  const { entries, warnings } = await walk(input.paths, input.cwd)
  for (const w of warnings) input.onWarning?.(w)
  const files = entries.filter((e) => e.kind === 'file')
  const branch = input.branch ?? 'main'
  // Files unchanged since the add that made the branch head are not read again (statcache.ts says when that is safe).
  const hashes = input.reread ? new Map<string, string>() : await unchangedFiles(pgdv, ds.id, branch, files)
  const toRead = hashes.size ? files.filter((e) => !hashes.has(e.path)) : files
  const { store, owned } = storeOf(pgdv, input)
  const bar = createProgress({ label: 'add', totalFiles: toRead.length, totalBytes: toRead.reduce((a, e) => a + e.size, 0), enabled: input.progress ?? false })
  let session: IngestSession | undefined
  try {
    session = await IngestSession.start({
      db: pgdv.db,
      store,
      tempDir: tempDir(pgdv),
      datasetId: ds.id,
      purpose: 'add',
      chunker: input.chunker,
      workers: input.workers,
      packTargetSize: input.packTargetSize,
      onProgress: (p) => bar.update({ files: p.files, bytes: p.bytes, newBytes: p.newBytes }),
    })
    const s = session
    const lap = timer()
    await s.addFiles(toRead, (e, rec) => hashes.set(e.path!, rec.hash))
    lap('read and chunk')
    const stats = await s.finish()
    lap('last packs')
    bar.stop()
    const version = await commitVersion(pgdv, ds, entries, hashes, s, input)
    await s.end('committed')
    // Best effort: without the cache the next add reads every file, nothing worse.
    await saveStatCache(pgdv.home, ds.id, branch, version.version_id, files.map((e) => ({ entry: e, hash: hashes.get(e.path)! })), walkStarted).catch(() => undefined)
    return {
      dataset: input.dataset,
      ...version,
      files: files.length,
      unchanged: files.length - toRead.length,
      links: entries.length - files.length,
      bytes: stats.bytes,
      new_bytes: stats.newBytes,
      new_chunks: stats.newChunks,
      packs: stats.packs,
      recovered_packs: stats.recoveredPacks,
      warnings,
    }
  } catch (e) {
    bar.stop()
    await session?.abort()
    // A failed upload can surface from any file's chunk batch, not only from finish(): the same line either way.
    throw e instanceof StoreError ? storeError(e) : toPgdvError(e)
  } finally {
    if (owned) await store.close?.()
  }
}

/** Content hashes (by dataset path) of the files the stat cache says are unchanged since the branch head was added, and still stored. */
async function unchangedFiles(pgdv: Pgdv, datasetId: string, branch: string, files: WalkEntry[]): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const head = await pgdv.db.query<{ v: string }>(`SELECT version_id::text AS v FROM dv.refs WHERE dataset_id = $1::bigint AND name = $2::text AND kind = 'branch'`, [datasetId, branch])
  const cache = await loadStatCache(pgdv.home, datasetId, branch, head[0]?.v ?? null)
  if (cache.size === 0) return out
  for (const e of files) {
    const h = cachedHash(cache, e)
    if (h) out.set(e.path, h)
  }
  if (out.size === 0) return out
  const stored = new Set(
    (await pgdv.db.query<{ hash: string }>('SELECT hash FROM dv_files.contents WHERE hash = ANY($1::text[])', [[...new Set(out.values())]])).map((r) => r.hash),
  )
  for (const [p, h] of out) if (!stored.has(h)) out.delete(p)
  return out
}

/** PGDV_TIMING=1 prints how long each step of a commit took (to stderr). */
function timer(): (what: string) => void {
  if (!process.env.PGDV_TIMING) return () => undefined
  let t = performance.now()
  return (what) => {
    const now = performance.now()
    process.stderr.write(`pgdv timing: ${what} ${(now - t).toFixed(0)} ms\n`)
    t = now
  }
}

/** Contents, then the version, in one transaction: a version never points to a content or chunk that is not registered. */
async function commitVersion(
  pgdv: Pgdv,
  ds: DatasetRow,
  entries: WalkEntry[],
  hashes: Map<string, string>,
  session: IngestSession,
  input: AddFilesInput,
): Promise<Omit<AddFilesResult, 'dataset' | 'files' | 'unchanged' | 'links' | 'bytes' | 'new_bytes' | 'new_chunks' | 'packs' | 'recovered_packs' | 'warnings'>> {
  const lap = timer()
  return pgdv.db.tx(async (c) => {
    await session.writeContents(c, ds.id)
    // The session is marked committed in the version's transaction: whoever finds a
    // session 'committed' knows its version exists, even if the process died right after.
    await c.query(`UPDATE dv_files.ingest_sessions SET state = 'committed', finished_at = now() WHERE id = $1::bigint`, [session.sessionId])
    lap('contents')
    const staging = (await c.query<{ name: string }>('SELECT dv.stage(p_dataset => $1::text) AS name', [input.dataset])).rows[0].name
    await copyRows(
      c,
      `${staging} (path, size, content_hash, mode, link_target)`,
      entries.map((e) => [e.path, e.size, e.kind === 'file' ? hashes.get(e.path)! : null, e.mode, e.linkTarget ?? null]),
    )
    const res = await c.query<Pick<CommitResult, 'version_id' | 'parent_id' | 'branch' | 'created' | 'added' | 'removed' | 'modified'>>(
      `SELECT version_id, parent_id, branch, created, added, removed, modified FROM dv.commit(
         p_dataset => $1::text, p_staging => $2::regclass, p_mode => $3::text, p_branch => $4::text,
         p_message => $5::text, p_tag => $6::text, p_force => $7::boolean)`,
      [input.dataset, staging, input.mode === 'append' ? 'upsert' : 'replace', input.branch ?? 'main', input.message ?? null, input.tag ?? null, input.force ?? false],
    )
    lap('stage + copy + dv.commit')
    const v = res.rows[0]
    await recordSummary(c, input.dataset, ds.id, v.version_id)
    lap('summary')
    return {
      version_id: String(v.version_id),
      parent_id: v.parent_id === null ? null : String(v.parent_id),
      branch: v.branch,
      created: v.created,
      added: Number(v.added),
      removed: Number(v.removed),
      modified: Number(v.modified),
    }
  })
}

async function recordSummary(c: pg.ClientBase, dataset: string, datasetId: string, versionId: string): Promise<void> {
  const sql = (await c.query<{ sql: string }>('SELECT dv.rows_sql(p_dataset => $1::text, p_ref => $2::text) AS sql', [dataset, String(versionId)])).rows[0].sql
  await c.query(
    `INSERT INTO dv_files.version_summary (version_id, dataset_id, file_count, logical_bytes)
     SELECT $1::bigint, $2::bigint, count(*) FILTER (WHERE v.content_hash IS NOT NULL), coalesce(sum(v.size) FILTER (WHERE v.content_hash IS NOT NULL), 0)
     FROM (${sql}) v
     ON CONFLICT (version_id) DO NOTHING`,
    [versionId, datasetId],
  )
}

/** Streams the file rows of a version, ordered by path, through COPY (never all in memory). */
export async function* versionRows(pgdv: Pgdv, dataset: string, ref: string, where?: { path: string }): AsyncGenerator<FileRow> {
  // An empty version (the root of a new dataset has no columns at all) holds no files.
  const { n } = await pgdv.db.one<{ n: string }>('SELECT row_count AS n FROM dv.versions WHERE id = dv.resolve_ref(p_dataset => $1::text, p_ref => $2::text)', [dataset, ref])
  if (Number(n) === 0) return
  const sql = (await pgdv.db.one<{ sql: string }>('SELECT dv.rows_sql(p_dataset => $1::text, p_ref => $2::text) AS sql', [dataset, ref])).sql
  const client = await pgdv.db.pool.connect()
  try {
    const filter = where ? ` WHERE v.path = ${pgLiteral(where.path)}` : ''
    const stream = client.query(copyTo(`COPY (SELECT v.path, v.size, v.content_hash, v.mode, v.link_target FROM (${sql}) v${filter} ORDER BY v.path) TO STDOUT WITH (FORMAT csv)`))
    const parser = stream.pipe(parse({ relax_column_count: false }))
    stream.on('error', (e) => parser.destroy(e))
    for await (const rec of parser as AsyncIterable<string[]>) {
      yield {
        path: rec[0],
        size: Number(rec[1]),
        content_hash: rec[2] || null,
        mode: rec[3] === '' ? null : Number(rec[3]),
        link_target: rec[4] === '' ? null : rec[4],
      }
    }
  } catch (e) {
    throw toPgdvError(e)
  } finally {
    client.release()
  }
}

function pgLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`
}

export interface CheckoutFilesInput extends FilesContext {
  dataset: string
  ref: string
  out: string
  force?: boolean
  concurrency?: number
}

export interface CheckoutFilesResult extends CheckoutStats {
  dataset: string
  ref: string
  version_id: string
  out: string
}

/** Writes a version's files to a folder (refuses a non-empty one unless force), verifying every chunk and file hash. */
export async function checkoutFiles(pgdv: Pgdv, input: CheckoutFilesInput): Promise<CheckoutFilesResult> {
  await filesDataset(pgdv, input.dataset)
  const { version } = await pgdv.db.one<{ version: string }>('SELECT dv.resolve_ref(p_dataset => $1::text, p_ref => $2::text)::text AS version', [input.dataset, input.ref])
  const { store, owned } = storeOf(pgdv, input)
  let bar = createProgress({ enabled: false })
  try {
    if (input.progress) {
      const s = await pgdv.db.query<{ file_count: string; logical_bytes: string }>('SELECT file_count, logical_bytes FROM dv_files.version_summary WHERE version_id = $1::bigint', [version])
      if (s.length) bar = createProgress({ label: 'checkout', totalFiles: Number(s[0].file_count), totalBytes: Number(s[0].logical_bytes), enabled: true })
    }
    const stats = await checkoutRows(versionRows(pgdv, input.dataset, version), {
      db: pgdv.db,
      store,
      out: input.out,
      force: input.force,
      concurrency: input.concurrency,
      label: `dataset "${input.dataset}" at ${input.ref}`,
      onProgress: (p) => bar.update({ files: p.files, bytes: p.bytes }),
    })
    return { dataset: input.dataset, ref: input.ref, version_id: version, out: path.resolve(input.out), ...stats }
  } finally {
    bar.stop()
    if (owned) await store.close?.()
  }
}

export interface CatFileInput extends FilesContext {
  dataset: string
  ref: string
  path: string
}

/** Streams one file of a version to `dest` (stdout for `pgdv cat`), verified. */
export async function catFile(pgdv: Pgdv, input: CatFileInput, dest: Writable): Promise<{ size: number; content_hash: string }> {
  await filesDataset(pgdv, input.dataset)
  let row: FileRow | undefined
  for await (const r of versionRows(pgdv, input.dataset, input.ref, { path: input.path })) row = r
  if (!row) {
    throw new PgdvError(`"${input.path}" is not a file of dataset "${input.dataset}" at ${input.ref}`, {
      kind: 'not_found',
      hint: `List its files with \`pgdv diff ${input.dataset} <root> ${input.ref}\` or check it out`,
    })
  }
  if (row.link_target !== null) {
    dest.write(row.link_target)
    return { size: Buffer.byteLength(row.link_target), content_hash: '' }
  }
  const { store, owned } = storeOf(pgdv, input)
  try {
    const refs = (await chunkRefs(pgdv.db, [row.content_hash!])).get(row.content_hash!)!
    await streamContent(new PackReader(store), refs, row.content_hash!, row.size, dest, `${row.path} of dataset "${input.dataset}" at ${input.ref}`)
    return { size: row.size, content_hash: row.content_hash! }
  } finally {
    if (owned) await store.close?.()
  }
}

export interface PutBlobInput extends FilesContext {
  file: string
  chunker?: ChunkerOptions
}

export interface BlobResult {
  /** Content hash (SHA-256 over the chunk digests, see src/chunking/content-hash.ts): what getBlob takes. */
  hash: string
  /** Plain SHA-256 of the bytes (what `sha256sum` prints), for model registries that record it. */
  sha256: string
  size: number
  new_bytes: number
}

/** Stores any file content-addressed (chunks in packs, deduplicated) and returns its content hash and SHA-256. */
export async function putBlob(pgdv: Pgdv, input: PutBlobInput): Promise<BlobResult> {
  const abs = path.resolve(input.file)
  let st
  try {
    st = await stat(abs)
  } catch (e) {
    throw new PgdvError(`cannot read ${abs} (${(e as NodeJS.ErrnoException).code})`, { kind: 'not_found', hint: 'Check the path' })
  }
  if (!st.isFile()) throw new PgdvError(`${abs} is not a regular file`, { hint: 'Give a file (blob put stores one file)' })
  const { store, owned } = storeOf(pgdv, input)
  let session: IngestSession | undefined
  try {
    session = await IngestSession.start({ db: pgdv.db, store, tempDir: tempDir(pgdv), purpose: 'blob', chunker: input.chunker })
    const rec = await session.addFile({ abs, size: st.size, mtimeMs: st.mtimeMs }, { plainSha256: true })
    const stats: IngestStats = await session.finish()
    const s = session
    await pgdv.db.tx(async (c) => {
      await s.writeContents(c, null)
      await c.query('INSERT INTO dv_files.blobs (content_hash) VALUES ($1::text) ON CONFLICT DO NOTHING', [rec.hash])
    })
    await session.end('committed')
    return { hash: rec.hash, sha256: rec.sha256!, size: rec.size, new_bytes: stats.newBytes }
  } catch (e) {
    await session?.abort()
    // A failed upload can surface from any file's chunk batch, not only from finish(): the same line either way.
    throw e instanceof StoreError ? storeError(e) : toPgdvError(e)
  } finally {
    if (owned) await store.close?.()
  }
}

export interface GetBlobInput extends FilesContext {
  hash: string
  out: string
  force?: boolean
}

/** Writes a stored content (a blob, or any file's content hash) to a file, verified; refuses to overwrite unless force. */
export async function getBlob(pgdv: Pgdv, input: GetBlobInput): Promise<{ hash: string; size: number; out: string }> {
  const hash = input.hash.toLowerCase()
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new PgdvError(`"${input.hash}" is not a content hash`, { hint: 'Give the 64 hex digits `pgdv blob put` printed' })
  const sizes = await contentSizes(pgdv.db, [hash])
  const info = sizes.get(hash)
  if (!info) {
    throw new PgdvError(`no blob or file with content hash ${hash} is stored`, {
      kind: 'not_found',
      hint: 'Give the hash `pgdv blob put` printed (its content hash, not the file\'s sha256sum), or store it with `pgdv blob put`',
    })
  }
  const out = path.resolve(input.out)
  if (!input.force) {
    const exists = await stat(out).then(() => true, () => false)
    if (exists) throw new PgdvError(`${out} already exists`, { kind: 'conflict', hint: 'Choose another --out, or pass --force to overwrite it' })
  }
  const { store, owned } = storeOf(pgdv, input)
  const tmp = `${out}.pgdv-${process.pid}.tmp`
  try {
    const refs = (await chunkRefs(pgdv.db, [hash])).get(hash)!
    await streamContent(new PackReader(store), refs, hash, info.size, createWriteStream(tmp, { flags: 'w' }), `blob ${hash}`)
    await rename(tmp, out)
    return { hash, size: info.size, out }
  } catch (e) {
    await unlink(tmp).catch(() => undefined)
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOSPC') throw new PgdvError(`the disk is full: could not write ${out}`, { kind: 'io', hint: 'Free some space and run it again' })
    throw toPgdvError(e)
  } finally {
    if (owned) await store.close?.()
  }
}

export interface StorageStatsRow {
  dataset: string | null
  versions: number
  files: number
  logical_bytes: number
  stored_bytes: number
  dedup_ratio: number | null
  chunks: number
  packs: number
}

/** dv.storage_stats(): one row per files dataset and an overall row (dataset null); or only the named dataset's. */
export async function storageStats(pgdv: Pgdv, dataset?: string): Promise<StorageStatsRow[]> {
  if (dataset) await filesDataset(pgdv, dataset)
  const rows = await pgdv.db.query<Record<string, string | null>>('SELECT * FROM dv.storage_stats()')
  const out = rows.map((r) => ({
    dataset: r.dataset,
    versions: Number(r.versions),
    files: Number(r.files),
    logical_bytes: Number(r.logical_bytes),
    stored_bytes: Number(r.stored_bytes),
    dedup_ratio: r.dedup_ratio === null ? null : Number(r.dedup_ratio),
    chunks: Number(r.chunks),
    packs: Number(r.packs),
  }))
  return dataset ? out.filter((r) => r.dataset === dataset) : out
}


