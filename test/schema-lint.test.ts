// The SQL API's own rules, checked on the migrated database: every public object is
// documented, nothing is executable by PUBLIC, and elevated functions pin search_path.

import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let c: pg.Client
beforeAll(async () => {
  t = await freshDatabase()
  c = new pg.Client({ connectionString: t.url })
  await c.connect()
})
afterAll(async () => {
  await c?.end()
  await t?.drop()
})

describe('SQL API rules', () => {
  it('every function, table and view in schema dv has a COMMENT', async () => {
    const { rows } = await c.query<{ obj: string }>(`
      SELECT p.oid::regprocedure::text AS obj FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname IN ('dv', 'dv_internal') AND obj_description(p.oid, 'pg_proc') IS NULL
      UNION ALL
      SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'dv' AND c.relkind IN ('r', 'v', 'm', 'p') AND obj_description(c.oid, 'pg_class') IS NULL`)
    expect(rows.map((r) => r.obj)).toEqual([])
  })

  it('no pgdv function is executable by PUBLIC, and each is granted to a pgdv role', async () => {
    const { rows } = await c.query<{ fn: string; public_exec: boolean; roles: boolean }>(`
      SELECT p.oid::regprocedure::text AS fn,
             coalesce(bool_or(a.grantee = 0 AND a.privilege_type = 'EXECUTE'), false) AS public_exec,
             has_function_privilege('pgdv_admin', p.oid, 'EXECUTE') AS roles
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      LEFT JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a ON true
      WHERE n.nspname = 'dv' AND p.prokind IN ('f', 'p')
      GROUP BY p.oid`)
    expect(rows.filter((r) => r.public_exec).map((r) => r.fn)).toEqual([])
    expect(rows.filter((r) => !r.roles).map((r) => r.fn)).toEqual([])
  })

  it('every SECURITY DEFINER function pins its search_path', async () => {
    const { rows } = await c.query<{ fn: string }>(`
      SELECT p.oid::regprocedure::text AS fn FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname LIKE 'dv%' AND p.prosecdef
        AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) cfg WHERE cfg LIKE 'search_path=%')`)
    expect(rows.map((r) => r.fn)).toEqual([])
  })

  it('a pgdv_reader login can read but not write; a pgdv_writer can create datasets', async () => {
    const suffix = t.name.slice(-8)
    const reader = `reader_${suffix}`
    const writer = `writer_${suffix}`
    await c.query(`CREATE ROLE ${reader} LOGIN PASSWORD 'pw' IN ROLE pgdv_reader`)
    await c.query(`CREATE ROLE ${writer} LOGIN PASSWORD 'pw' IN ROLE pgdv_writer`)
    await c.query(`GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(t.name)} TO ${reader}, ${writer}`)
    const as = async (role: string, sql: string) => {
      const u = new URL(t.url)
      u.username = role
      u.password = 'pw'
      const rc = new pg.Client({ connectionString: u.toString() })
      await rc.connect()
      try {
        return await rc.query(sql)
      } finally {
        await rc.end()
      }
    }
    try {
      await expect(as(writer, "SELECT * FROM dv.dataset_create('by_writer')")).resolves.toBeTruthy()
      await expect(as(reader, 'SELECT name FROM dv.dataset_overview')).resolves.toMatchObject({ rowCount: 1 })
      await expect(as(reader, "SELECT * FROM dv.dataset_create('by_reader')")).rejects.toThrow(/permission denied/)
      await expect(as(writer, "INSERT INTO dv.datasets (name) VALUES ('sneaky')")).rejects.toThrow(/permission denied/)
      await expect(as(writer, "SELECT * FROM dv.dataset_drop('by_writer')")).rejects.toThrow(/permission denied/)
      const audit = await c.query("SELECT actor, action FROM dv.audit_log WHERE table_name = 'dv.datasets' AND new_row->>'name' = 'by_writer'")
      expect(audit.rows).toEqual([{ actor: writer, action: 'INSERT' }])
    } finally {
      await c.query(`REVOKE CONNECT ON DATABASE ${pg.escapeIdentifier(t.name)} FROM ${reader}, ${writer}`)
      await c.query(`DROP ROLE ${reader}`)
      await c.query(`DROP ROLE ${writer}`)
    }
  })
})
