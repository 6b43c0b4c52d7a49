// The embedded server's lifecycle for `pgdv db ...`: start, stop, status, url.

import { chooseConnection, ensureEmbeddedRunning, redactUrl } from '../db/connect.js'
import { embeddedPaths, embeddedStatus, embeddedUrl, stopEmbedded, type ServerState } from '../db/embedded.js'
import { readConfig, resolveHome } from '../db/home.js'

export interface ServerInfo {
  home: string
  /** Where pgdv connects: 'embedded', or the variable/flag/config naming another server. */
  source: string
  state: ServerState | 'external'
  url?: string
  pid?: number
  dataDir?: string
  log?: string
}

interface ServerOptions {
  home?: string
  databaseUrl?: string
  env?: NodeJS.ProcessEnv
  /** Include the password in url (for `db url`). */
  revealPassword?: boolean
}

export async function serverStatus(opts: ServerOptions = {}): Promise<ServerInfo> {
  const env = opts.env ?? process.env
  const home = resolveHome(opts.home, env)
  const cfg = await readConfig(home)
  const choice = chooseConnection(opts.databaseUrl, env, cfg)
  if (choice.source !== 'embedded') {
    return { home, source: choice.source, state: 'external', url: choice.url && (opts.revealPassword ? choice.url : redactUrl(choice.url)) }
  }
  const st = await embeddedStatus(home)
  const paths = embeddedPaths(home)
  const url = cfg?.database.mode === 'embedded' ? embeddedUrl(cfg.database.embedded) : undefined
  return {
    home,
    source: 'embedded',
    state: st.state,
    pid: st.pid,
    url: url && (opts.revealPassword ? url : redactUrl(url)),
    dataDir: paths.data,
    log: paths.log,
  }
}

export async function startServer(opts: ServerOptions = {}): Promise<ServerInfo> {
  const env = opts.env ?? process.env
  const home = resolveHome(opts.home, env)
  const before = await serverStatus(opts)
  if (before.state === 'external') return before
  await ensureEmbeddedRunning(home, await readConfig(home))
  return serverStatus(opts)
}

export async function stopServer(opts: ServerOptions = {}): Promise<ServerInfo & { stopped: boolean }> {
  const env = opts.env ?? process.env
  const home = resolveHome(opts.home, env)
  const before = await serverStatus(opts)
  if (before.state === 'external') return { ...before, stopped: false }
  const stopped = await stopEmbedded(home)
  return { ...(await serverStatus(opts)), stopped }
}
