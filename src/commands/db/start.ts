import { type ServerInfo, startServer } from '../../api/server.js'
import { PgdvCommand } from '../../lib/base.js'

export default class DbStart extends PgdvCommand<typeof DbStart> {
  static summary = 'Start the embedded PostgreSQL (initialising it on first use).'
  static description = 'Other commands start it on demand too; it keeps running until `pgdv db stop`.'
  static examples = ['<%= config.bin %> db start', '<%= config.bin %> db start --home /data/pgdv']

  async run(): Promise<ServerInfo> {
    const info = await startServer({ home: this.flags.home, databaseUrl: this.flags['database-url'] })
    if (info.state === 'external') this.log(`pgdv uses the server from ${info.source} (${info.url ?? 'PG* variables'}); nothing to start`)
    else this.log(`embedded PostgreSQL is ${info.state}${info.pid ? ` (pid ${info.pid})` : ''}: ${info.url}`)
    return info
  }
}
