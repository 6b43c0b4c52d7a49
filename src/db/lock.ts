// A lock folder in the pgdv home, so that two commands started at once do not both
// run initdb or pg_ctl start. mkdir is atomic; a lock whose owner died is taken over.

import fs from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { PgdvError } from '../lib/errors.js'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export async function withHomeLock<T>(home: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const dir = path.join(home, '.lock')
  const owner = path.join(dir, 'pid')
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      await fs.mkdir(dir)
      await fs.writeFile(owner, String(process.pid))
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      const pid = Number(await fs.readFile(owner, 'utf8').catch(() => ''))
      const st = await fs.stat(dir).catch(() => undefined)
      // No pid yet and a young folder: its owner is between mkdir and writeFile.
      const stale = pid > 0 ? !alive(pid) : !!st && Date.now() - st.mtimeMs > 10_000
      if (stale) {
        await fs.rm(dir, { recursive: true, force: true })
        continue
      }
      if (Date.now() > deadline) {
        throw new PgdvError(`the pgdv home ${home} is locked by process ${pid || '?'}`, {
          kind: 'conflict',
          hint: `Wait for it to finish, or remove ${dir} if no pgdv command is running`,
        })
      }
      await sleep(50 + Math.random() * 100)
    }
  }
  try {
    return await fn()
  } finally {
    await fs.rm(dir, { recursive: true, force: true })
  }
}
