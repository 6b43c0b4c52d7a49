// A progress bar for long loads and checkouts: rows, MB/s and ETA on a TTY (stderr),
// nothing at all otherwise (pipes, CI, --json), so output stays machine-readable.

import cliProgress from 'cli-progress'

export interface ProgressUpdate {
  rows: number
  bytes: number
}

export interface Progress {
  update(p: ProgressUpdate): void
  /** Ends the bar and shows a status line (e.g. while the server commits) until stop(). */
  note(text: string): void
  stop(): void
}

export interface ProgressOptions {
  /** Total bytes when known (file size), else the bar shows rows and speed only. */
  totalBytes?: number
  /** Total rows when known (checkout of a version) and bytes are not. */
  totalRows?: number
  label?: string
  /** Force on/off; default: stderr is a TTY. */
  enabled?: boolean
  stream?: NodeJS.WriteStream
}

const NOOP: Progress = { update() {}, note() {}, stop() {} }

/** Whether a bar should be drawn: a TTY and not --json. Pure, for tests. */
export function progressEnabled(opts: { isTTY: boolean | undefined; json: boolean; quiet?: boolean }): boolean {
  return Boolean(opts.isTTY) && !opts.json && !opts.quiet
}

export function formatRate(bytes: number, ms: number): string {
  if (ms <= 0) return '0.0'
  return (bytes / 1e6 / (ms / 1000)).toFixed(1)
}

export function createProgress(opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr
  if (!(opts.enabled ?? stream.isTTY)) return NOOP
  const byRows = !(opts.totalBytes && opts.totalBytes > 0) && Boolean(opts.totalRows && opts.totalRows > 0)
  const total = byRows ? (opts.totalRows as number) : opts.totalBytes && opts.totalBytes > 0 ? opts.totalBytes : 0
  const label = opts.label ?? 'loading'
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: total
        ? `${label} [{bar}] {percentage}% | {rows} rows | {mbs} MB/s | ETA {eta_formatted}`
        : `${label} {rows} rows | {mb} MB | {mbs} MB/s`,
      hideCursor: true,
      clearOnComplete: true,
      fps: 5,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  )
  const started = Date.now()
  let running = true
  let noted = false
  bar.start(total || 1, 0, { rows: 0, mbs: '0.0', mb: '0.0' })
  return {
    update({ rows, bytes }) {
      if (!running) return
      const payload = { rows: rows.toLocaleString('en-US'), mbs: formatRate(bytes, Date.now() - started), mb: (bytes / 1e6).toFixed(1) }
      bar.update(total ? Math.min(byRows ? rows : bytes, total) : 0, payload)
    },
    note(text) {
      if (running) bar.stop()
      running = false
      noted = true
      stream.write(`\r\x1b[2K${text}`)
    },
    stop() {
      if (running) bar.stop()
      running = false
      if (noted) stream.write('\r\x1b[2K')
      noted = false
    },
  }
}
