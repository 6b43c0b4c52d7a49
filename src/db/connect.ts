// Where pgdv's PostgreSQL is: flags, then PGDV_DATABASE_URL, DATABASE_URL, the
// standard PG* variables, then what config.json recorded, then the embedded server
// under the home folder (initialised and started on demand).

import pg from 'pg'
import { PgdvError } from '../lib/errors.js'
import { embeddedUrl, ensureDatabase, freePort, initialiseEmbedded, isInitialised, newEmbeddedSettings, startEmbedded } from './embedded.js'
import { ensureWritableHome, type PgdvConfig, readConfig, writeConfig } from './home.js'
import { withHomeLock } from './lock.js'

export const MIN_SERVER_VERSION_NUM = 140000

export type ConnectionSource = 'flag' | 'PGDV_DATABASE_URL' | 'DATABASE_URL' | 'PG*' | 'config' | 'embedded'

export interface ConnectionChoice {
  source: ConnectionSource
  /** Undefined for 'PG*' (pg reads the variables itself) and 'embedded' (known once started). */
  url?: string
}

const PG_ENV = ['PGHOST', 'PGHOSTADDR', 'PGPORT', 'PGDATABASE', 'PGUSER', 'PGSERVICE']

/** Pure: which connection the inputs select. */
export function chooseConnection(flagUrl: string | undefined, env: NodeJS.ProcessEnv, config: PgdvConfig | undefined): ConnectionChoice {
  if (flagUrl) return { source: 'flag', url: flagUrl }
  if (env.PGDV_DATABASE_URL) return { source: 'PGDV_DATABASE_URL', url: env.PGDV_DATABASE_URL }
  if (env.DATABASE_URL) return { source: 'DATABASE_URL', url: env.DATABASE_URL }
  if (PG_ENV.some((k) => env[k])) return { source: 'PG*' }
  if (config?.database.mode === 'url') return { source: 'config', url: config.database.url }
  return { source: 'embedded' }
}

/** Hides the password of a URL for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '****'
    return u.toString()
  } catch {
    return url.replace(/:\/\/([^:/@]+):[^@]*@/, '://$1:****@')
  }
}

/** Checks the shape of a database URL before anything connects with it. */
export function validateDatabaseUrl(url: string, source: string): void {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new PgdvError(`the database URL from ${source} (${redactUrl(url)}) is not a valid URL`, {
      hint: 'Use the form postgresql://USER:PASSWORD@HOST:PORT/DATABASE',
    })
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new PgdvError(`the database URL from ${source} (${redactUrl(url)}) has scheme "${u.protocol.replace(/:$/, '')}", not postgresql`, {
      hint: 'Use the form postgresql://USER:PASSWORD@HOST:PORT/DATABASE',
    })
  }
  if (!u.hostname && !u.searchParams.get('host')) {
    throw new PgdvError(`the database URL from ${source} (${redactUrl(url)}) names no host`, {
      hint: 'Use the form postgresql://USER:PASSWORD@HOST:PORT/DATABASE',
    })
  }
}

export interface ResolvedConnection {
  source: ConnectionSource
  /** pg connection config; connectionString is undefined for PG* variables. */
  config: pg.PoolConfig
  /** For messages: where we connect, without a password. */
  display: string
  home: string
  embedded: boolean
}

export interface ConnectOptions {
  home: string
  databaseUrl?: string
  env?: NodeJS.ProcessEnv
}

/**
 * Resolves the connection, initialising and starting the embedded server when it is
 * the one chosen. Records a new embedded setup (or a changed port) in config.json.
 */
export async function resolveConnection(opts: ConnectOptions): Promise<ResolvedConnection> {
  const env = opts.env ?? process.env
  const cfg = await readConfig(opts.home)
  const choice = chooseConnection(opts.databaseUrl, env, cfg)
  if (choice.source === 'PG*') {
    const host = env.PGHOST ?? env.PGHOSTADDR ?? 'localhost'
    return { source: 'PG*', config: {}, display: `${host}:${env.PGPORT ?? 5432}/${env.PGDATABASE ?? env.PGUSER ?? ''} (PG* variables)`, home: opts.home, embedded: false }
  }
  if (choice.url) {
    validateDatabaseUrl(choice.url, choice.source)
    return { source: choice.source, config: { connectionString: choice.url }, display: redactUrl(choice.url), home: opts.home, embedded: false }
  }
  const settings = await ensureEmbeddedRunning(opts.home, cfg)
  const url = embeddedUrl(settings)
  return { source: 'embedded', config: { connectionString: url }, display: redactUrl(url), home: opts.home, embedded: true }
}

export async function ensureEmbeddedRunning(home: string, cfg?: PgdvConfig) {
  await ensureWritableHome(home)
  return withHomeLock(home, async () => {
    // Re-read under the lock: a concurrent command may have initialised it.
    const current = (await readConfig(home)) ?? cfg
    let config: PgdvConfig
    if (current?.database.mode === 'embedded' && (await isInitialised(home))) {
      config = current
    } else {
      config = {
        format: 1,
        database: { mode: 'embedded', embedded: newEmbeddedSettings(await freePort()) },
        store: current?.store ?? { url: 'file://objects' },
      }
      if (config.database.mode === 'embedded') await initialiseEmbedded(home, config.database.embedded)
      await writeConfig(home, config)
    }
    if (config.database.mode !== 'embedded') throw new Error('unreachable')
    const settings = config.database.embedded
    const port = await startEmbedded(home, settings)
    if (port !== settings.port) {
      settings.port = port
      await writeConfig(home, config)
    }
    await ensureDatabase(settings)
    return settings
  })
}

/** Connection failures as one line naming the server and what to do. */
export function connectionError(e: unknown, display: string): PgdvError {
  const err = e as NodeJS.ErrnoException & { code?: string; message: string }
  const code = err.code ?? ''
  const hintUrl = 'Check PGDV_DATABASE_URL (or --database-url), or unset it to use the embedded PostgreSQL'
  switch (code) {
    case 'ECONNREFUSED':
      return new PgdvError(`cannot reach PostgreSQL at ${display}: connection refused`, { kind: 'connection', hint: `Is the server running? ${hintUrl}` })
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new PgdvError(`cannot reach PostgreSQL at ${display}: unknown host`, { kind: 'connection', hint: hintUrl })
    case 'ETIMEDOUT':
      return new PgdvError(`cannot reach PostgreSQL at ${display}: timed out`, { kind: 'connection', hint: hintUrl })
    case '28P01':
    case '28000':
      return new PgdvError(`PostgreSQL at ${display} refused the login: ${err.message}`, { kind: 'auth', hint: 'Check the user and password in the database URL' })
    case '3D000':
      return new PgdvError(`PostgreSQL at ${display}: ${err.message}`, { kind: 'not_found', hint: 'Create the database first, or name an existing one in the URL' })
    default:
      return new PgdvError(`cannot connect to PostgreSQL at ${display}: ${err.message}`, { kind: 'connection', hint: hintUrl })
  }
}

export function checkServerVersion(versionNum: number, version: string, display: string): void {
  if (versionNum < MIN_SERVER_VERSION_NUM) {
    throw new PgdvError(`PostgreSQL ${version} at ${display} is too old: pgdv needs PostgreSQL 14 or newer`, {
      kind: 'unsupported',
      hint: 'Upgrade the server, or unset PGDV_DATABASE_URL to use the embedded PostgreSQL',
    })
  }
}
