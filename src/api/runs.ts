// Experiments and runs: thin calls of the dv.experiment_* / dv.run_* SQL functions,
// plus reproduce, which checks a run's pinned inputs out through injected checkouts.

import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { PgdvError } from '../lib/errors.js'
import { type Checkouts, wiredCheckouts } from '../lineage/checkout.js'
import type { Pgdv } from './client.js'

export interface ExperimentInfo {
  id: string
  name: string
  description: string | null
  tags: string[]
  runs: string
  running: string
  last_run_at: Date | null
  metadata: Record<string, unknown>
  created_by: string
  created_at: Date
}

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'killed'

export interface RunInfo {
  id: string
  experiment: string | null
  name: string | null
  status: RunStatus
  params: Record<string, unknown>
  metrics: Record<string, number>
  code_ref: string | null
  tags: string[]
  inputs: string
  outputs: string
  job_namespace: string | null
  job_name: string | null
  external_id: string | null
  note: string | null
  metadata: Record<string, unknown>
  started_by: string
  started_at: Date
  finished_by: string | null
  finished_at: Date | null
}

export interface RunInput {
  dataset: string
  dataset_kind: 'table' | 'files' | null
  ref: string | null
  version_id: string
  content_hash: string | null
  dataset_exists: boolean
}

export interface RunOutput {
  kind: 'dataset_version' | 'model_version'
  id: string
  name: string
  content_hash: string | null
  artifact_uri: string | null
}

export interface MetricPoint {
  key: string
  step: string
  value: number
  at?: Date
}

export interface CompareRow {
  section: 'run' | 'param' | 'metric' | 'input'
  key: string
  a: string | null
  b: string | null
  same: boolean
}

export interface RunDetails extends RunInfo {
  input_versions: RunInput[]
  output_versions: RunOutput[]
  metric_history: MetricPoint[]
}


export async function createExperiment(
  pgdv: Pgdv,
  input: { name: string; description?: string; tags?: string[]; metadata?: Record<string, unknown> },
): Promise<ExperimentInfo> {
  return pgdv.db.one<ExperimentInfo>(
    'SELECT * FROM dv.experiment_create(p_name => $1::text, p_description => $2::text, p_tags => $3::text[], p_metadata => $4::jsonb)',
    [input.name, input.description ?? null, input.tags ?? [], JSON.stringify(input.metadata ?? {})],
  )
}

export async function listExperiments(pgdv: Pgdv): Promise<ExperimentInfo[]> {
  return pgdv.db.query<ExperimentInfo>('SELECT * FROM dv.experiment_overview ORDER BY name')
}

export interface StartRunInput {
  experiment: string
  name?: string
  params?: Record<string, unknown>
  /** DATASET or DATASET@REF (branch, tag, version id, REF~N); pinned to the exact version now. */
  inputs?: string[]
  codeRef?: string
  tags?: string[]
  metadata?: Record<string, unknown>
}

export async function startRun(pgdv: Pgdv, input: StartRunInput): Promise<RunInfo> {
  return pgdv.db.one<RunInfo>(
    `SELECT * FROM dv.run_start(p_experiment => $1::text, p_name => $2::text, p_params => $3::jsonb, p_inputs => $4::text[],
                                p_code_ref => $5::text, p_tags => $6::text[], p_metadata => $7::jsonb)`,
    [input.experiment, input.name ?? null, JSON.stringify(input.params ?? {}), input.inputs ?? [], input.codeRef ?? null, input.tags ?? [], JSON.stringify(input.metadata ?? {})],
  )
}

export async function addRunInputs(pgdv: Pgdv, run: string | number, inputs: string[]): Promise<RunInfo> {
  return pgdv.db.one<RunInfo>('SELECT * FROM dv.run_add_inputs(p_run => $1::bigint, p_inputs => $2::text[])', [String(run), inputs])
}

