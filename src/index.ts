// pgdv's library entry: the operations the CLI offers, for pipeline code.
//
//   import { Pgdv, createDataset } from 'pgdv'
//   const pgdv = await Pgdv.open()            // embedded by default, or PGDV_DATABASE_URL
//   await createDataset(pgdv, { name: 'flights', keyColumns: ['flight_id'] })
//   await pgdv.close()

export { Pgdv, type OpenOptions } from './api/client.js'
export { init, doctor, type InitOptions, type InitResult, type DoctorReport, type DoctorCheck } from './api/admin.js'
export { createDataset, listDatasets, showDataset, dropDataset, type DatasetInfo, type CreateDatasetInput } from './api/datasets.js'
export { serverStatus, startServer, stopServer, type ServerInfo } from './api/server.js'
export { migrate, migrationStatus } from './db/migrate.js'
export { PgdvError } from './lib/errors.js'
export {
  resolveRef, listRefs, createBranch, deleteBranch, createTag, deleteTag, log, refAt, reflog, resetBranch,
  type RefInfo, type LogEntry, type ReflogEntry,
} from './api/refs.js'
export {
  commitObjects, readRows, rowsSql, getRow, diff, diffSummary, diffSchema, merge, mergeBase, checkpoint, datasetColumns, copyValue,
  type CommitMode, type CommitResult, type CommitObjectsInput, type ColumnInfo, type DiffRow, type DiffSummary, type SchemaChange,
  type MergeRow, type CheckpointResult,
} from './api/rows.js'
export { canonicalText, rowEncoding, rowHash, keyHash, ContentHasher, type HashColumn } from './rows/index.js'
// lineage: experiments, runs, model registry, lineage graph, OpenLineage
export {
  createExperiment, listExperiments, startRun, addRunInputs, logParams, logMetrics, finishRun, runInputs, showRun, listRuns, compareRuns, reproduceRun,
  type ExperimentInfo, type RunInfo, type RunStatus, type RunInput, type RunOutput, type RunDetails, type MetricPoint, type CompareRow,
  type StartRunInput, type ReproduceOptions, type ReproduceResult,
} from './api/runs.js'
export {
  registerModel, listModels, showModel, modelVersionId, promoteModel, rollbackModel, modelAliasHistory,
  type ModelInfo, type ModelVersionInfo, type ModelDetails, type AliasMove, type RegisterModelInput, type PromoteInput,
} from './api/models.js'
export {
  parseNodeSpec, resolveNode, upstream, downstream, impact, lineagePath, lineageGraph, drawLineage, addEdge, ingestEvents, ingestOpenLineageFile,
  type NodeKind, type NodeRef, type NodeSpec, type WalkRow, type ImpactRow, type PathStep, type EdgeInfo, type IngestResult,
} from './api/lineage.js'
export { toMermaid, toDot, toSvg, renderGraph, type LineageGraph, type GraphFormat } from './lineage/render.js'
export type { Checkouts as ReproduceCheckouts } from './lineage/checkout.js'
export {
  commitFile, commitQuery, checkoutTable,
  type CommitFileInput, type CommitQueryInput, type CommitOptions, type LoadResult, type CheckoutTableInput, type CheckoutResult,
} from './api/load.js'
export {
  diffReport, diffRows, streamDiff, mergeRefs, showVersion,
  type DiffReport, type DiffCounts, type RowChange, type MergeResult, type MergeConflict, type VersionDetail,
} from './api/history.js'
export {
  addFiles, checkoutFiles, catFile, putBlob, getBlob, storageStats,
  type AddFilesInput, type AddFilesResult, type CheckoutFilesInput, type CheckoutFilesResult, type CatFileInput,
  type PutBlobInput, type GetBlobInput, type BlobResult, type StorageStatsRow,
} from './api/files.js'
export { gc, DEFAULT_GRACE_MS, type GcInput, type GcResult, type GcPack } from './api/gc.js'
export { verifyVersion, type VerifyInput, type VerifyResult } from './api/verify.js'
