// The pgdv home folder (./.pgdv by default) holds the embedded PostgreSQL, the
// filesystem object store and config.json, which records what `pgdv init` chose.
// Environment variables and flags override what the file says.

import { randomBytes } from 'node:crypto'
import { constants as fsc } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { PgdvError } from '../lib/errors.js'

export interface EmbeddedSettings {
  port: number
  user: string
  password: string
  database: string
}

export interface PgdvConfig {
  /** Bumped when the file's shape changes. */
  format: 1
  /**
   * 'embedded' runs PostgreSQL under <home>/pg; 'url' uses an existing server;
   * 'env' was initialised through environment variables, which keep deciding.
   */
  database: { mode: 'embedded'; embedded: EmbeddedSettings } | { mode: 'url'; url: string } | { mode: 'env' }
  /** Object store spec: a filesystem path (file://) or s3://bucket/prefix. */
  store: { url: string; s3?: { endpoint?: string; region?: string; forcePathStyle?: boolean } }
}

export const CONFIG_FILE = 'config.json'

/** Resolves the home folder: --home, then PGDV_HOME, then ./.pgdv under the working directory. */
export function resolveHome(flag?: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  const chosen = flag ?? env.PGDV_HOME ?? '.pgdv'
  return path.resolve(cwd, chosen)
}

export async function readConfig(home: string): Promise<PgdvConfig | undefined> {
  let text: string
  try {
    text = await fs.readFile(path.join(home, CONFIG_FILE), 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ENOTDIR') {
      throw new PgdvError(`the pgdv home folder ${home} is not writable (a parent is a file)`, { kind: 'io', hint: 'Choose a writable folder with --home or PGDV_HOME' })
    }
    throw new PgdvError(`cannot read ${path.join(home, CONFIG_FILE)} (${code ?? (e as Error).message})`, {
      kind: 'io',
      hint: 'Check the permissions of the pgdv home folder, or choose another with --home or PGDV_HOME',
    })
  }
  try {
    const cfg = JSON.parse(text) as PgdvConfig
    if (cfg.format !== 1 || !cfg.database || !cfg.store) throw new Error('missing fields')
    return cfg
  } catch (e) {
    throw new PgdvError(`${path.join(home, CONFIG_FILE)} is not a valid pgdv config (${(e as Error).message})`, {
      hint: 'Fix or delete the file and run `pgdv init` again',
    })
  }
}

export async function writeConfig(home: string, cfg: PgdvConfig): Promise<void> {
  const file = path.join(home, CONFIG_FILE)
  const tmp = `${file}.${process.pid}.tmp`
  // The file holds the embedded server's password: readable by its owner only.
  await fs.writeFile(tmp, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 })
  await fs.rename(tmp, file)
}

/** Creates the home folder if needed and proves it is writable, or says which folder to pick instead. */
export async function ensureWritableHome(home: string): Promise<void> {
  try {
    await fs.mkdir(home, { recursive: true, mode: 0o755 })
    await fs.access(home, fsc.W_OK | fsc.X_OK)
    // Unique per call: concurrent inits in one process must not remove each other's probe.
    const probe = path.join(home, `.write-probe-${process.pid}-${randomBytes(4).toString('hex')}`)
    await fs.writeFile(probe, '')
    await fs.rm(probe)
  } catch (e) {
    throw new PgdvError(`the pgdv home folder ${home} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      kind: 'io',
      hint: 'Choose a writable folder with --home or PGDV_HOME',
    })
  }
}
