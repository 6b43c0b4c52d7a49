import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { init } from '../src/api/admin.js'
import { openDb } from '../src/db/db.js'
import { localMigrations, migrate, migrationStatus } from '../src/db/migrate.js'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
beforeAll(async () => {
  t = await freshDatabase({ empty: true })
})
afterAll(async () => {
  await t?.drop()
})

async function schemaFingerprint(url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  const { rows } = await c.query(`
    SELECT n.nspname, c.relname, c.relkind, obj_description(c.oid) AS comment
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname LIKE 'dv%' ORDER BY 1, 2`)
  const fns = await c.query(`
    SELECT p.oid::regprocedure::text AS sig, md5(p.prosrc) AS src FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname LIKE 'dv%' ORDER BY 1`)
  await c.end()
  return JSON.stringify([rows, fns.rows])
}

describe('migrations', () => {
  it('five concurrent inits against one empty database all succeed', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => init({ home: t.home, databaseUrl: t.url, env: {} })))
    const local = await localMigrations()
    expect(results.every((r) => r.schemaVersion === local.length)).toBe(true)
    // Exactly one of them applied each migration.
    expect(results.flatMap((r) => r.appliedMigrations).length).toBe(local.length)
  })

  it('migrating again is a no-op', async () => {
    const before = await schemaFingerprint(t.url)
    const db = await openDb({ home: t.home, databaseUrl: t.url, env: {} })
    try {
      expect((await migrate(db)).applied).toEqual([])
      const st = await migrationStatus(db)
      expect(st.pending).toEqual([])
      expect(st.unknown).toEqual([])
    } finally {
      await db.close()
    }
    expect(await schemaFingerprint(t.url)).toBe(before)
  })

  it('refuses a database migrated by a newer pgdv', async () => {
    const db = await openDb({ home: t.home, databaseUrl: t.url, env: {} })
    try {
      await db.query("INSERT INTO dv_internal.migrations (id, name, hash) VALUES (9999, 'from-the-future', 'x')")
      await expect(migrate(db)).rejects.toThrow(/migrated by a newer pgdv .*9999 "from-the-future"/)
      await db.query('DELETE FROM dv_internal.migrations WHERE id = 9999')
    } finally {
      await db.close()
    }
  })
})
