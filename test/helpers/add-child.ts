// A child process for the crash test: one `add` through the library, killed by the
// test at random moments. Prints "ready" once connected, then the result as JSON.
import { Pgdv } from '../../src/api/client.js'
import { addFiles } from '../../src/api/files.js'

const [home, url, dataset, src, packSize] = process.argv.slice(2)
const pgdv = await Pgdv.open({ home, databaseUrl: url, env: {} })
try {
  process.stdout.write('ready\n')
  const r = await addFiles(pgdv, { dataset, paths: [src], packTargetSize: packSize ? Number(packSize) : 512 * 1024, message: 'crash test' })
  process.stdout.write(JSON.stringify(r) + '\n')
} finally {
  await pgdv.close()
}
