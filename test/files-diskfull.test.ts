// A checkout onto a disk that fills up: one line naming the file and what to do, a
// non-zero exit, and no half-written file left behind. The full disk is a 1 MiB tmpfs,
// which needs the right to mount (root here and in CI); without it the test says so.

import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cli } from './helpers/cli.js'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let work: string
let small: string | undefined
const conn = () => ({ url: t.url, home: t.home })

function mountSmallDisk(dir: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

beforeAll(async () => {
  t = await freshDatabase()
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-diskfull-'))
  const dir = path.join(work, 'small-disk')
  await fs.mkdir(dir)
  if (mountSmallDisk(dir)) small = dir
})
afterAll(async () => {
  if (small) execFileSync('umount', [small])
  await t?.drop()
  await fs.rm(work, { recursive: true, force: true })
})

describe('checkout onto a full disk', () => {
  it('fails in one line naming the file, exits non-zero, and leaves no partial file', async (ctx) => {
    if (!small) {
      ctx.skip('mounting a 1 MiB tmpfs needs root (CAP_SYS_ADMIN); the disk-full path is not exercised here')
      return
    }
    const src = path.join(work, 'src')
    await fs.mkdir(src)
    await fs.writeFile(path.join(src, 'a-small.txt'), 'fits\n')
    await fs.writeFile(path.join(src, 'big.bin'), randomBytes(3 * 1024 * 1024))
    expect((await cli(['dataset', 'create', 'full', '--files'], conn())).exitCode).toBe(0)
    expect((await cli(['add', 'full', src], conn())).exitCode).toBe(0)

    const out = path.join(small, 'out')
    const r = await cli(['checkout', 'full', 'main', '--out', out], conn())
    expect(r.exitCode, r.stdout + r.stderr).not.toBe(0)
    const lines = r.stderr.trim().split('\n')
    expect(lines, r.stderr).toHaveLength(1)
    expect(lines[0]).toMatch(/the disk is full: could not write .*big\.bin.*Free some space/)
    expect(r.stderr).not.toMatch(/^\s+at /m)
    // Nothing half-written stays: the big file is not there, whole or in part.
    const left = await fs.readdir(out, { recursive: true }).catch(() => [] as string[])
    expect(left.filter((n) => n.includes('big.bin'))).toEqual([])
    const { size } = await fs.statfs(small).then((s) => ({ size: (s.blocks - s.bfree) * s.bsize }))
    expect(size).toBeLessThan(1024 * 1024)
  })
})
