// Migrations: sql/migrations/NNN-name.sql, applied in order by postgres-migrations,
// which records each file's hash and refuses an edited one. Its bookkeeping table
// `migrations` lives in our private schema dv_internal.

import fs from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type pg from 'pg'
import { migrate as runMigrations } from 'postgres-migrations'
import { PgdvError, toPgdvError } from '../lib/errors.js'
import type { Db } from './db.js'

// Two levels up from src/db or dist/db is the package root.
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../sql/migrations/', import.meta.url))

// One key for every pgdv installer, whatever the database: it serialises schema
// creation and role creation, which are cluster-wide.
const INSTALL_LOCK = 'SELECT pg_advisory_lock(7346519237001)'
const INSTALL_UNLOCK = 'SELECT pg_advisory_unlock(7346519237001)'

export interface MigrationFile {
  id: number
  name: string
  file: string
}

export async function localMigrations(dir = MIGRATIONS_DIR): Promise<MigrationFile[]> {
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.sql')).sort()
  return files.map((file) => {
    const m = /^(\d+)[-_]?(.*)\.sql$/.exec(file)
    if (!m) throw new PgdvError(`migration file ${file} is not named NNN-name.sql`, { kind: 'internal' })
    return { id: Number(m[1]), name: m[2], file }
  })
}

export interface AppliedMigration {
  id: number
  name: string
}

export async function appliedMigrations(db: Db, on?: pg.PoolClient): Promise<AppliedMigration[]> {
  const rows = await db.query<{ exists: boolean }>("SELECT to_regclass('dv_internal.migrations') IS NOT NULL AS exists", [], on)
  if (!rows[0].exists) return []
  // postgres-migrations records its own bookkeeping table as migration 0.
  return db.query<AppliedMigration>('SELECT id, name FROM dv_internal.migrations WHERE id > 0 ORDER BY id', [], on)
}

export interface MigrationStatus {
  applied: number
  available: number
  pending: MigrationFile[]
  /** Migrations in the database that this pgdv does not have: it was migrated by a newer pgdv. */
  unknown: AppliedMigration[]
}

export async function migrationStatus(db: Db): Promise<MigrationStatus> {
  const [local, applied] = await Promise.all([localMigrations(), appliedMigrations(db)])
  const appliedIds = new Set(applied.map((m) => m.id))
  const localIds = new Set(local.map((m) => m.id))
  return {
    applied: applied.length,
    available: local.length,
    pending: local.filter((m) => !appliedIds.has(m.id)),
    unknown: applied.filter((m) => !localIds.has(m.id)),
  }
}

function newerPgdvError(db: Db, unknown: AppliedMigration[]): PgdvError {
  const last = unknown[unknown.length - 1]
  return new PgdvError(
    `the database at ${db.connection.display} was migrated by a newer pgdv (it has migration ${last.id} "${last.name}", which this pgdv does not know)`,
    { kind: 'unsupported', hint: 'Upgrade pgdv to the version that migrated it' },
  )
}

/** Applies pending migrations. Safe to run concurrently and repeatedly. */
export async function migrate(db: Db): Promise<{ applied: AppliedMigration[] }> {
  const client = await db.pool.connect()
  try {
    await client.query(INSTALL_LOCK)
    try {
      await client.query('CREATE SCHEMA IF NOT EXISTS dv_internal')
      const status = await migrationStatus(db)
      if (status.unknown.length) throw newerPgdvError(db, status.unknown)
      await client.query('SET search_path TO dv_internal')
      const applied = await runMigrations({ client }, MIGRATIONS_DIR, { logger: () => {} })
      return { applied: applied.filter((m) => m.id > 0).map((m) => ({ id: m.id, name: m.name })) }
    } finally {
      await client.query('RESET search_path').catch(() => {})
      await client.query(INSTALL_UNLOCK).catch(() => {})
    }
  } catch (e) {
    throw toPgdvError(e)
  } finally {
    client.release()
  }
}

/** Refuses to work on a database that is behind or ahead of this pgdv. */
export async function assertMigrated(db: Db): Promise<void> {
  const status = await migrationStatus(db)
  if (status.unknown.length) throw newerPgdvError(db, status.unknown)
  if (status.applied === 0) {
    throw new PgdvError(`pgdv is not installed in the database at ${db.connection.display}`, { kind: 'not_found', hint: 'Run `pgdv init`' })
  }
  if (status.pending.length) {
    throw new PgdvError(`the database at ${db.connection.display} needs ${status.pending.length} pgdv migration(s)`, {
      kind: 'unsupported',
      hint: 'Run `pgdv migrate`',
    })
  }
}
