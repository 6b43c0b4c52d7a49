/**
 * Progress of add and checkout on a terminal (stderr): files, bytes, MB/s, dedup so
 * far and ETA. Silent when stderr is not a TTY or --json is on, so logs and pipes
 * stay clean.
 */
import cliProgress from 'cli-progress';

export interface ProgressBar {
  update(files: number, bytes: number, newBytes?: number): void;
  stop(): void;
}

const mb = (n: number): string => (n / 1e6).toFixed(1);

export function progressBar(what: string, totalFiles: number, totalBytes: number, enabled = Boolean(process.stderr.isTTY)): ProgressBar {
  if (!enabled || totalBytes === 0) return { update: () => undefined, stop: () => undefined };
  const t0 = Date.now();
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${what} [{bar}] {files}/{totalFiles} files | {mb}/{totalMb} MB | {rate} MB/s | {dedup} | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(totalBytes, 0, { files: 0, totalFiles, mb: '0.0', totalMb: mb(totalBytes), rate: '0.0', dedup: '' });
  return {
    update(files, bytes, newBytes) {
      const s = Math.max((Date.now() - t0) / 1000, 0.001);
      const dedup = newBytes === undefined ? '' : `new ${mb(newBytes)} MB (${bytes > 0 ? ((1 - newBytes / bytes) * 100).toFixed(0) : 0}% dedup)`;
      bar.update(bytes, { files, mb: mb(bytes), rate: mb(bytes / s), dedup });
    },
    stop() {
      bar.stop();
    },
  };
}
