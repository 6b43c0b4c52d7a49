import { type ServerInfo, stopServer } from '../../api/server.js'
import { PgdvCommand } from '../../lib/base.js'

export default class DbStop extends PgdvCommand<typeof DbStop> {
  static summary = 'Stop the embedded PostgreSQL.'
  static examples = ['<%= config.bin %> db stop']

  async run(): Promise<ServerInfo & { stopped: boolean }> {
    const info = await stopServer({ home: this.flags.home, databaseUrl: this.flags['database-url'] })
    if (info.state === 'external') this.log(`pgdv uses the server from ${info.source}; the embedded server is not in use`)
    else this.log(info.stopped ? 'embedded PostgreSQL stopped' : `embedded PostgreSQL was not running (${info.state})`)
    return info
  }
}
