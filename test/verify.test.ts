// pgdv verify / dv.verify: recomputes row hashes, key hashes and the content hash of a
// version from its stored values, and for files datasets reads every file back. Tampering
// behind pgdv's back (an edited row, a deleted row, a flipped byte in a pack) is found
// and named; an intact version verifies.

import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { VerifyResult } from '../src/api/verify.js'
import { packKey } from '../src/packs/index.js'
import { FsStore } from '../src/store/index.js'
import { cli, type CliResult } from './helpers/cli.js'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
let c: pg.Client
const conn = () => ({ url: t.url, home: t.home })
const run = <T = unknown>(args: string[]) => cli<T>(args, conn())

type Verified = VerifyResult

beforeAll(async () => {
  t = await freshDatabase()
  c = new pg.Client({ connectionString: t.url })
  await c.connect()
})
afterAll(async () => {
  await c?.end()
  await t?.drop()
})

async function file(name: string, text: string): Promise<string> {
  const p = path.join(t.home, name)
  await fs.writeFile(p, text)
  return p
}

async function deltaOf(dataset: string, ref: string): Promise<string> {
  const { rows } = await c.query<{ t: string }>('SELECT delta_table AS t FROM dv.version_tables WHERE version_id = dv.resolve_ref($1, $2)', [dataset, ref])
  return rows[0].t
}

function expectOneLineError(r: CliResult, pattern: RegExp) {
  expect(r.exitCode, r.stdout + r.stderr).not.toBe(0)
  const lines = r.stderr.trim().split('\n')
  expect(lines, r.stderr).toHaveLength(1)
  expect(lines[0]).toMatch(pattern)
}

describe('verify a table dataset', () => {
  it('an intact keyed version, its parent, and a keyless one with duplicates verify', async () => {
    await run(['dataset', 'create', 'scores', '--key', 'id'])
    await run(['commit', 'scores', await file('s1.csv', 'id,score,note\n1,0.5,a\n2,1.25,\n3,-7,"é, ü"\n')])
    await run(['commit', 'scores', await file('s2.csv', 'id,score,note\n1,0.5,a\n2,2.5,b\n4,9,d\n')])
    for (const ref of ['main', 'main~1']) {
      const r = await run<Verified>(['verify', 'scores', ref, '--json'])
      expect(r.exitCode, r.stderr).toBe(0)
      expect(r.json).toMatchObject({ ok: true, rows: 3, bad_rows: null, first_bad: null, files_checked: null })
      expect(r.json!.computed_hash).toBe(r.json!.content_hash)
    }
    const plain = await run(['verify', 'scores'])
    expect(plain.stdout).toMatch(/version \d+ of dataset "scores": 3 rows verified; content hash [0-9a-f]{64}/)

    await run(['dataset', 'create', 'clicks'])
    await run(['commit', 'clicks', await file('c1.csv', 'kind,n\nclick,1\nclick,1\nview,2\n')])
    const { rows } = await c.query("SELECT * FROM dv.verify('clicks')")
    expect(rows[0]).toMatchObject({ ok: true, row_count: '3', bad_rows: '0' })
  })

  it('a row edited behind pgdv\'s back breaks the content hash; a deleted row too', async () => {
    // "scores" has one key column: row layout 2 stores values only, so the content hash
    // (recomputed from every row) is what tells the edit.
    const head = await deltaOf('scores', 'main')
    await c.query(`UPDATE dv_rows.${pg.escapeIdentifier(head)} SET note = 'forged' WHERE id = 2`)
    const r = await run<Verified>(['verify', 'scores'])
    expectOneLineError(r, /its rows give content hash [0-9a-f]{64}, but [0-9a-f]{64} was committed/)
    const { rows } = await c.query("SELECT ok, bad_rows, first_bad FROM dv.verify('scores', 'main')")
    expect(rows[0]).toEqual({ ok: false, bad_rows: null, first_bad: null })
    // The parent version does not read that row: it still verifies.
    expect((await run(['verify', 'scores', 'main~1'])).exitCode).toBe(0)

    await c.query(`UPDATE dv_rows.${pg.escapeIdentifier(head)} SET note = 'b' WHERE id = 2`)
    expect((await run(['verify', 'scores'])).exitCode).toBe(0)
    await c.query(`DELETE FROM dv_rows.${pg.escapeIdentifier(head)} WHERE id = 4`)
    expectOneLineError(await run(['verify', 'scores']), /its rows give content hash [0-9a-f]{64}, but [0-9a-f]{64} was committed/)
  })

  it('where row hashes are stored (a composite key), an edited row is named by its key', async () => {
    await run(['dataset', 'create', 'pairs', '--key', 'a,b'])
    await run(['commit', 'pairs', await file('p1.csv', 'a,b,v\n1,x,10\n1,y,11\n2,x,12\n')])
    expect((await c.query("SELECT row_layout FROM dv.datasets WHERE name = 'pairs'")).rows[0].row_layout).toBe(1)
    const head = await deltaOf('pairs', 'main')
    await c.query(`UPDATE dv_rows.${pg.escapeIdentifier(head)} SET v = 99 WHERE a = 1 AND b = 'y'`)
    expectOneLineError(await run(['verify', 'pairs']), /dataset "pairs": 1 row\(s\) do not match their stored hashes, e\.g\. \{"a":1,"b":"y"\}/)
    const { rows } = await c.query("SELECT ok, bad_rows, first_bad FROM dv.verify('pairs', 'main')")
    expect(rows[0]).toEqual({ ok: false, bad_rows: '1', first_bad: { a: 1, b: 'y' } })
  })

  it('unknown datasets and refs get the usual one-line errors', async () => {
    expectOneLineError(await run(['verify', 'nope']), /dataset "nope" does not exist/)
    expectOneLineError(await run(['verify', 'scores', 'no-such-ref']), /no-such-ref/)
  })
})

describe('verify a files dataset', () => {
  it('reads every file back; a flipped byte in a pack names the file, chunk and pack', async () => {
    const src = path.join(t.home, 'pics')
    await fs.mkdir(path.join(src, 'sub'), { recursive: true })
    await fs.writeFile(path.join(src, 'big.bin'), randomBytes(300_000))
    await fs.writeFile(path.join(src, 'sub', 'small.txt'), 'small\n')
    await fs.symlink('big.bin', path.join(src, 'link'))
    await run(['dataset', 'create', 'pics', '--files'])
    expect((await run(['add', 'pics', src])).exitCode).toBe(0)
    const ok = await run<Verified>(['verify', 'pics', '--json'])
    expect(ok.exitCode, ok.stderr).toBe(0)
    expect(ok.json).toMatchObject({ ok: true, rows: 3, files_checked: 2, bytes_checked: 300_006 })

    const { rows } = await c.query<{ pack_id: string }>(
      `SELECT ch.pack_id FROM dv.rows('pics') r JOIN dv_files.content_chunks cc ON cc.content_hash = r->>'content_hash'
       JOIN dv_files.chunks ch ON ch.hash = cc.chunk_hash WHERE r->>'path' = 'big.bin' ORDER BY cc.seq LIMIT 1`,
    )
    const pack = new FsStore(path.join(t.home, 'objects')).pathOf(packKey(rows[0].pack_id))
    const bytes = await fs.readFile(pack)
    bytes[20] ^= 0xff
    await fs.chmod(pack, 0o644)
    await fs.writeFile(pack, bytes)
    expectOneLineError(await run(['verify', 'pics']), /big\.bin of dataset "pics" at main.*chunk [0-9a-f]{64} in pack [0-9a-f]{64}.*corrupt/)
  })
})
