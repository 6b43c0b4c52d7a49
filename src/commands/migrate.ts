import { migrate, migrationStatus } from '../db/migrate.js'
import { PgdvCommand } from '../lib/base.js'

export interface MigrateResult {
  applied: { id: number; name: string }[]
  schemaVersion: number
}

export default class Migrate extends PgdvCommand<typeof Migrate> {
  static summary = 'Apply pending pgdv migrations to the database.'
  static description = 'Safe to run concurrently and repeatedly. A database migrated by a newer pgdv is refused.'
  static examples = ['<%= config.bin %> migrate', '<%= config.bin %> migrate --json']

  async run(): Promise<MigrateResult> {
    const pgdv = await this.pgdv({ skipMigrationCheck: true })
    const { applied } = await migrate(pgdv.db)
    const status = await migrationStatus(pgdv.db)
    const result = { applied, schemaVersion: status.applied }
    this.log(applied.length ? `applied: ${applied.map((m) => `${m.id} ${m.name}`).join(', ')}` : `already current (schema version ${status.applied})`)
    return result
  }
}
