// Runs pgdv CLI commands in-process, end to end, as a user would type them.

import { fileURLToPath } from 'node:url'
import { run } from '@oclif/core'
import { captureOutput } from '@oclif/test'

const root = fileURLToPath(new URL('../..', import.meta.url))

export interface CliResult<T = unknown> {
  stdout: string
  stderr: string
  /** oclif's exit code: 0 on success. */
  exitCode: number
  /** Parsed stdout when --json was given and it parsed. */
  json?: T
  error?: Error
}

export async function cli<T = unknown>(args: string[], conn?: { url?: string; home?: string }): Promise<CliResult<T>> {
  // Connection flags go before a `--`, after which arguments belong to another program.
  const dashes = args.indexOf('--')
  const own = dashes >= 0 ? args.slice(0, dashes) : [...args]
  if (conn?.url) own.push('--database-url', conn.url)
  if (conn?.home) own.push('--home', conn.home)
  const argv = dashes >= 0 ? [...own, ...args.slice(dashes)] : own
  // Not @oclif/test's runCommand: it joins argv and splits it on spaces again.
  const { stdout, stderr, error } = await captureOutput(() => run(argv, { root }))
  const exitCode = error ? ((error as { oclif?: { exit?: number } }).oclif?.exit ?? 1) : 0
  let json: T | undefined
  if (args.includes('--json')) {
    try {
      json = JSON.parse(stdout) as T
    } catch {
      json = undefined
    }
  }
  return { stdout, stderr, exitCode, json, error }
}
