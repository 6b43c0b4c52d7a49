// Verify: recompute what a version's hashes promise. Rows: dv.verify recomputes every
// row hash and the content hash in SQL. Files datasets also re-read every stored file
// through the checkout's verifier (each chunk against its digest, each file against its
// content hash), writing nothing.

import { Writable } from 'node:stream'
import { chunkRefs, streamContent, type FileRow } from '../files/checkout.js'
import { PgdvError } from '../lib/errors.js'
import { createProgress } from '../lib/progress.js'
import { PackReader } from '../packs/index.js'
import type { Pgdv } from './client.js'
import { storeOf, versionRows, type FilesContext } from './files.js'

export interface VerifyInput extends FilesContext {
  dataset: string
  ref?: string
}

export interface VerifyResult {
  dataset: string
  ref: string
  version_id: string
  rows: number
  /**
   * Rows whose stored row or key hash does not match their values; null where the
   * dataset stores no row hashes (one key column, row layout 2): there only the content
   * hash tells a change.
   */
  bad_rows: number | null
  /** The key (keyless: the row) of the first bad row, if any. */
  first_bad: Record<string, unknown> | null
  content_hash: string
  computed_hash: string
  /** Files datasets: stored files re-read and verified (links have no content). */
  files_checked: number | null
  bytes_checked: number | null
  ok: boolean
}

/** Files re-read per batch of chunk-list lookups. */
const BATCH = 256

/**
 * Recomputes a version's hashes. Returns the findings when the rows are inconsistent
 * (ok = false); a file whose bytes do not match throws, naming the file, chunk and pack.
 */
export async function verifyVersion(pgdv: Pgdv, input: VerifyInput): Promise<VerifyResult> {
  const ref = input.ref ?? 'main'
  const r = await pgdv.db.one<{
    version_id: string
    row_count: string
    bad_rows: string | null
    first_bad: Record<string, unknown> | null
    content_hash: string
    computed_hash: string
    ok: boolean
    kind: string
  }>(
    'SELECT v.*, (SELECT d.kind FROM dv.datasets d WHERE d.name = $1::text) AS kind FROM dv.verify(p_dataset => $1::text, p_ref => $2::text) v',
    [input.dataset, ref],
  )
  const result: VerifyResult = {
    dataset: input.dataset,
    ref,
    version_id: r.version_id,
    rows: Number(r.row_count),
    bad_rows: r.bad_rows === null ? null : Number(r.bad_rows),
    first_bad: r.first_bad,
    content_hash: r.content_hash,
    computed_hash: r.computed_hash,
    files_checked: null,
    bytes_checked: null,
    ok: r.ok,
  }
  if (r.kind !== 'files' || !r.ok) return result

  const { store, owned } = storeOf(pgdv, input)
  const bar = createProgress({ label: 'verify', totalFiles: result.rows, enabled: input.progress ?? false })
  const reader = new PackReader(store)
  const sink = () => new Writable({ write: (_chunk, _enc, cb) => cb() })
  let files = 0
  let bytes = 0
  const check = async (batch: FileRow[]): Promise<void> => {
    const refs = await chunkRefs(pgdv.db, [...new Set(batch.map((f) => f.content_hash!))])
    for (const f of batch) {
      const chunks = refs.get(f.content_hash!)
      if (!chunks) {
        throw new PgdvError(`${f.path} of dataset "${input.dataset}" at ${ref}: content ${f.content_hash} has no chunk list in the index`, {
          kind: 'integrity',
          hint: 'Re-add the file; run `pgdv doctor`',
        })
      }
      await streamContent(reader, chunks, f.content_hash!, f.size, sink(), `${f.path} of dataset "${input.dataset}" at ${ref}`)
      files++
      bytes += f.size
      bar.update({ files, bytes })
    }
  }
  try {
    let batch: FileRow[] = []
    for await (const f of versionRows(pgdv, input.dataset, r.version_id)) {
      if (f.link_target !== null || f.content_hash === null) continue
      batch.push(f)
      if (batch.length >= BATCH) {
        await check(batch)
        batch = []
      }
    }
    if (batch.length > 0) await check(batch)
  } finally {
    bar.stop()
    if (owned) await store.close?.()
  }
  return { ...result, files_checked: files, bytes_checked: bytes }
}
