// Per-test-file isolation: a database cloned from the migrated template.

import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { inject } from 'vitest'
import { Pgdv } from '../../src/api/client.js'

export interface TestDatabase {
  name: string
  /** URL of the cloned, migrated database. */
  url: string
  /** A pgdv home folder of its own (config, object store). */
  home: string
  drop: () => Promise<void>
}

export function adminUrl(): string {
  return inject('pgAdminUrl')
}

export function urlFor(database: string): string {
  const u = new URL(adminUrl())
  u.pathname = `/${database}`
  return u.toString()
}

async function withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl() })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

/** A new database: migrated (cloned from the template) unless empty is asked for. */
export async function freshDatabase(opts: { empty?: boolean } = {}): Promise<TestDatabase> {
  const template = inject('pgTemplate')
  const name = `${template.replace('pgdv_tpl_', 'pgdv_t_')}_${randomBytes(4).toString('hex')}`
  await withAdmin(async (c) => {
    for (let attempt = 0; ; attempt++) {
      try {
        await c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}${opts.empty ? '' : ` TEMPLATE ${pg.escapeIdentifier(template)}`}`)
        return
      } catch (e) {
        // "source database is being accessed by other users": another file is cloning it right now.
        if ((e as { code?: string }).code !== '55006' || attempt > 50) throw e
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200))
      }
    }
  })
  const home = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-home-'))
  await fs.chmod(home, 0o755)
  return {
    name,
    url: urlFor(name),
    home,
    drop: async () => {
      await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`))
      await fs.rm(home, { recursive: true, force: true })
    },
  }
}

/** Opens pgdv on a test database, with env isolated from the machine's. */
export async function openPgdv(t: TestDatabase): Promise<Pgdv> {
  return Pgdv.open({ home: t.home, databaseUrl: t.url, env: {} })
}
