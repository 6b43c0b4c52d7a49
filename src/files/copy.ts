/**
 * COPY helpers: index rows go into PostgreSQL by COPY (text format), streamed with
 * backpressure; never one INSERT per row.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

export type CopyValue = string | number | bigint | null | undefined;

function escape(v: CopyValue): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v !== 'string') return String(v);
  const s = v;
  // Only backslash and the three separators need escaping in COPY's text format.
  return /[\\\t\n\r]/.test(s) ? s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r') : s;
}

/** Runs `COPY <target> FROM STDIN` with the rows, in ~256 KiB pieces. */
export async function copyRows(client: pg.ClientBase, target: string, rows: Iterable<CopyValue[]> | AsyncIterable<CopyValue[]>): Promise<void> {
  async function* text(): AsyncGenerator<string> {
    let buf = '';
    for await (const r of rows) {
      buf += r.map(escape).join('\t') + '\n';
      if (buf.length >= 256 * 1024) {
        yield buf;
        buf = '';
      }
    }
    if (buf) yield buf;
  }
  const sink = client.query(copyFrom(`COPY ${target} FROM STDIN`));
  await pipeline(Readable.from(text()), sink);
}
