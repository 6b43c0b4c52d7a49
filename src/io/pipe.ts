// pipeline() over a list of stages built at run time (streams, async generator
// functions, a final async function). Node accepts the mix; its overloads cannot
// type a list whose stages depend on the input format, hence this one cast.

import { pipeline } from 'node:stream/promises'

export type Stage = NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream | ((src: AsyncIterable<never>) => unknown)

export function runPipeline(stages: unknown[], signal?: AbortSignal): Promise<void> {
  const run = pipeline as unknown as (...args: unknown[]) => Promise<void>
  return signal ? run(...stages, { signal }) : run(...stages)
}
