// Which object store a pgdv home uses, and a probe of it for doctor.

import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { toPgdvError } from '../lib/errors.js'
import type { PgdvConfig } from '../db/home.js'
import { s3Settings, storeError } from '../files/store.js'
import { openStore, StoreError } from '../store/index.js'

/** A relative folder in config.json is relative to the home folder. */
export function resolveStoreSpec(home: string, spec: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    if (spec.startsWith('file://')) return path.resolve(home, spec.slice('file://'.length))
    return spec
  }
  return path.resolve(home, spec)
}

export interface ProbeResult {
  ok: boolean
  detail: string
  hint?: string
}

export async function probeStore(spec: string, s3: PgdvConfig['store']['s3'], env: NodeJS.ProcessEnv): Promise<ProbeResult> {
  if (/^s3:\/\//i.test(spec)) return probeS3(spec, s3, env)
  if (spec.startsWith('/')) {
    const probe = path.join(spec, `.probe-${randomBytes(6).toString('hex')}`)
    try {
      await fs.mkdir(spec, { recursive: true })
      await fs.writeFile(probe, 'pgdv')
      const back = await fs.readFile(probe, 'utf8')
      await fs.rm(probe)
      if (back !== 'pgdv') return { ok: false, detail: `${spec}: read back different bytes`, hint: 'Check the disk' }
      return { ok: true, detail: `filesystem ${spec}: write, read, delete ok` }
    } catch (e) {
      const err = toPgdvError(e)
      return { ok: false, detail: `filesystem ${spec}: ${err.message}`, hint: 'Make the folder writable, or choose another store with `pgdv init --store`' }
    }
  }
  return { ok: false, detail: `${spec}: this store kind is not supported yet`, hint: 'Use a filesystem folder' }
}

/** Bucket reachable, then write, read back, list and delete a probe object. */
async function probeS3(spec: string, cfg: PgdvConfig['store']['s3'], env: NodeJS.ProcessEnv): Promise<ProbeResult> {
  const s = s3Settings(cfg, env)
  let store
  try {
    store = openStore(spec, {
      endpoint: s.endpoint,
      region: s.region ?? 'us-east-1',
      forcePathStyle: s.forcePathStyle,
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      maxAttempts: 2,
    })
  } catch (e) {
    const err = e instanceof StoreError ? storeError(e) : toPgdvError(e)
    return { ok: false, detail: `${spec}: ${err.message}`, hint: err.hint }
  }
  try {
    const r = await store.probe()
    if (r.ok) return { ok: true, detail: `${store.describe()}: bucket reachable; write, read, list, delete ok (${Math.round(r.ms)} ms)` }
    const err = storeError(r.failed!.error)
    return { ok: false, detail: `${store.describe()}: probe ${r.failed!.step} failed: ${err.message}`, hint: err.hint }
  } finally {
    await store.close?.()
  }
}
