import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cli } from './helpers/cli.js'
import { freshDatabase, type TestDatabase } from './helpers/db.js'

let t: TestDatabase
beforeAll(async () => {
  t = await freshDatabase()
})
afterAll(async () => {
  await t?.drop()
})

describe('dataset commands', () => {
  it('creates, lists, shows and drops a dataset with --json', async () => {
    const created = await cli<{ name: string; key_columns: string[] }>(['dataset', 'create', 'flights', '--key', 'flight_id', '--json'], t)
    expect(created.exitCode).toBe(0)
    expect(created.json?.name).toBe('flights')
    const list = await cli<{ name: string }[]>(['dataset', 'list', '--json'], t)
    expect(list.json?.map((d) => d.name)).toContain('flights')
  })

  it('refuses a duplicate name with one line and exit 1', async () => {
    const r = await cli(['dataset', 'create', 'flights'], t)
    expect(r.exitCode).toBe(1)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/dataset "flights" already exists/)
  })
})
