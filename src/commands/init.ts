import { Flags } from '@oclif/core'
import { init, type InitResult } from '../api/admin.js'
import { PgdvCommand } from '../lib/base.js'

export default class Init extends PgdvCommand<typeof Init> {
  static summary = 'Install pgdv: start the embedded PostgreSQL (unless a server is configured), create schemas, roles and catalog.'
  static description = 'Idempotent: running it again applies only what is missing. Records its choices in <home>/config.json.'
  static examples = [
    '<%= config.bin %> init',
    '<%= config.bin %> init --database-url postgresql://me:secret@db.example.com:5432/ml',
    '<%= config.bin %> init --home /data/pgdv --store /data/pgdv-objects',
  ]

  static flags = {
    store: Flags.string({ description: 'object store: a folder (default <home>/objects) or s3://BUCKET/PREFIX', env: 'PGDV_STORE' }),
  }

  async run(): Promise<InitResult> {
    const result = await init({ home: this.flags.home, databaseUrl: this.flags['database-url'], store: this.flags.store })
    this.log(`pgdv is installed in ${result.database} (schema version ${result.schemaVersion}, PostgreSQL ${result.serverVersion})`)
    this.log(result.appliedMigrations.length ? `applied migrations: ${result.appliedMigrations.map((m) => `${m.id} ${m.name}`).join(', ')}` : 'no migrations were pending')
    this.log(`home: ${result.home}`)
    this.log(`object store: ${result.store}`)
    return result
  }
}
