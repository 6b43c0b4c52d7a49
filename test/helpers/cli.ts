// Runs pgdv CLI commands in-process, end to end, as a user would type them.

import { fileURLToPath } from 'node:url'
import { runCommand } from '@oclif/test'

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
  const argv = [...args]
  if (conn?.url) argv.push('--database-url', conn.url)
  if (conn?.home) argv.push('--home', conn.home)
  const { stdout, stderr, error } = await runCommand(argv, { root })
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
