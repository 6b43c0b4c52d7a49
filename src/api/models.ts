// Model registry: thin calls of dv.model_* SQL functions.

import { PgdvError } from '../lib/errors.js'
import type { Pgdv } from './client.js'

export interface ModelInfo {
  id: string
  name: string
  description: string | null
  versions: string
  latest_version: number | null
  /** alias -> version number */
  aliases: Record<string, number>
  metadata: Record<string, unknown>
  created_by: string
  created_at: Date
}

export interface ModelVersionInfo {
  /** Global id (what lineage calls model-version ID). */
  id: string
  model: string
  /** Number within the model: 1, 2, 3, ... */
  version: number
  aliases: string[]
  run_id: string | null
  artifact_hash: string | null
  artifact_uri: string | null
  metrics: Record<string, number>
  description: string | null
  metadata: Record<string, unknown>
  created_by: string
  created_at: Date
}

export interface AliasMove {
  id: string
  alias: string
  action: 'promote' | 'rollback'
  old_version: number | null
  new_version: number | null
  old_version_id: string | null
  new_version_id: string | null
  rolled_back: boolean
  reason: string | null
  moved_by: string
  moved_at: Date
}

export interface RegisterModelInput {
  model: string
  run?: string | number
  /** The artifact's content hash from putBlob (`hash`: gc keeps what it names), or the SHA-256 of an artifact stored elsewhere (hex, optionally sha256:-prefixed). */
  artifactHash?: string
  artifactUri?: string
  /** Default: the run's latest metrics. */
  metrics?: Record<string, number>
  description?: string
  metadata?: Record<string, unknown>
}

export async function registerModel(pgdv: Pgdv, input: RegisterModelInput): Promise<ModelVersionInfo> {
  return pgdv.db.one<ModelVersionInfo>(
    `SELECT * FROM dv.model_register(p_model => $1::text, p_run => $2::bigint, p_artifact_hash => $3::text, p_artifact_uri => $4::text,
                                     p_metrics => $5::jsonb, p_description => $6::text, p_metadata => $7::jsonb)`,
    [
      input.model,
      input.run === undefined ? null : String(input.run),
      input.artifactHash ?? null,
      input.artifactUri ?? null,
      input.metrics === undefined ? null : JSON.stringify(input.metrics),
      input.description ?? null,
      JSON.stringify(input.metadata ?? {}),
    ],
  )
}

export async function listModels(pgdv: Pgdv): Promise<ModelInfo[]> {
  return pgdv.db.query<ModelInfo>('SELECT * FROM dv.model_overview ORDER BY name')
}

export interface ModelDetails extends ModelInfo {
  model_versions: ModelVersionInfo[]
  alias_history: AliasMove[]
}

export async function showModel(pgdv: Pgdv, model: string): Promise<ModelDetails> {
  const alias_history = await modelAliasHistory(pgdv, model) // raises for an unknown model
  const info = await pgdv.db.one<ModelInfo>('SELECT * FROM dv.model_overview WHERE name = $1', [model])
  const model_versions = await pgdv.db.query<ModelVersionInfo>('SELECT * FROM dv.model_version_overview WHERE model = $1 ORDER BY version DESC', [model])
  return { ...info, model_versions, alias_history }
}

/** The global id of a model version named by number (3, v3), alias or latest. */
export async function modelVersionId(pgdv: Pgdv, model: string, ref: string): Promise<string> {
  const row = await pgdv.db.one<{ id: string }>('SELECT dv.model_version_id(p_model => $1::text, p_ref => $2::text) AS id', [model, ref])
  return row.id
}

export interface PromoteInput {
  model: string
  alias: string
  /** Version number within the model (3), or an alias/latest. */
  version?: string | number
  /** Or the global model version id. */
  versionId?: string | number
  reason?: string
}

export async function promoteModel(pgdv: Pgdv, input: PromoteInput): Promise<ModelVersionInfo> {
  if ((input.version === undefined) === (input.versionId === undefined)) {
    throw new PgdvError('give exactly one of a version number and a model version id', { hint: 'e.g. `pgdv model promote resnet production 3` or `--id 42`' })
  }
  const id = input.versionId !== undefined ? String(input.versionId) : await modelVersionId(pgdv, input.model, String(input.version))
  return pgdv.db.one<ModelVersionInfo>('SELECT * FROM dv.model_promote(p_model => $1::text, p_alias => $2::text, p_version_id => $3::bigint, p_reason => $4::text)', [
    input.model,
    input.alias,
    id,
    input.reason ?? null,
  ])
}

export async function rollbackModel(pgdv: Pgdv, input: { model: string; alias: string; reason?: string }): Promise<ModelVersionInfo> {
  return pgdv.db.one<ModelVersionInfo>('SELECT * FROM dv.model_rollback(p_model => $1::text, p_alias => $2::text, p_reason => $3::text)', [
    input.model,
    input.alias,
    input.reason ?? null,
  ])
}

export async function modelAliasHistory(pgdv: Pgdv, model: string): Promise<AliasMove[]> {
  return pgdv.db.query<AliasMove>('SELECT * FROM dv.model_alias_history(p_model => $1::text)', [model])
}
