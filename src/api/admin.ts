// Installing pgdv into a database (init, migrate) and checking a setup (doctor).

import fs from 'node:fs/promises'
import path from 'node:path'
import { Db, openDb } from '../db/db.js'
import { embeddedStatus } from '../db/embedded.js'
import { ensureWritableHome, type PgdvConfig, readConfig, resolveHome, writeConfig } from '../db/home.js'
import { migrate, migrationStatus } from '../db/migrate.js'
import { toPgdvError } from '../lib/errors.js'
import { probeStore, resolveStoreSpec } from './store.js'
import { parseStoreSpec, StoreError } from '../store/index.js'
import { storeError } from '../files/store.js'

export interface InitOptions {
  home?: string
  databaseUrl?: string
  env?: NodeJS.ProcessEnv
  /** Object store spec: a folder (default <home>/objects) or s3://bucket/prefix. */
  store?: string
  s3?: PgdvConfig['store']['s3']
}

export interface InitResult {
  home: string
  database: string
  source: string
  serverVersion: string
  appliedMigrations: { id: number; name: string }[]
  schemaVersion: number
  store: string
}

/** Idempotent: creates the home, starts the embedded server if chosen, migrates, records the choices. */
export async function init(opts: InitOptions = {}): Promise<InitResult> {
  const env = opts.env ?? process.env
  const home = resolveHome(opts.home, env)
  await ensureWritableHome(home)
  const db = await openDb({ home, databaseUrl: opts.databaseUrl, env })
  try {
    const { applied } = await migrate(db)
    const { version } = await db.one<{ version: number }>('SELECT dv.schema_version() AS version')
    // Record what init chose; an embedded setup was recorded when it was created.
    const cfg: PgdvConfig = (await readConfig(home)) ?? { format: 1, database: { mode: 'env' }, store: { url: 'objects' } }
    if (db.connection.source === 'flag' && opts.databaseUrl) cfg.database = { mode: 'url', url: opts.databaseUrl }
    if (opts.store) {
      // Refuse a malformed spec before recording it (bucket name, endpoint, scheme).
      if (/^s3:/i.test(opts.store)) {
        try {
          parseStoreSpec(opts.store, { ...opts.s3 }, {})
        } catch (e) {
          throw e instanceof StoreError ? storeError(e) : e
        }
      }
      cfg.store = { url: opts.store, s3: opts.s3 ?? cfg.store.s3 }
    } else if (opts.s3) cfg.store = { ...cfg.store, s3: { ...cfg.store.s3, ...opts.s3 } }
    await writeConfig(home, cfg)
    const storeSpec = resolveStoreSpec(home, cfg.store.url)
    if (storeSpec.startsWith('/')) await fs.mkdir(storeSpec, { recursive: true })
    return {
      home,
      database: db.connection.display,
      source: db.connection.source,
      serverVersion: db.serverVersion,
      appliedMigrations: applied,
      schemaVersion: version,
      store: storeSpec,
    }
  } finally {
    await db.close()
  }
}

export interface DoctorCheck {
  name: string
  ok: boolean
  detail: string
  hint?: string
}

export interface DoctorReport {
  ok: boolean
  home: string
  checks: DoctorCheck[]
}

const ROLES = ['pgdv_reader', 'pgdv_writer', 'pgdv_admin']

/** Runs every check it can; a failed check says what to do. Never throws for a failed check. */
export async function doctor(opts: { home?: string; databaseUrl?: string; env?: NodeJS.ProcessEnv } = {}): Promise<DoctorReport> {
  const env = opts.env ?? process.env
  const home = resolveHome(opts.home, env)
  const checks: DoctorCheck[] = []
  const add = (name: string, ok: boolean, detail: string, hint?: string) => checks.push({ name, ok, detail, ...(ok ? {} : { hint }) })

  let cfg: PgdvConfig | undefined
  try {
    cfg = await readConfig(home)
    add('config', true, cfg ? `${path.join(home, 'config.json')}` : `no config in ${home} yet (defaults apply)`)
  } catch (e) {
    const err = toPgdvError(e)
    add('config', false, err.message, err.hint)
  }

  let db: Db | undefined
  try {
    db = await openDb({ home, databaseUrl: opts.databaseUrl, env })
    add('database', true, `PostgreSQL ${db.serverVersion} at ${db.connection.display} (${db.connection.source})`)
    if (db.connection.embedded) {
      const st = await embeddedStatus(home)
      add('embedded server', st.state === 'running', `${st.state}${st.pid ? `, pid ${st.pid}` : ''}`, 'Run `pgdv db start`')
    }
  } catch (e) {
    const err = toPgdvError(e)
    add('database', false, err.message, err.hint ?? 'Check the database URL')
  }

  if (db) {
    try {
      const st = await migrationStatus(db)
      if (st.unknown.length) {
        add('migrations', false, `database has ${st.unknown.length} migration(s) this pgdv does not know`, 'Upgrade pgdv')
      } else if (st.applied === 0) {
        add('migrations', false, 'pgdv is not installed in this database', 'Run `pgdv init`')
      } else {
        add('migrations', st.pending.length === 0, `${st.applied} of ${st.available} applied`, 'Run `pgdv migrate`')
      }
      const rows = await db.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])', [ROLES])
      const missing = ROLES.filter((r) => !rows.some((x) => x.rolname === r))
      add('roles', missing.length === 0, missing.length ? `missing: ${missing.join(', ')}` : ROLES.join(', '), 'Run `pgdv init` as a role that may CREATE ROLE')
    } catch (e) {
      const err = toPgdvError(e)
      add('migrations', false, err.message, err.hint)
    } finally {
      await db.close()
    }
  } else {
    add('migrations', false, 'skipped: no database connection', 'Fix the database check first')
    add('roles', false, 'skipped: no database connection', 'Fix the database check first')
  }

  const storeUrl = resolveStoreSpec(home, cfg?.store.url ?? 'objects')
  const probe = await probeStore(storeUrl, cfg?.store.s3, env)
  add('object store', probe.ok, probe.detail, probe.hint)

  return { ok: checks.every((c) => c.ok), home, checks }
}