export async function logParams(pgdv: Pgdv, run: string | number, params: Record<string, unknown>): Promise<RunInfo> {
  return pgdv.db.one<RunInfo>('SELECT * FROM dv.run_log_params(p_run => $1::bigint, p_params => $2::jsonb)', [String(run), JSON.stringify(params)])
}

/** Logs numbers at a step (default: each key's next step). A value that is not a finite number is refused before any is stored. */
export async function logMetrics(pgdv: Pgdv, run: string | number, metrics: Record<string, unknown>, step?: number): Promise<MetricPoint[]> {
  for (const [k, v] of Object.entries(metrics)) {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new PgdvError(`metric "${k}" of run ${run} is not a number: ${JSON.stringify(v) ?? String(v)}`, { hint: 'Metric values are finite numbers, e.g. 0.31' })
    }
  }
  if (step !== undefined && (!Number.isInteger(step) || step < 0)) {
    throw new PgdvError(`step ${step} of run ${run} is not a whole number ≥ 0`, { hint: 'Steps count from 0' })
  }
  return pgdv.db.query<MetricPoint>('SELECT * FROM dv.run_log_metrics(p_run => $1::bigint, p_metrics => $2::jsonb, p_step => $3::bigint)', [
    String(run),
    JSON.stringify(metrics),
    step ?? null,
  ])
}

export async function finishRun(
  pgdv: Pgdv,
  run: string | number,
  opts: { status?: Exclude<RunStatus, 'running'>; outputs?: string[]; note?: string } = {},
): Promise<RunInfo> {
  return pgdv.db.one<RunInfo>('SELECT * FROM dv.run_finish(p_run => $1::bigint, p_status => $2::text, p_outputs => $3::text[], p_note => $4::text)', [
    String(run),
    opts.status ?? 'succeeded',
    opts.outputs ?? [],
    opts.note ?? null,
  ])
}

export async function runInputs(pgdv: Pgdv, run: string | number): Promise<RunInput[]> {
  return pgdv.db.query<RunInput>('SELECT * FROM dv.run_inputs(p_run => $1::bigint)', [String(run)])
}

export async function showRun(pgdv: Pgdv, run: string | number): Promise<RunDetails> {
  const id = String(run)
  const input_versions = await runInputs(pgdv, id) // raises a clear error for an unknown run
  const info = await pgdv.db.one<RunInfo>('SELECT * FROM dv.run_overview WHERE id = $1::bigint', [id])
  const output_versions = await pgdv.db.query<RunOutput>('SELECT * FROM dv.run_outputs(p_run => $1::bigint)', [id])
  const metric_history = await pgdv.db.query<MetricPoint>('SELECT * FROM dv.run_metric_history(p_run => $1::bigint)', [id])
  return { ...info, input_versions, output_versions, metric_history }
}

export async function listRuns(pgdv: Pgdv, opts: { experiment?: string; status?: RunStatus; limit?: number } = {}): Promise<RunInfo[]> {
  if (opts.experiment) await pgdv.db.query('SELECT dv_internal.experiment_id($1::text)', [opts.experiment])
  return pgdv.db.query<RunInfo>(
    `SELECT * FROM dv.run_overview WHERE ($1::text IS NULL OR experiment = $1) AND ($2::text IS NULL OR status = $2)
     ORDER BY id DESC LIMIT $3::int`,
    [opts.experiment ?? null, opts.status ?? null, opts.limit ?? null],
  )
}

export async function compareRuns(pgdv: Pgdv, a: string | number, b: string | number): Promise<CompareRow[]> {
  return pgdv.db.query<CompareRow>('SELECT * FROM dv.run_compare(p_a => $1::bigint, p_b => $2::bigint)', [String(a), String(b)])
}

// ---------------------------------------------------------------------------
// Reproduce
// ---------------------------------------------------------------------------

