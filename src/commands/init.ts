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
    '<%= config.bin %> init --store s3://ml-data/pgdv --s3-endpoint http://127.0.0.1:9000 --s3-path-style',
  ]

  static flags = {
    store: Flags.string({ description: 'object store: a folder (default <home>/objects) or s3://BUCKET/PREFIX', env: 'PGDV_STORE' }),
    's3-endpoint': Flags.string({ description: 'S3 endpoint URL for MinIO and other S3-compatible services (credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)', env: 'PGDV_S3_ENDPOINT' }),
    's3-region': Flags.string({ description: 'S3 region (default us-east-1)', env: 'PGDV_S3_REGION' }),
    's3-path-style': Flags.boolean({ description: 'path-style S3 URLs (http://host/bucket/key); on by default with --s3-endpoint', allowNo: true }),
  }

  async run(): Promise<InitResult> {
    const result = await init({ home: this.flags.home, databaseUrl: this.flags['database-url'], store: this.flags.store, s3: s3Flags(this.flags) })
    this.log(`pgdv is installed in ${result.database} (schema version ${result.schemaVersion}, PostgreSQL ${result.serverVersion})`)
    this.log(result.appliedMigrations.length ? `applied migrations: ${result.appliedMigrations.map((m) => `${m.id} ${m.name}`).join(', ')}` : 'no migrations were pending')
    this.log(`home: ${result.home}`)
    this.log(`object store: ${result.store}`)
    return result
  }
}

/** The S3 settings given as flags (or their env variables), or undefined when none was. */
export function s3Flags(f: { 's3-endpoint'?: string; 's3-region'?: string; 's3-path-style'?: boolean }): { endpoint?: string; region?: string; forcePathStyle?: boolean } | undefined {
  const s = { endpoint: f['s3-endpoint'], region: f['s3-region'], forcePathStyle: f['s3-path-style'] }
  if (s.endpoint === undefined && s.region === undefined && s.forcePathStyle === undefined) return undefined
  return Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined))
}
