// Datasets: thin calls of the dv.dataset_* SQL functions with named, cast arguments.

import type { Pgdv } from './client.js'

export interface DatasetInfo {
  id: string
  name: string
  kind: 'table' | 'files'
  key_columns: string[] | null
  description: string | null
  versions: string
  branches: string
  tags: string
  main_version: string | null
  main_rows: string | null
  main_bytes: string | null
  main_committed_at: Date | null
  metadata: Record<string, unknown>
  created_by: string
  created_at: Date
}

export interface CreateDatasetInput {
  name: string
  kind?: 'table' | 'files'
  keyColumns?: string[]
  description?: string
  metadata?: Record<string, unknown>
}

export async function createDataset(pgdv: Pgdv, input: CreateDatasetInput): Promise<DatasetInfo> {
  return pgdv.db.one<DatasetInfo>(
    `SELECT * FROM dv.dataset_create(p_name => $1::text, p_kind => $2::text, p_key_columns => $3::text[],
                                     p_description => $4::text, p_metadata => $5::jsonb)`,
    [input.name, input.kind ?? 'table', input.keyColumns ?? null, input.description ?? null, JSON.stringify(input.metadata ?? {})],
  )
}

export async function listDatasets(pgdv: Pgdv): Promise<DatasetInfo[]> {
  return pgdv.db.query<DatasetInfo>('SELECT * FROM dv.dataset_overview ORDER BY name')
}

export async function showDataset(pgdv: Pgdv, name: string): Promise<DatasetInfo> {
  return pgdv.db.one<DatasetInfo>('SELECT * FROM dv.dataset_info(p_name => $1::text)', [name])
}

export async function dropDataset(pgdv: Pgdv, name: string): Promise<DatasetInfo> {
  return pgdv.db.one<DatasetInfo>('SELECT * FROM dv.dataset_drop(p_name => $1::text)', [name])
}
