// Every pgdv command extends PgdvCommand: --json on all of them, the connection flags,
// and one error line (message + what to do) with a non-zero exit; a stack only with --verbose.

import { Command, Flags, Interfaces } from '@oclif/core'
import { Pgdv, type OpenOptions } from '../api/client.js'
import { PgdvError, toPgdvError } from './errors.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof PgdvCommand)['baseFlags'] & T['flags']>

export abstract class PgdvCommand<T extends typeof Command> extends Command {
  static enableJsonFlag = true

  static baseFlags = {
    home: Flags.string({
      description: 'pgdv home folder (embedded PostgreSQL, object store, config.json)',
      env: 'PGDV_HOME',
      helpGroup: 'GLOBAL',
    }),
    'database-url': Flags.string({
      description: 'PostgreSQL URL of an existing server (default: PGDV_DATABASE_URL, DATABASE_URL, PG*, config, else embedded)',
      helpGroup: 'GLOBAL',
    }),
    verbose: Flags.boolean({ description: 'show stack traces and details on errors', helpGroup: 'GLOBAL' }),
  }

  protected flags!: BaseFlags<T>
  private handle?: Pgdv

  override async init(): Promise<void> {
    await super.init()
    const { flags } = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (this.ctor as typeof PgdvCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
  }

  /** Opens pgdv with the global flags; closed automatically when the command ends. */
  protected async pgdv(opts: Partial<OpenOptions> = {}): Promise<Pgdv> {
    if (!this.handle) {
      this.handle = await Pgdv.open({ home: this.flags.home, databaseUrl: this.flags['database-url'], ...opts })
    }
    return this.handle
  }

  override async finally(err: Error | undefined): Promise<unknown> {
    if (this.handle) await this.handle.close().catch(() => {})
    return super.finally(err)
  }

  override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    // oclif's own exits (this.exit, --help) pass through untouched.
    if (err.oclif?.exit !== undefined && !(err instanceof PgdvError)) {
      if (err.oclif.exit === 0 || err.constructor.name === 'ExitError') throw err
      // Parse errors (unknown flag, missing argument): one line, exit 2.
      return this.fail(new PgdvError(err.message.split('\n')[0], { kind: 'usage', hint: `See \`pgdv ${this.id?.replace(/:/g, ' ') ?? ''} --help\`` }), err)
    }
    return this.fail(toPgdvError(err), err)
  }

  private fail(e: PgdvError, original: Error): never {
    const code = e.kind === 'usage' ? 2 : 1
    const verbose = this.argv.includes('--verbose')
    if (this.jsonEnabled()) {
      this.logJson({ error: { message: e.message, hint: e.hint, kind: e.kind, sqlstate: e.sqlstate } })
    } else {
      process.stderr.write(`Error: ${e.oneLine()}\n`)
    }
    if (verbose) process.stderr.write(`${original.stack ?? original.message}\n`)
    this.exit(code)
  }
}

/** Prints rows as an aligned text table; the --json output is the typed result instead. */
export function formatTable(rows: Record<string, unknown>[], columns: string[]): string {
  const cell = (v: unknown): string => {
    if (v === null || v === undefined) return ''
    if (v instanceof Date) return v.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')
    if (Array.isArray(v)) return v.join(',')
    if (typeof v === 'object') return JSON.stringify(v)
    return String(v)
  }
  const cells = rows.map((r) => columns.map((c) => cell(r[c])))
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)))
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd()
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n')
}
