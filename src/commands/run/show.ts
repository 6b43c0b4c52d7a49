import { Args } from '@oclif/core'
import { type RunDetails, showRun } from '../../api/runs.js'
import { formatTable, PgdvCommand } from '../../lib/base.js'

export default class RunShow extends PgdvCommand<typeof RunShow> {
  static summary = 'Show a run: status, params, latest metrics, pinned inputs with content hashes, outputs and metric history.'
  static examples = ['<%= config.bin %> run show 17', '<%= config.bin %> run show 17 --json']

  static args = { run: Args.string({ description: 'run id', required: true }) }

  async run(): Promise<RunDetails> {
    const { args } = await this.parse(RunShow)
    const r = await showRun(await this.pgdv(), args.run)
    const lines = [
      `run ${r.id}${r.name ? ` "${r.name}"` : ''}${r.experiment ? ` in experiment "${r.experiment}"` : ''}${r.job_name ? ` of job ${r.job_namespace} ${r.job_name}` : ''}`,
      `status     ${r.status}${r.finished_at ? ` at ${r.finished_at.toISOString()}` : ''}${r.note ? ` (${r.note})` : ''}`,
      `started    ${r.started_at.toISOString()} by ${r.started_by}`,
      `code ref   ${r.code_ref ?? ''}`,
      `params     ${JSON.stringify(r.params)}`,
      `metrics    ${JSON.stringify(r.metrics)}`,
      '',
      'inputs',
      r.input_versions.length ? formatTable(r.input_versions as unknown as Record<string, unknown>[], ['dataset', 'ref', 'version_id', 'content_hash']) : '  (none)',
      '',
      'outputs',
      r.output_versions.length ? formatTable(r.output_versions as unknown as Record<string, unknown>[], ['kind', 'id', 'name', 'content_hash']) : '  (none)',
    ]
    this.log(lines.join('\n'))
    return r
  }
}
