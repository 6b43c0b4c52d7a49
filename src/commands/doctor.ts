import { doctor, type DoctorReport } from '../api/admin.js'
import { PgdvCommand } from '../lib/base.js'

export default class Doctor extends PgdvCommand<typeof Doctor> {
  static summary = 'Check the setup: database reachable and its version, migrations, roles, object store.'
  static description = 'Each check passes or fails with a hint. Exits non-zero when any check fails.'
  static examples = ['<%= config.bin %> doctor', '<%= config.bin %> doctor --json']

  async run(): Promise<DoctorReport> {
    const report = await doctor({ home: this.flags.home, databaseUrl: this.flags['database-url'] })
    if (this.jsonEnabled()) {
      if (!report.ok) {
        this.logJson(report)
        this.exit(1)
      }
      return report
    }
    for (const c of report.checks) {
      this.log(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(16)} ${c.detail}${c.ok || !c.hint ? '' : `\n      ${' '.repeat(16)} hint: ${c.hint}`}`)
    }
    if (!report.ok) this.exit(1)
    return report
  }
}
