// The checkouts `pgdv run reproduce` needs. They are injected (reproduceRun takes them
// as options) so this part compiled and was tested before the row loaders (rows-io:
// checkoutTable in src/api/load.ts) and the files part (checkoutFiles in
// src/api/files.ts) landed; wiredCheckouts below is what the CLI uses.

import type { Pgdv } from '../api/client.js'
import { checkoutFiles } from '../api/files.js'
import { checkoutTable, type CheckoutTableInput as LoadCheckoutInput } from '../api/load.js'

export interface CheckoutTableInput {
  dataset: string
  /** A ref; reproduce passes the exact version id. */
  ref: string
  /** File to write. */
  out: string
  /** csv, jsonl, parquet, ... as the loader supports. */
  format: string
  force: boolean
}

export interface CheckoutFilesInput {
  dataset: string
  ref: string
  /** Folder to write the version's files into. */
  out: string
  force: boolean
}

/**
 * What a checkout may report: with contentHash, reproduce compares it with the pinned
 * hash; with version_id, that the pinned version was the one written.
 */
export type CheckoutResult = { contentHash?: string; version_id?: string } | unknown

export type CheckoutTable = (pgdv: Pgdv, input: CheckoutTableInput) => Promise<CheckoutResult>
export type CheckoutFiles = (pgdv: Pgdv, input: CheckoutFilesInput) => Promise<CheckoutResult>

export interface Checkouts {
  checkoutTable: CheckoutTable
  checkoutFiles: CheckoutFiles
}

export const wiredCheckouts: Partial<Checkouts> = {
  checkoutTable: (pgdv, input) => checkoutTable(pgdv, { ...input, format: input.format as LoadCheckoutInput['format'] }),
  // checkoutFiles verifies every chunk and file hash as it writes.
  checkoutFiles: (pgdv, input) => checkoutFiles(pgdv, input),
}