export interface ReproducedInput extends RunInput {
  /** File (table datasets) or folder (files datasets) written under the output folder. */
  path: string
  /** ok: the catalog hash equals the pinned one, and the checkout reported the pinned version (or hash); catalog-only: only the first. */
  verified: 'ok' | 'catalog-only'
}

export interface ReproduceResult {
  run: string
  out: string
  manifest: string
  inputs: ReproducedInput[]
}

export interface ReproduceOptions {
  out: string
  /** Format of table checkouts (whatever checkoutTable accepts; default csv). */
  format?: string
  force?: boolean
  /** Injected checkouts; default: the ones wired into this build (src/lineage/checkout.ts). */
  checkouts?: Partial<Checkouts>
}

function safeName(dataset: string): string {
  return dataset.replace(/[^A-Za-z0-9._-]/g, '_')
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256')
  await pipeline(createReadStream(file), h)
  return h.digest('hex')
}

/**
 * Checks out exactly the versions a run read into `out`: one file per table input,
 * one folder per files input, and manifest.json (inputs, version ids, content hashes,
 * and the SHA-256 of each written table file). The pinned content hash is compared
 * with the catalog's before anything is written, and with what the checkout reports.
 */
export async function reproduceRun(pgdv: Pgdv, run: string | number, opts: ReproduceOptions): Promise<ReproduceResult> {
  const id = String(run)
  const inputs = await runInputs(pgdv, id)
  const checkouts = { ...wiredCheckouts, ...opts.checkouts }
  if (inputs.length === 0) throw new PgdvError(`run ${id} has no pinned inputs to reproduce`, { hint: 'Give inputs at `pgdv run start --input DATASET@REF`' })

  // Everything checked before the first byte is written: nothing partial on a bad input.
  for (const i of inputs) {
    if (!i.dataset_exists) {
      throw new PgdvError(`input ${i.dataset}@v${i.version_id} of run ${id} cannot be reproduced: the dataset was dropped`, { kind: 'not_found', hint: 'Restore the dataset from a backup' })
    }
    const fn = i.dataset_kind === 'files' ? checkouts.checkoutFiles : checkouts.checkoutTable
    if (!fn) {
      throw new PgdvError(`checkout of table/files inputs is not wired into this build (${i.dataset}@v${i.version_id} is a ${i.dataset_kind ?? 'table'} dataset)`, {
        kind: 'unsupported',
        hint: 'Wire checkoutTable (rows-io) and checkoutFiles (files) in src/lineage/checkout.ts',
      })
    }
    const now = await pgdv.db.query<{ content_hash: string | null }>('SELECT content_hash FROM dv.versions WHERE id = $1::bigint', [i.version_id])
    if (now.length === 0) {
      throw new PgdvError(`version ${i.version_id} of ${i.dataset} (input of run ${id}) no longer exists`, { kind: 'not_found', hint: 'Retention keeps versions that runs reference; restore it from a backup' })
    }
    if ((now[0].content_hash ?? null) !== (i.content_hash ?? null)) {
      throw new PgdvError(`version ${i.version_id} of ${i.dataset} has content hash ${now[0].content_hash}, but run ${id} pinned ${i.content_hash}`, {
        kind: 'integrity',
        hint: 'The catalog was changed behind pgdv; run `pgdv doctor`',
      })
    }
  }

  await fs.mkdir(opts.out, { recursive: true })
  const manifestPath = path.join(opts.out, 'manifest.json')
  if (!opts.force) {
    const existing = await fs.readdir(opts.out)
    if (existing.length > 0) throw new PgdvError(`output folder ${opts.out} is not empty`, { kind: 'conflict', hint: 'Choose an empty folder or pass --force' })
  }
  const format = opts.format ?? 'csv'
  const done: ReproducedInput[] = []
  const manifestInputs: Record<string, unknown>[] = []
  for (const i of inputs) {
    let target: string
    let r: unknown
    if (i.dataset_kind === 'files') {
      target = path.join(opts.out, safeName(i.dataset))
      r = await checkouts.checkoutFiles!(pgdv, { dataset: i.dataset, ref: i.version_id, out: target, force: opts.force ?? false })
    } else {
      target = path.join(opts.out, `${safeName(i.dataset)}.${format}`)
      r = await checkouts.checkoutTable!(pgdv, { dataset: i.dataset, ref: i.version_id, out: target, format, force: opts.force ?? false })
    }
    const reported = r && typeof r === 'object' && 'contentHash' in r ? ((r as { contentHash?: string }).contentHash ?? undefined) : undefined
    const wrote = r && typeof r === 'object' && 'version_id' in r ? String((r as { version_id: unknown }).version_id) : undefined
    if (wrote !== undefined && wrote !== i.version_id) {
      throw new PgdvError(`checkout of ${i.dataset} wrote version ${wrote}, but run ${id} pinned version ${i.version_id}`, { kind: 'integrity', hint: 'Report this as a bug' })
    }
    if (reported !== undefined && reported !== i.content_hash) {
      throw new PgdvError(`checkout of ${i.dataset}@v${i.version_id} produced content hash ${reported}, expected ${i.content_hash}`, {
        kind: 'integrity',
        hint: 'Run `pgdv verify` on that dataset',
      })
    }
    const entry: Record<string, unknown> = {
      dataset: i.dataset,
      kind: i.dataset_kind,
      ref: i.ref,
      version_id: i.version_id,
      content_hash: i.content_hash,
      path: path.relative(opts.out, target),
    }
    if (i.dataset_kind !== 'files') entry.file_sha256 = await sha256File(target).catch(() => null)
    manifestInputs.push(entry)
    done.push({ ...i, path: target, verified: reported !== undefined || wrote !== undefined ? 'ok' : 'catalog-only' })
  }
  const manifest = { pgdv_run: id, reproduced_at: new Date().toISOString(), format, inputs: manifestInputs }
  await fs.writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`)
  return { run: id, out: opts.out, manifest: manifestPath, inputs: done }
}

/** Metrics, params and more inputs of a running run in one transaction: all or nothing. */
export async function logRun(
  pgdv: Pgdv,
  run: string | number,
  input: { metrics?: Record<string, unknown>; step?: number; params?: Record<string, unknown>; inputs?: string[] },
): Promise<{ metrics: MetricPoint[]; run: RunInfo }> {
  const id = String(run)
  for (const [k, v] of Object.entries(input.metrics ?? {})) {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new PgdvError(`metric "${k}" of run ${id} is not a number: ${JSON.stringify(v) ?? String(v)}`, { hint: 'Metric values are finite numbers, e.g. 0.31' })
    }
  }
  return pgdv.db.tx(async (c) => {
    let metrics: MetricPoint[] = []
    if (input.metrics && Object.keys(input.metrics).length) {
      metrics = (await c.query<MetricPoint>('SELECT * FROM dv.run_log_metrics(p_run => $1::bigint, p_metrics => $2::jsonb, p_step => $3::bigint)', [id, JSON.stringify(input.metrics), input.step ?? null])).rows
    }
    if (input.params && Object.keys(input.params).length) {
      await c.query('SELECT 1 FROM dv.run_log_params(p_run => $1::bigint, p_params => $2::jsonb)', [id, JSON.stringify(input.params)])
    }
    if (input.inputs?.length) await c.query('SELECT 1 FROM dv.run_add_inputs(p_run => $1::bigint, p_inputs => $2::text[])', [id, input.inputs])
    const info = (await c.query<RunInfo>('SELECT * FROM dv.run_overview WHERE id = $1::bigint', [id])).rows[0]
    if (!info) throw new PgdvError(`run ${id} does not exist`, { kind: 'not_found', hint: 'List runs with `pgdv run list`' })
    return { metrics, run: info }
  })
}
