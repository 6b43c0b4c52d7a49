// A progress bar for long loads, adds and checkouts: rows or files, MB, MB/s, dedup and
// ETA on a TTY (stderr); nothing at all otherwise (pipes, CI, --json), so output stays
// machine-readable.

import cliProgress from 'cli-progress'

export interface ProgressUpdate {
  rows?: number
  bytes: number
  /** Files done (file datasets: the bar counts files instead of rows). */
  files?: number
  /** Bytes that were new to the store so far: shown as the dedup ratio. */
  newBytes?: number
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
  /** Total files: the bar shows files (and dedup) instead of rows. */
  totalFiles?: number
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
  const files = opts.totalFiles !== undefined
  const count = files ? `{files}/${opts.totalFiles} files | {mb} MB` : '{rows} rows'
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: total
        ? `${label} [{bar}] {percentage}% | ${count} | {mbs} MB/s{dedup} | ETA {eta_formatted}`
        : `${label} ${count} | {mb} MB | {mbs} MB/s{dedup}`,
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
  bar.start(total || 1, 0, { rows: 0, files: 0, mbs: '0.0', mb: '0.0', dedup: '' })
  return {
    update({ rows = 0, bytes, files: done = 0, newBytes }) {
      if (!running) return
      const dedup = newBytes === undefined ? '' : ` | new ${(newBytes / 1e6).toFixed(1)} MB (${bytes > 0 ? ((1 - newBytes / bytes) * 100).toFixed(0) : 0}% dedup)`
      const payload = { rows: rows.toLocaleString('en-US'), files: done, mbs: formatRate(bytes, Date.now() - started), mb: (bytes / 1e6).toFixed(1), dedup }
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
