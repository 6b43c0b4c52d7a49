/**
 * `npm run bench`: runs the benchmarks in bench/, one after the other, each in its own
 * process (as `node --import tsx bench/<name>.ts`), passing the remaining arguments on.
 *
 *   npm run bench                      # every benchmark, full size
 *   npm run bench -- rows --quick      # bench/rows.ts --quick
 *   npm run bench -- chunking --mib 64
 *
 * Each benchmark prints its report and writes it to bench/results/<name>.md.
 */
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const BENCHES = ['chunking', 'rows']

const here = path.dirname(fileURLToPath(import.meta.url))
const argv = process.argv.slice(2)
const chosen = argv.filter((a) => BENCHES.includes(a))
const rest = argv.filter((a) => !BENCHES.includes(a))
for (const name of chosen.length ? chosen : BENCHES) {
  console.log(`\n=== bench/${name}.ts ${rest.join(' ')}\n`)
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, `${name}.ts`), ...rest], { stdio: 'inherit' })
  if (r.status !== 0) {
    console.error(`bench/${name}.ts failed (exit ${r.status ?? r.signal})`)
    process.exitCode = 1
  }
}
