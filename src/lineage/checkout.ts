// The checkouts `pgdv run reproduce` needs, injected so this part compiles and is
// tested before the row loaders (rows-io: checkoutTable in src/api/load.ts) and the
// files part (checkoutFiles in src/api/files.ts) land. Whoever merges those wires them
// here, e.g.:
//
//   import { checkoutTable } from '../api/load.js'
//   import { checkoutFiles } from '../api/files.js'
//   export const wiredCheckouts: Partial<Checkouts> = { checkoutTable, checkoutFiles }

import type { Pgdv } from '../api/client.js'

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

/** What a checkout may report; when contentHash is given, reproduce compares it with the pinned hash. */
export type CheckoutResult = { contentHash?: string } | unknown

export type CheckoutTable = (pgdv: Pgdv, input: CheckoutTableInput) => Promise<CheckoutResult>
export type CheckoutFiles = (pgdv: Pgdv, input: CheckoutFilesInput) => Promise<CheckoutResult>

export interface Checkouts {
  checkoutTable: CheckoutTable
  checkoutFiles: CheckoutFiles
}

export const wiredCheckouts: Partial<Checkouts> = {}
