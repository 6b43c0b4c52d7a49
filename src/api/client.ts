// The library entry for pipeline code: open a pgdv handle (embedded by default, or
// an existing PostgreSQL), then call the operations. The CLI is a thin shell over this.

import { Db, openDb } from '../db/db.js'
import { readConfig, resolveHome, type PgdvConfig } from '../db/home.js'
import { assertMigrated, migrate } from '../db/migrate.js'

export interface OpenOptions {
  /** pgdv home folder (default: $PGDV_HOME or ./.pgdv). */
  home?: string
  /** PostgreSQL URL; default from PGDV_DATABASE_URL, DATABASE_URL, PG*, config.json, else embedded. */
  databaseUrl?: string
  /** Environment to read variables from (default process.env). */
  env?: NodeJS.ProcessEnv
  /** Apply pending migrations instead of refusing an un-migrated database. */
  migrate?: boolean
  /** Skip the migration check (init and doctor do their own). */
  skipMigrationCheck?: boolean
  /** Pool size (default 4). */
  maxConnections?: number
}

export class Pgdv {
  private constructor(
    readonly db: Db,
    readonly home: string,
    readonly config: PgdvConfig | undefined,
  ) {}

  static async open(opts: OpenOptions = {}): Promise<Pgdv> {
    const env = opts.env ?? process.env
    const home = resolveHome(opts.home, env)
    const db = await openDb({ home, databaseUrl: opts.databaseUrl, env, max: opts.maxConnections })
    try {
      if (opts.migrate) await migrate(db)
      else if (!opts.skipMigrationCheck) await assertMigrated(db)
    } catch (e) {
      await db.close()
      throw e
    }
    return new Pgdv(db, home, await readConfig(home))
  }

  async close(): Promise<void> {
    await this.db.close()
  }
}
