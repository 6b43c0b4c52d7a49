import { doctor, type DoctorReport, init, type InitResult } from '../api/admin.js'
import { Pgdv } from '../api/client.js'
import { createDataset, type DatasetInfo, showDataset } from '../api/datasets.js'
import { PgdvCommand } from '../lib/base.js'

export interface DemoResult {
  init: InitResult
  dataset: DatasetInfo
  doctor: DoctorReport
}

export default class Demo extends PgdvCommand<typeof Demo> {
  static summary = 'Show pgdv working end to end on the embedded default: init, a sample dataset, doctor.'
  static description = 'Safe to run again: it reuses what the previous run created.'
  static examples = ['<%= config.bin %> demo', '<%= config.bin %> demo --home /tmp/pgdv-demo --json']

  async run(): Promise<DemoResult> {
    const opts = { home: this.flags.home, databaseUrl: this.flags['database-url'] }
    const initResult = await init(opts)
    this.log(`1. init: pgdv schema version ${initResult.schemaVersion} in ${initResult.database}`)

    const pgdv = await Pgdv.open(opts)
    let dataset: DatasetInfo
    try {
      const name = 'demo-flights'
      const existing = await pgdv.db.query<{ name: string }>('SELECT name FROM dv.datasets WHERE name = $1', [name])
      dataset = existing.length
        ? await showDataset(pgdv, name)
        : await createDataset(pgdv, { name, keyColumns: ['flight_id'], description: 'sample flights for the pgdv demo' })
      this.log(`2. dataset "${dataset.name}" keyed by (${dataset.key_columns?.join(', ')}), main at version ${dataset.main_version}`)
    } finally {
      await pgdv.close()
    }

    const report = await doctor(opts)
    this.log(`3. doctor: ${report.checks.map((c) => `${c.name} ${c.ok ? 'ok' : 'FAILED'}`).join(', ')}`)
    if (!report.ok) {
      for (const c of report.checks.filter((x) => !x.ok)) this.log(`   ${c.name}: ${c.detail} (${c.hint})`)
      if (this.jsonEnabled()) this.logJson({ init: initResult, dataset, doctor: report })
      this.exit(1)
    }
    this.log('\nTry: npx pgdv dataset list, npx pgdv db psql, npx pgdv --help')
    return { init: initResult, dataset, doctor: report }
  }
}
