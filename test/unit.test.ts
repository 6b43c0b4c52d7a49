import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { checkServerVersion, chooseConnection, redactUrl, validateDatabaseUrl } from '../src/db/connect.js'
import { resolveHome } from '../src/db/home.js'
import { PgdvError, toPgdvError } from '../src/lib/errors.js'
import { parseKeyColumns } from '../src/lib/parse.js'

describe('chooseConnection', () => {
  const cfgUrl = { format: 1 as const, database: { mode: 'url' as const, url: 'postgresql://cfg/db' }, store: { url: 'objects' } }
  it('prefers the flag, then PGDV_DATABASE_URL, DATABASE_URL, PG*, config, embedded', () => {
    expect(chooseConnection('postgresql://flag/db', { PGDV_DATABASE_URL: 'postgresql://a/b' }, cfgUrl)).toEqual({ source: 'flag', url: 'postgresql://flag/db' })
    expect(chooseConnection(undefined, { PGDV_DATABASE_URL: 'postgresql://a/b', DATABASE_URL: 'postgresql://c/d' }, cfgUrl).source).toBe('PGDV_DATABASE_URL')
    expect(chooseConnection(undefined, { DATABASE_URL: 'postgresql://c/d', PGHOST: 'h' }, cfgUrl).source).toBe('DATABASE_URL')
    expect(chooseConnection(undefined, { PGHOST: 'h' }, cfgUrl).source).toBe('PG*')
    expect(chooseConnection(undefined, {}, cfgUrl)).toEqual({ source: 'config', url: 'postgresql://cfg/db' })
    expect(chooseConnection(undefined, {}, undefined).source).toBe('embedded')
    expect(chooseConnection(undefined, {}, { ...cfgUrl, database: { mode: 'env' } }).source).toBe('embedded')
  })
})

describe('URLs and versions', () => {
  it('validates URLs with messages that name the source', () => {
    expect(() => validateDatabaseUrl('postgresql://u:p@h:5432/db', 'flag')).not.toThrow()
    expect(() => validateDatabaseUrl('h:5432', 'PGDV_DATABASE_URL')).toThrow(/PGDV_DATABASE_URL/)
  })
  it('redacts passwords', () => {
    expect(redactUrl('postgresql://u:hunter2@h/db')).toBe('postgresql://u:****@h/db')
    expect(redactUrl('not a url://u:hunter2@x')).not.toMatch(/hunter2/)
  })
  it('refuses PostgreSQL older than 14', () => {
    expect(() => checkServerVersion(130011, '13.11', 'db.example:5432')).toThrow(/PostgreSQL 13.11 at db.example:5432 is too old: pgdv needs PostgreSQL 14 or newer/)
    expect(() => checkServerVersion(140000, '14.0', 'x')).not.toThrow()
  })
})

describe('flag parsing and errors', () => {
  it('resolves the home folder from flag, env, default', () => {
    expect(resolveHome('/a', { PGDV_HOME: '/b' }, '/cwd')).toBe('/a')
    expect(resolveHome(undefined, { PGDV_HOME: 'rel' }, '/cwd')).toBe(path.resolve('/cwd/rel'))
    expect(resolveHome(undefined, {}, '/cwd')).toBe('/cwd/.pgdv')
  })
  it('parses key columns', () => {
    expect(parseKeyColumns(undefined)).toBeUndefined()
    expect(parseKeyColumns('a, b')).toEqual(['a', 'b'])
    expect(() => parseKeyColumns('a,')).toThrow(PgdvError)
  })
  it('keeps PostgreSQL hints and maps SQLSTATEs', () => {
    const e = toPgdvError({ severity: 'ERROR', code: '42704', message: 'dataset "x" does not exist', hint: 'List datasets' })
    expect(e.kind).toBe('not_found')
    expect(e.oneLine()).toBe('dataset "x" does not exist. List datasets')
  })
})
