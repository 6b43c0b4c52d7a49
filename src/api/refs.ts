// Refs: branches, tags, log, time travel and reset — calls of the dv.* SQL functions.

import type { Pgdv } from './client.js'

export interface RefInfo {
  dataset: string
  ref: string
  kind: 'branch' | 'tag'
  version_id: string
  protected: boolean
  message: string | null
  row_count: string
  committed_at: Date
  created_by: string
  created_at: Date
  updated_at: Date
}

export interface LogEntry {
  version_id: string
  parent_ids: string[]
  depth: number
  message: string | null
  row_count: string
  byte_count: string
  content_hash: string | null
  created_by: string
  committed_at: Date
  refs: string[]
}

export interface ReflogEntry {
  id: string
  ref: string
  kind: 'branch' | 'tag'
  old_version_id: string | null
  new_version_id: string | null
  reason: string | null
  moved_by: string
  moved_at: Date
}

export async function resolveRef(pgdv: Pgdv, dataset: string, ref: string): Promise<string> {
  const row = await pgdv.db.one<{ id: string }>('SELECT dv.resolve_ref(p_dataset => $1::text, p_ref => $2::text) AS id', [dataset, ref])
  return row.id
}

export async function listRefs(pgdv: Pgdv, dataset: string, kind?: 'branch' | 'tag'): Promise<RefInfo[]> {
  // dataset_info raises a clear error for an unknown dataset before we list nothing.
  await pgdv.db.query('SELECT 1 FROM dv.dataset_info(p_name => $1::text)', [dataset])
  return pgdv.db.query<RefInfo>('SELECT * FROM dv.ref_overview WHERE dataset = $1 AND ($2::text IS NULL OR kind = $2) ORDER BY kind, ref', [dataset, kind ?? null])
}

export async function createBranch(pgdv: Pgdv, dataset: string, name: string, from = 'main'): Promise<RefInfo> {
  return pgdv.db.one<RefInfo>('SELECT * FROM dv.branch_create(p_dataset => $1::text, p_name => $2::text, p_from => $3::text)', [dataset, name, from])
}

export async function deleteBranch(pgdv: Pgdv, dataset: string, name: string): Promise<RefInfo> {
  return pgdv.db.one<RefInfo>('SELECT * FROM dv.branch_delete(p_dataset => $1::text, p_name => $2::text)', [dataset, name])
}

export async function createTag(pgdv: Pgdv, dataset: string, name: string, ref = 'main'): Promise<RefInfo> {
  return pgdv.db.one<RefInfo>('SELECT * FROM dv.tag_create(p_dataset => $1::text, p_name => $2::text, p_ref => $3::text)', [dataset, name, ref])
}

export async function deleteTag(pgdv: Pgdv, dataset: string, name: string): Promise<RefInfo> {
  return pgdv.db.one<RefInfo>('SELECT * FROM dv.tag_delete(p_dataset => $1::text, p_name => $2::text)', [dataset, name])
}

export async function log(pgdv: Pgdv, dataset: string, ref = 'main', limit?: number): Promise<LogEntry[]> {
  return pgdv.db.query<LogEntry>('SELECT * FROM dv.log(p_dataset => $1::text, p_ref => $2::text, p_limit => $3::int)', [dataset, ref, limit ?? null])
}

export async function refAt(pgdv: Pgdv, dataset: string, ref: string, at: Date): Promise<string> {
  const row = await pgdv.db.one<{ id: string }>('SELECT dv.ref_at(p_dataset => $1::text, p_ref => $2::text, p_at => $3::timestamptz) AS id', [dataset, ref, at])
  return row.id
}

export async function reflog(pgdv: Pgdv, dataset: string, ref?: string): Promise<ReflogEntry[]> {
  return pgdv.db.query<ReflogEntry>('SELECT * FROM dv.reflog_of(p_dataset => $1::text, p_ref => $2::text)', [dataset, ref ?? null])
}

export async function resetBranch(pgdv: Pgdv, dataset: string, branch: string, ref: string): Promise<RefInfo> {
  return pgdv.db.one<RefInfo>('SELECT * FROM dv.reset(p_dataset => $1::text, p_branch => $2::text, p_ref => $3::text)', [dataset, branch, ref])
}
