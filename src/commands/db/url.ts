import { PgdvError } from '../../lib/errors.js'
import { serverStatus } from '../../api/server.js'
import { PgdvCommand } from '../../lib/base.js'

export default class DbUrl extends PgdvCommand<typeof DbUrl> {
  static summary = 'Print the connection URL of pgdv\'s database (with its password), for psql or a notebook.'
  static examples = ['<%= config.bin %> db url', 'psql "$(<%= config.bin %> db url)"']

  async run(): Promise<{ url: string; source: string }> {
    const info = await serverStatus({ home: this.flags.home, databaseUrl: this.flags['database-url'], revealPassword: true })
    if (!info.url) {
      const hint = info.state === 'external' ? 'pgdv connects through the PG* variables; psql reads the same ones' : 'Run `pgdv init` first'
      throw new PgdvError(`no database URL is known for ${info.home}`, { kind: 'not_found', hint })
    }
    this.log(info.url)
    return { url: info.url, source: info.source }
  }
}
