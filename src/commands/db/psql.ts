import { spawn, spawnSync } from 'node:child_process'
import { ensureEmbeddedRunning } from '../../db/connect.js'
import { readConfig, resolveHome } from '../../db/home.js'
import { serverStatus } from '../../api/server.js'
import { PgdvCommand } from '../../lib/base.js'
import { PgdvError } from '../../lib/errors.js'

export default class DbPsql extends PgdvCommand<typeof DbPsql> {
  static summary = 'Open psql on pgdv\'s database (when a psql binary is on PATH; otherwise print the URL).'
  static examples = ['<%= config.bin %> db psql', '<%= config.bin %> db psql -- -c "SELECT * FROM dv.dataset_overview"']
  static strict = false

  async run(): Promise<{ url: string; psql: boolean; exitCode?: number }> {
    const home = resolveHome(this.flags.home)
    let info = await serverStatus({ home, databaseUrl: this.flags['database-url'], revealPassword: true })
    if (info.state !== 'external') {
      await ensureEmbeddedRunning(home, await readConfig(home))
      info = await serverStatus({ home, revealPassword: true })
    }
    const url = info.url
    if (!url) throw new PgdvError(`no database URL is known for ${home}`, { kind: 'not_found', hint: 'Run `pgdv init` first' })
    const found = spawnSync('psql', ['--version'], { stdio: 'ignore' }).status === 0
    if (!found) {
      this.log(`no psql binary on PATH; connect with: ${url}`)
      return { url, psql: false }
    }
    // Everything after `--` goes to psql as it is.
    const dashes = this.argv.indexOf('--')
    const extra = dashes >= 0 ? this.argv.slice(dashes + 1) : []
    const code = await new Promise<number>((resolve) => {
      const child = spawn('psql', [url, ...extra], { stdio: 'inherit' })
      child.on('close', (c) => resolve(c ?? 1))
    })
    if (code !== 0) this.exit(code)
    return { url, psql: true, exitCode: code }
  }
}
