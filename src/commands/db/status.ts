import { type ServerInfo, serverStatus } from '../../api/server.js'
import { PgdvCommand } from '../../lib/base.js'

export default class DbStatus extends PgdvCommand<typeof DbStatus> {
  static summary = 'Show whether the embedded PostgreSQL is running, or which server pgdv uses.'
  static examples = ['<%= config.bin %> db status', '<%= config.bin %> db status --json']

  async run(): Promise<ServerInfo> {
    const info = await serverStatus({ home: this.flags.home, databaseUrl: this.flags['database-url'] })
    if (info.state === 'external') this.log(`external server from ${info.source}: ${info.url ?? 'PG* variables'}`)
    else this.log(`embedded PostgreSQL: ${info.state}${info.pid ? ` (pid ${info.pid})` : ''}\ndata: ${info.dataDir}\nlog:  ${info.log}`)
    return info
  }
}
