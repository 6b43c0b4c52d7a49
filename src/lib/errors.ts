// Errors that reach a user. Every one carries a one-line message that names the
// input and says what to do; the CLI prints that line, never a stack, unless --verbose.

export type ErrorKind =
  | 'usage' // the caller's input is wrong
  | 'not_found'
  | 'conflict'
  | 'connection'
  | 'auth'
  | 'unsupported'
  | 'io'
  | 'integrity'
  | 'internal'

export class PgdvError extends Error {
  readonly kind: ErrorKind
  readonly hint?: string
  readonly sqlstate?: string

  constructor(message: string, opts: { kind?: ErrorKind; hint?: string; sqlstate?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'PgdvError'
    this.kind = opts.kind ?? 'usage'
    this.hint = opts.hint
    this.sqlstate = opts.sqlstate
  }

  /** The single line a user sees: the message, then what to do. */
  oneLine(): string {
    const msg = this.message.replace(/\s*\n\s*/g, ' ').trim()
    if (!this.hint) return msg
    const sep = /[.!?]$/.test(msg) ? ' ' : '. '
    return `${msg}${sep}${this.hint.replace(/\s*\n\s*/g, ' ').trim()}`
  }
}

interface PgLikeError {
  code?: string
  message: string
  hint?: string
  detail?: string
  severity?: string
}

function isPgError(e: unknown): e is PgLikeError {
  return typeof e === 'object' && e !== null && 'severity' in e && 'code' in e && 'message' in e
}

// SQLSTATE → kind. Our SQL raises standard codes with a HINT (see sql/migrations).
const SQLSTATE_KINDS: Record<string, ErrorKind> = {
  '42704': 'not_found', // undefined_object
  P0002: 'not_found', // no_data_found
  '42710': 'conflict', // duplicate_object
  '23505': 'conflict', // unique_violation
  '40001': 'conflict', // serialization_failure
  '55000': 'conflict', // object_not_in_prerequisite_state
  '42602': 'usage', // invalid_name
  '22023': 'usage', // invalid_parameter_value
  '28P01': 'auth',
  '28000': 'auth',
  '42501': 'auth', // insufficient_privilege
  '3D000': 'not_found', // invalid_catalog_name (database does not exist)
}

/** Turns anything thrown into a PgdvError, keeping PostgreSQL's message and hint. */
export function toPgdvError(e: unknown): PgdvError {
  if (e instanceof PgdvError) return e
  if (isPgError(e)) {
    const known = e.code ? SQLSTATE_KINDS[e.code] : undefined
    const kind: ErrorKind = known ?? (e.code?.startsWith('22') ? 'usage' : 'internal')
    return new PgdvError(e.message, { kind, hint: e.hint, sqlstate: e.code, cause: e })
  }
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOSPC') return new PgdvError(`${e.message}: the disk is full`, { kind: 'io', hint: 'Free some space and run the command again', cause: e })
    if (code === 'EACCES' || code === 'EPERM') return new PgdvError(e.message, { kind: 'io', hint: 'Check the permissions of that path', cause: e })
    return new PgdvError(e.message, { kind: 'internal', cause: e })
  }
  return new PgdvError(String(e), { kind: 'internal' })
}
