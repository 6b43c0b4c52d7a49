// Reading OpenLineage events from a file, streamed: JSON Lines, pretty-printed objects
// one after another, or one JSON array of events. Each event comes out as its own
// text with the line it starts on, so errors can name the line; nothing holds more
// than one event (plus a read chunk) in memory.

import { PgdvError } from '../lib/errors.js'

export interface RawEvent {
  /** 1-based line where the event starts. */
  line: number
  text: string
}

/**
 * Splits a stream of text into top-level JSON objects (or the objects of one top-level
 * array). Only structure is tracked here (strings, escapes, nesting); JSON.parse checks
 * the syntax of each event afterwards.
 */
export async function* splitJsonValues(source: AsyncIterable<string | Buffer>, file = 'input'): AsyncGenerator<RawEvent> {
  let line = 1
  let depth = 0 // nesting inside the current event
  let inString = false
  let escape = false
  let arrayMode = false
  let arrayClosed = false
  let sawValue = false
  let buf = ''
  let startLine = 0
  const decoder = new TextDecoder('utf-8', { fatal: false })

  for await (const piece of source) {
    const chunk = typeof piece === 'string' ? piece : decoder.decode(piece, { stream: true })
    let capStart = depth > 0 ? 0 : -1
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i)
      if (depth > 0) {
        if (inString) {
          if (escape) escape = false
          else if (c === 0x5c) escape = true
          else if (c === 0x22) inString = false
          else if (c === 0x0a) line++
          continue
        }
        if (c === 0x22) inString = true
        else if (c === 0x7b || c === 0x5b) depth++
        else if (c === 0x7d || c === 0x5d) {
          depth--
          if (depth === 0) {
            buf += chunk.slice(capStart, i + 1)
            yield { line: startLine, text: buf }
            buf = ''
            capStart = -1
          }
        } else if (c === 0x0a) line++
        continue
      }
      // Between events.
      if (c === 0x0a) {
        line++
        continue
      }
      if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0xfeff) continue
      if (arrayClosed) throw new PgdvError(`${file} line ${line}: unexpected text after the closing "]" of the event array`, { hint: 'A JSON file holds one array of events, or one event per line (JSON Lines)' })
      if (c === 0x5b && !arrayMode && !sawValue) {
        arrayMode = true
        continue
      }
      if (arrayMode && c === 0x2c) continue
      if (arrayMode && c === 0x5d) {
        arrayClosed = true
        continue
      }
      if (c === 0x7b) {
        depth = 1
        sawValue = true
        startLine = line
        capStart = i
        continue
      }
      throw new PgdvError(`${file} line ${line}: expected an OpenLineage event (a JSON object), found ${JSON.stringify(chunk[i])}`, {
        hint: 'Each event is a JSON object: one per line (JSON Lines) or in one JSON array',
      })
    }
    if (depth > 0 && capStart >= 0) buf += chunk.slice(capStart)
  }
  if (depth > 0) throw new PgdvError(`${file} line ${startLine}: the event starting here is not closed (the file ends inside it)`, { hint: 'Check for a truncated file or a missing "}"' })
  if (arrayMode && !arrayClosed) throw new PgdvError(`${file} line ${line}: the event array is not closed with "]"`, { hint: 'Check for a truncated file' })
}

/** JSON.parse with the line of the problem. */
export function parseEvent(ev: RawEvent, file = 'input'): unknown {
  try {
    return JSON.parse(ev.text)
  } catch (e) {
    const msg = (e as Error).message
    const pos = /position (\d+)/.exec(msg)
    const offset = pos ? ev.text.slice(0, Number(pos[1])).split('\n').length - 1 : 0
    throw new PgdvError(`${file} line ${ev.line + offset}: invalid JSON in OpenLineage event (${msg.replace(/^JSON\.parse: /, '')})`, {
      hint: 'Fix the JSON of that event; nothing was ingested',
    })
  }
}
