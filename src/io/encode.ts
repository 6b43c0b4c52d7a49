// InputRecords → COPY text, batched into ~64 KiB chunks. Remembers which input line
// each COPY row came from (sparsely: only where the offset changes), so a COPY error
// "line N" can be reported as the line of the user's file.

import { Transform, type TransformCallback } from 'node:stream'
import { encodeCopyRow, valueToText } from './copytext.js'
import type { InputRecord } from './readers.js'

export class LineMap {
  // [copyRowIndex, inputLine - copyRowIndex] each time the offset changes.
  private readonly points: [number, number][] = []
  private lastDelta = Number.NaN

  record(rowIndex: number, line: number): void {
    const delta = line - rowIndex
    if (delta !== this.lastDelta) {
      this.points.push([rowIndex, delta])
      this.lastDelta = delta
    }
  }

  /** The input line of COPY data line `copyLine` (1-based), or undefined. */
  inputLine(copyLine: number): number | undefined {
    const i = copyLine - 1
    let lo = 0
    let hi = this.points.length - 1
    let found = -1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (this.points[mid][0] <= i) {
        found = mid
        lo = mid + 1
      } else hi = mid - 1
    }
    return found < 0 ? undefined : i + this.points[found][1]
  }
}

export interface EncodeOptions {
  /** For each target column, the index of its value in InputRecord.values. */
  sourceIndex: number[]
  /** For each target column, whether it takes JSON text (json/jsonb). */
  json: boolean[]
  /** Values are already text (CSV): no conversion beyond escaping. */
  text: boolean
  lineMap: LineMap
  onRow?: () => void
}

const BATCH = 64 * 1024

export class CopyEncoder extends Transform {
  private buf = ''
  private rows = 0

  constructor(private readonly o: EncodeOptions) {
    super({ writableObjectMode: true, writableHighWaterMark: 256 })
  }

  override _transform(rec: InputRecord, _enc: BufferEncoding, cb: TransformCallback): void {
    const { sourceIndex, json, text } = this.o
    const out: (string | null)[] = new Array(sourceIndex.length)
    for (let c = 0; c < sourceIndex.length; c++) {
      const v = rec.values[sourceIndex[c]]
      out[c] = text ? ((v as string | null | undefined) ?? null) : valueToText(v, json[c])
    }
    this.o.lineMap.record(this.rows++, rec.line)
    this.o.onRow?.()
    this.buf += encodeCopyRow(out)
    if (this.buf.length >= BATCH) {
      const chunk = this.buf
      this.buf = ''
      cb(null, chunk)
    } else cb()
  }

  override _flush(cb: TransformCallback): void {
    cb(null, this.buf.length > 0 ? this.buf : undefined)
  }

  get rowCount(): number {
    return this.rows
  }
}
