// A thin wrapper over a pg.Pool: typed rows, transactions, and errors turned into
// PgdvError (PostgreSQL's message and HINT kept) so callers print one clear line.

import pg from 'pg'
import { PgdvError, toPgdvError } from '../lib/errors.js'
import { checkServerVersion, type ConnectOptions, connectionError, resolveConnection, type ResolvedConnection } from './connect.js'

export type Queryable = pg.Pool | pg.PoolClient | pg.Client

export class Db {
  constructor(
    readonly pool: pg.Pool,
    readonly connection: ResolvedConnection,
    readonly serverVersion: string,
  ) {}

  async query<R extends object = Record<string, unknown>>(text: string, values?: unknown[], on: Queryable = this.pool): Promise<R[]> {
    try {
      const res = await on.query<R>(text, values)
      return res.rows
    } catch (e) {
      throw toPgdvError(e)
    }
  }

  async one<R extends object = Record<string, unknown>>(text: string, values?: unknown[], on: Queryable = this.pool): Promise<R> {
    const rows = await this.query<R>(text, values, on)
    if (rows.length !== 1) throw new PgdvError(`expected one row, got ${rows.length}`, { kind: 'internal' })
    return rows[0]
  }

  /** Runs fn in one transaction on one connection; rolls back on any error. */
  async tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      const out = await fn(client)
      await client.query('COMMIT')
      return out
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {})
      throw toPgdvError(e)
    } finally {
      client.release()
    }
  }

  async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect()
    try {
      return await fn(client)
    } catch (e) {
      throw toPgdvError(e)
    } finally {
      client.release()
    }
  }

  async close(): Promise<void> {
    await this.pool.end()
  }
}

export interface OpenDbOptions extends ConnectOptions {
  max?: number
  applicationName?: string
}

/** Resolves, connects and checks the server (reachable, login accepted, PostgreSQL 14+). */
export async function openDb(opts: OpenDbOptions): Promise<Db> {
  const conn = await resolveConnection(opts)
  const pool = new pg.Pool({
    ...conn.config,
    max: opts.max ?? 4,
    connectionTimeoutMillis: 15_000,
    application_name: opts.applicationName ?? 'pgdv',
  })
  // An idle client's error (server restart) must not crash the process.
  pool.on('error', () => {})
  let version: { server_version: string; num: number }
  try {
    const res = await pool.query<{ server_version: string; num: number }>(
      "SELECT current_setting('server_version') AS server_version, current_setting('server_version_num')::int AS num",
    )
    version = res.rows[0]
  } catch (e) {
    await pool.end().catch(() => {})
    throw connectionError(e, conn.display)
  }
  try {
    checkServerVersion(version.num, version.server_version, conn.display)
  } catch (e) {
    await pool.end().catch(() => {})
    throw e
  }
  return new Db(pool, conn, version.server_version)
}
