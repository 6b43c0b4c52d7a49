import { doctor, type DoctorReport, init, type InitResult } from '../api/admin.js'
import { Pgdv } from '../api/client.js'
import { createDataset, type DatasetInfo, showDataset } from '../api/datasets.js'
import { diffReport, diffRows, type DiffReport, type RowChange } from '../api/history.js'
import { listRefs } from '../api/refs.js'
import { commitObjects, type CommitResult } from '../api/rows.js'
import { PgdvCommand } from '../lib/base.js'

export interface DemoResult {
  init: InitResult
  dataset: DatasetInfo
  versions: { tag: string; version_id: string; created: boolean }[]
  diff: DiffReport
  changes: RowChange[]
  doctor: DoctorReport
}

const DATASET = 'demo-flights'
const AIRPORTS = ['AMS', 'CDG', 'FRA', 'LHR', 'MAD', 'JFK', 'SFO', 'NRT']

/** Sample flights, the same on every run: version 1 of the demo dataset. */
function* flightsV1(): Generator<Record<string, unknown>> {
  for (let i = 1; i <= 1000; i++) {
    yield {
      flight_id: i,
      origin: AIRPORTS[i % AIRPORTS.length],
      destination: AIRPORTS[(i * 3 + 1) % AIRPORTS.length],
      delay_minutes: (i * 37) % 90,
      label: (i * 37) % 90 > 45 ? 'late' : 'on-time',
    }
  }
}

/** Version 2: a relabelling pass fixed 20 labels, 10 cancelled flights left, 5 new ones came in. */
function* flightsV2(): Generator<Record<string, unknown>> {
  for (const f of flightsV1()) {
    const id = f.flight_id as number
    if (id % 100 === 0) continue
    if (id % 50 === 7) yield { ...f, label: f.label === 'late' ? 'on-time' : 'late' }
    else yield f
  }
  for (let i = 1001; i <= 1005; i++) yield { flight_id: i, origin: 'AMS', destination: 'SFO', delay_minutes: 12, label: 'on-time' }
}

export default class Demo extends PgdvCommand<typeof Demo> {
  static summary = 'Show pgdv working end to end on the embedded default: init, two versions of a sample dataset and their diff, doctor.'
  static description = 'Safe to run again: it reuses what the previous run created (tags demo-v1 and demo-v2).'
  static examples = ['<%= config.bin %> demo', '<%= config.bin %> demo --home /tmp/pgdv-demo --json']

  async run(): Promise<DemoResult> {
    const opts = { home: this.flags.home, databaseUrl: this.flags['database-url'] }
    const initResult = await init(opts)
    this.log(`1. init: pgdv schema version ${initResult.schemaVersion} in ${initResult.database}`)

    const pgdv = await Pgdv.open(opts)
    let dataset: DatasetInfo
    const versions: DemoResult['versions'] = []
    let diff: DiffReport
    let changes: RowChange[]
    try {
      const existing = await pgdv.db.query<{ name: string }>('SELECT name FROM dv.datasets WHERE name = $1', [DATASET])
      dataset = existing.length
        ? await showDataset(pgdv, DATASET)
        : await createDataset(pgdv, { name: DATASET, keyColumns: ['flight_id'], description: 'sample flights for the pgdv demo' })
      this.log(`2. dataset "${dataset.name}" keyed by (${dataset.key_columns?.join(', ')})`)

      const tags = new Map((await listRefs(pgdv, DATASET, 'tag')).map((r) => [r.ref, r.version_id]))
      const steps = [
        { tag: 'demo-v1', rows: flightsV1, message: 'sample flights, first labelling', columns: 'flight_id bigint, origin text, destination text, delay_minutes integer, label text' },
        { tag: 'demo-v2', rows: flightsV2, message: 'relabelled 20, dropped 10 cancelled, 5 new', columns: undefined },
      ]
      for (const [i, step] of steps.entries()) {
        const at = tags.get(step.tag)
        if (at) {
          versions.push({ tag: step.tag, version_id: at, created: false })
          this.log(`${3 + i}. ${step.tag} is version ${at} (committed by an earlier demo run)`)
          continue
        }
        const c: CommitResult = await commitObjects(pgdv, { dataset: DATASET, rows: step.rows(), columns: step.columns, mode: 'replace', message: step.message, tag: step.tag })
        versions.push({ tag: step.tag, version_id: c.version_id, created: c.created })
        this.log(`${3 + i}. committed version ${c.version_id} (${step.tag}): ${c.row_count} rows, +${c.added} -${c.removed} ~${c.modified}, content ${c.content_hash.slice(0, 12)}`)
      }

      diff = await diffReport(pgdv, DATASET, 'demo-v1', 'demo-v2')
      changes = await diffRows(pgdv, DATASET, 'demo-v1', 'demo-v2', { values: true, limit: 5 })
      this.log(`5. pgdv diff ${DATASET} demo-v1 demo-v2: ${diff.added} added, ${diff.removed} removed, ${diff.modified} modified; the first ${changes.length}:`)
      for (const ch of changes) {
        const before = ch.old_values ? `${ch.old_values.label}` : '-'
        const after = ch.new_values ? `${ch.new_values.label}` : '-'
        this.log(`   ${ch.change.padEnd(8)} ${JSON.stringify(ch.key)}  label ${before} -> ${after}`)
      }
    } finally {
      await pgdv.close()
    }

    const report = await doctor(opts)
    this.log(`6. doctor: ${report.checks.map((c) => `${c.name} ${c.ok ? 'ok' : 'FAILED'}`).join(', ')}`)
    const result = { init: initResult, dataset, versions, diff, changes, doctor: report }
    if (!report.ok) {
      for (const c of report.checks.filter((x) => !x.ok)) this.log(`   ${c.name}: ${c.detail} (${c.hint})`)
      if (this.jsonEnabled()) this.logJson(result)
      this.exit(1)
    }
    this.log(`\nTry: npx pgdv log ${DATASET}, npx pgdv diff ${DATASET} demo-v1 demo-v2 --values, npx pgdv db psql, npx pgdv --help`)
    return result
  }
}
