/**
 * Lineage benchmark: walks of the lineage graph at production scale and beyond, against
 * a naive recursive CTE (no supporting indexes, no cycle handling) in the same run, and
 * OpenLineage ingest throughput.
 *
 *   node --import tsx bench/lineage.ts [--scale 1] [--quick] [--database-url URL]
 *
 * Scale 1: 1,000 datasets x 10 versions, 100,000 runs, 50,000 model versions, ~1M edges.
 * --quick is --scale 0.05 with fewer samples. Without a URL (or PGDV_BENCH_DATABASE_URL,
 * an admin URL) it starts an embedded PostgreSQL in a temporary folder.
 * Prints every figure beside its peer and bar, and writes bench/results/lineage.md.
 * Diagnostics: --only walks|ingest, --explain (plans of slow ingest statements),
 * --explain-walks (plans of one walk's statements, levels included).
 */
import { randomUUID } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { Pgdv } from '../src/api/client.js'
import { ingestOpenLineageFile } from '../src/api/lineage.js'
import { ensureEmbeddedRunning } from '../src/db/connect.js'
import { openDb } from '../src/db/db.js'
import { embeddedPaths, embeddedUrl, stopEmbedded } from '../src/db/embedded.js'
import { migrate } from '../src/db/migrate.js'

const args = process.argv.slice(2)
const flag = (name: string) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const quick = args.includes('--quick')
const scale = Number(flag('--scale') ?? (quick ? 0.05 : 1))
const samples = { walk: quick ? 100 : 500, impact: quick ? 50 : 200, graph: quick ? 20 : 100, naive: quick ? 5 : 10 }
const olEvents = quick ? 4_000 : 20_000
// --only walks|ingest runs one half; --explain logs the plans of slow ingest statements
// (auto_explain, nested) into the embedded server's log and prints them.
const only = flag('--only')
const explain = args.includes('--explain')

const D = Math.max(10, Math.round(1000 * scale)) // datasets
const K = 10 // versions per dataset
const R = Math.max(100, Math.round(100_000 * scale)) // runs
const P = Math.max(10, Math.round(2_000 * scale)) // pipeline runs (produce dataset versions)
const M = Math.max(10, Math.round(5_000 * scale)) // models, 10 versions each => 50,000 model versions
const MV = M * 10
const JOBS = Math.max(10, Math.round(1000 * scale))

/**
 * CPU seconds used so far by the embedded server's processes (postmaster and its
 * children, from /proc). The machine is shared, so wall time includes waiting for a
 * core; CPU time says what the work itself costs. undefined when not measurable.
 */
async function serverCpuSeconds(dataDir: string | undefined): Promise<number | undefined> {
  if (!dataDir || process.platform !== 'linux') return undefined
  try {
    const pm = Number((await fs.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
    let ticks = 0
    for (const d of await fs.readdir('/proc')) {
      if (!/^\d+$/.test(d)) continue
      const stat = await fs.readFile(`/proc/${d}/stat`, 'utf8').catch(() => '')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      // fields after the command: state ppid ... utime(12th) stime(13th) counting from state = 1
      if (Number(d) === pm || Number(f[1]) === pm) ticks += Number(f[11]) + Number(f[12])
    }
    return ticks / 100
  } catch {
    return undefined
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
const f = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2))
const rnd = (n: number) => 1 + Math.floor(Math.random() * n)

async function timeIt(c: pg.Client, sql: string, params: unknown[]): Promise<{ ms: number; rows: number; timedOut: boolean }> {
  const t = performance.now()
  try {
    const r = await c.query(sql, params)
    return { ms: performance.now() - t, rows: Number(r.rows[0]?.n ?? r.rowCount), timedOut: false }
  } catch (e) {
    if ((e as { code?: string }).code === '57014') return { ms: performance.now() - t, rows: 0, timedOut: true }
    throw e
  }
}

async function sample(c: pg.Client, n: number, sql: string, start: () => unknown[]) {
  const times: number[] = []
  const rows: number[] = []
  let timeouts = 0
  for (let i = 0; i < n; i++) {
    const r = await timeIt(c, sql, start())
    times.push(r.ms)
    rows.push(r.rows)
    if (r.timedOut) timeouts++
  }
  return { p50: pct(times, 50), p99: pct(times, 99), rows: rows.reduce((a, b) => a + b, 0) / n, timeouts, n }
}

async function main() {
  const root = fileURLToPath(new URL('..', import.meta.url))
  let adminUrl = flag('--database-url') ?? process.env.PGDV_BENCH_DATABASE_URL
  let stop = async () => {}
  let serverLog: string | undefined
  let dataDir: string | undefined
  if (!adminUrl) {
    const base = await fs.mkdtemp(path.join(os.tmpdir(), 'pgdv-bench-'))
    await fs.chmod(base, 0o755)
    const home = path.join(base, 'home')
    const settings = await ensureEmbeddedRunning(home)
    adminUrl = embeddedUrl(settings, 'postgres')
    serverLog = embeddedPaths(home).log
    dataDir = embeddedPaths(home).data
    stop = async () => {
      await stopEmbedded(home)
      await fs.rm(base, { recursive: true, force: true })
    }
  }
  const dbName = `pgdv_bench_lineage_${process.pid}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(dbName)}`)
  const u = new URL(adminUrl)
  u.pathname = `/${dbName}`
  const url = u.toString()
  const db = await openDb({ home: os.tmpdir(), databaseUrl: url, env: {} })
  await migrate(db)
  await db.close()

  const c = new pg.Client({ connectionString: url })
  await c.connect()
  const pgVersion = (await c.query('SHOW server_version')).rows[0].server_version as string
  const q = async (label: string, sql: string, params: unknown[] = []) => {
    const t = performance.now()
    await c.query(sql, params)
    console.log(`  ${label.padEnd(44)} ${((performance.now() - t) / 1000).toFixed(1)} s`)
  }

  const loadAtStart = os.loadavg()
  console.log(`generating: ${D} datasets x ${K} versions, ${R} runs (${P} pipeline), ${MV} model versions, ${JOBS} jobs`)
  const tLoad = performance.now()
  // Bulk load as the owner. Audit triggers are per row and not what is measured here.
  await c.query('ALTER TABLE dv.versions DISABLE TRIGGER audit; ALTER TABLE dv.model_versions DISABLE TRIGGER audit; ALTER TABLE dv.datasets DISABLE TRIGGER audit; ALTER TABLE dv.refs DISABLE TRIGGER audit')
  await q('datasets', `INSERT INTO dv.datasets (id, name) OVERRIDING SYSTEM VALUE SELECT d, 'ds' || d FROM generate_series(1, $1) d`, [D])
  // Version id (d-1)*K + k; k = 1 is the root. Layer of a dataset: d % 4 (0 raw .. 3 features).
  await q(
    'dataset versions (derived_from edges by trigger)',
    `INSERT INTO dv.versions (id, dataset_id, parent_id, depth, status, content_hash, committed_at) OVERRIDING SYSTEM VALUE
     SELECT (d - 1) * $2 + k, d, CASE WHEN k > 1 THEN (d - 1) * $2 + k - 1 END, k - 1, 'committed', md5(d || ':' || k) || md5(k || ':' || d), now()
     FROM generate_series(1, $1) d, generate_series(1, $2) k`,
    [D, K],
  )
  await q('version parents', `INSERT INTO dv.version_parents (version_id, parent_id, ordinal) SELECT id, parent_id, 1 FROM dv.versions WHERE parent_id IS NOT NULL`)
  await q('refs', `INSERT INTO dv.refs (dataset_id, name, kind, version_id) SELECT d, 'main', 'branch', d * $2 FROM generate_series(1, $1) d`, [D, K])
  await c.query(`SELECT setval(pg_get_serial_sequence('dv.datasets', 'id'), $1)`, [D])
  await c.query(`SELECT setval(pg_get_serial_sequence('dv.versions', 'id'), $1)`, [D * K])
  await q('experiments, jobs', `INSERT INTO dv.experiments (name) SELECT 'exp' || e FROM generate_series(1, 100) e;
     INSERT INTO dv.jobs (namespace, name) SELECT 'bench', 'job' || j FROM generate_series(1, ${JOBS}) j`)
  await q(
    'runs (job -> run edges by trigger)',
    `INSERT INTO dv.runs (id, experiment_id, job_id, name, status, params, started_at, finished_at) OVERRIDING SYSTEM VALUE
     SELECT r, 1 + r % 100, 1 + r % $2, CASE WHEN r <= $3 THEN 'pipeline' ELSE 'train' END, 'succeeded', jsonb_build_object('lr', (r % 7) / 100.0), now(), now()
     FROM generate_series(1, $1) r`,
    [R, JOBS, P],
  )
  await c.query(`SELECT setval(pg_get_serial_sequence('dv.runs', 'id'), $1)`, [R])
  // Pipeline runs read 3 versions of lower-layer datasets and produce one version of a
  // higher-layer dataset; training runs read 8 versions (biased to recent ones).
  await q(
    'run inputs (used_by edges by trigger)',
    `INSERT INTO dv.run_datasets (run_id, direction, version_id, dataset_id, dataset_name, ref, content_hash)
     SELECT DISTINCT ON (x.r, x.vid) x.r, 'input', x.vid, v.dataset_id, 'ds' || v.dataset_id, 'v' || x.vid, v.content_hash
     FROM (
       SELECT r, ((((r * 7919 + i * 104729) % $1) / 4) * 4) * $2 + 1 + (r * 31 + i) % $2 AS vid
       FROM generate_series(1, $3) r, generate_series(1, 3) i
       UNION ALL
       SELECT r, ((r * 7919 + i * 104729) % $1) * $2 + $2 - floor(power(random(), 2) * $2)::int
       FROM generate_series($3 + 1, $4) r, generate_series(1, 8) i
     ) x JOIN dv.versions v ON v.id = x.vid
     ORDER BY x.r, x.vid`,
    [D, K, P, R],
  )
  await q(
    'run outputs (produced edges by trigger)',
    `INSERT INTO dv.run_datasets (run_id, direction, version_id, dataset_id, dataset_name, ref, content_hash)
     SELECT DISTINCT ON (v.id) r, 'output', v.id, v.dataset_id, 'ds' || v.dataset_id, 'v' || v.id, v.content_hash
     FROM generate_series(1, $1) r
     JOIN dv.versions v ON v.id = ((((r * 104723) % $2) / 4) * 4 + 1 + r % 3) * $3 + 2 + r % ($3 - 1)
     ORDER BY v.id, r`,
    [P, D, K],
  )
  await q('models', `INSERT INTO dv.models (id, name) OVERRIDING SYSTEM VALUE SELECT m, 'model' || m FROM generate_series(1, $1) m`, [M])
  await c.query(`SELECT setval(pg_get_serial_sequence('dv.models', 'id'), $1)`, [M])
  await q(
    'model versions (produced edges by trigger)',
    `INSERT INTO dv.model_versions (id, model_id, version, run_id, artifact_hash, artifact_uri, metrics) OVERRIDING SYSTEM VALUE
     SELECT j, 1 + (j - 1) / 10, 1 + (j - 1) % 10, $2 + 1 + ((j - 1) * 2) % ($3 - $2), md5(j::text) || md5(j::text), 's3://models/' || j, jsonb_build_object('acc', 0.5 + (j % 50) / 100.0)
     FROM generate_series(1, $1) j`,
    [MV, P, R],
  )
  await c.query(`SELECT setval(pg_get_serial_sequence('dv.model_versions', 'id'), $1)`, [MV])
  // Fine-tuning: the run of version n of a model starts from version n-1.
  await q(
    'fine-tune edges model_version -> run',
    `SELECT dv_internal.lineage_link('model_version', array_agg(p.id), 'run', array_agg(mv.run_id), 'used_by')
     FROM dv.model_versions mv JOIN dv.model_versions p ON p.model_id = mv.model_id AND p.version = mv.version - 1`,
  )
  await q('VACUUM ANALYZE', 'VACUUM ANALYZE')
  const loadS = (performance.now() - tLoad) / 1000
  const counts = (
    await c.query(`SELECT (SELECT count(*) FROM dv.lineage_edges) AS edges, (SELECT count(*) FROM dv.lineage_nodes) AS nodes,
                          (SELECT pg_size_pretty(pg_total_relation_size('dv.lineage_edges'))) AS edge_size`)
  ).rows[0] as { edges: string; nodes: string; edge_size: string }
  console.log(`loaded ${counts.nodes} nodes, ${counts.edges} edges (${counts.edge_size} with indexes) in ${loadS.toFixed(0)} s\n`)

  // The peer: the same edges in a table with no indexes, walked by a naive recursive CTE
  // (UNION ALL: every path, no visited set, no cycle check), bounded by depth and a timeout.
  await c.query('CREATE TABLE public.naive_edges AS SELECT src, dst FROM dv.lineage_edges')
  await c.query('ANALYZE public.naive_edges')
  const naiveUp = `WITH RECURSIVE w(node, depth) AS (SELECT n.id, 0 FROM dv.lineage_nodes n WHERE n.kind = $1 AND n.ref_id = $2
                     UNION ALL SELECT e.src, w.depth + 1 FROM w JOIN public.naive_edges e ON e.dst = w.node WHERE w.depth < $3)
                   SELECT count(*) AS n FROM w`
  const naiveDown = naiveUp.replace('SELECT e.src', 'SELECT e.dst').replace('e.dst = w.node', 'e.src = w.node')
  const ours = (fn: string) => `SELECT count(*) AS n FROM dv.${fn}($1, $2::bigint, $3)`
  const mvStart = () => ['model_version', rnd(MV), 10]
  const dvStart = () => ['dataset_version', rnd(D * K), 10]

  const rows: { query: string; ours: string; peer: string; ratio: string; bar: string; ok: string; detail: string }[] = []
  const line = (r: (typeof rows)[number]) => console.log(`${r.query.padEnd(44)} ${r.ours.padEnd(26)} ${r.peer.padEnd(34)} ${r.ratio.padEnd(8)} ${r.bar.padEnd(22)} ${r.ok}  ${r.detail}`)
  console.log(`${'query'.padEnd(44)} ${'pgdv (p50 / p99)'.padEnd(26)} ${'naive CTE, no indexes (p50 / p99)'.padEnd(34)} ${'ratio'.padEnd(8)} ${'bar'.padEnd(22)} ok`)

  if (args.includes('--explain-walks')) {
    // The plans of one walk's statements, levels included (auto_explain, nested).
    await c.query("LOAD 'auto_explain'")
    await c.query("SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on; SET client_min_messages = log")
    c.on('notice', (n) => console.log(n.message))
    for (let i = 0; i < 7; i++) await c.query(ours('lineage_downstream'), mvStart()) // past the custom-plan phase
    console.log('---- the 8th call ----')
    await c.query(ours('lineage_downstream'), mvStart())
    await c.query("SET client_min_messages = notice; SET auto_explain.log_min_duration = -1")
    c.removeAllListeners('notice')
  }
  if (only !== 'ingest') {
  await c.query("SET statement_timeout = '15s'")
  for (const [label, fn, naive, start] of [
    ['upstream of a model version, depth 10', 'lineage_upstream', naiveUp, mvStart],
    ['downstream of a model version, depth 10', 'lineage_downstream', naiveDown, mvStart],
    ['upstream of a dataset version, depth 10', 'lineage_upstream', naiveUp, dvStart],
    ['downstream of a dataset version, depth 10', 'lineage_downstream', naiveDown, dvStart],
  ] as const) {
    await sample(c, 10, ours(fn), start) // warm-up
    const a = await sample(c, samples.walk, ours(fn), start)
    const b = await sample(c, samples.naive, naive, start)
    const bar = label.includes('model version') ? 'p50 ≤ 10 ms, p99 ≤ 50 ms' : '—'
    const ok = label.includes('model version') ? (a.p50 <= 10 && a.p99 <= 50 ? 'yes' : 'NO') : ''
    const r = {
      query: label,
      ours: `${f(a.p50)} / ${f(a.p99)} ms`,
      peer: `${f(b.p50)} / ${f(b.p99)} ms${b.timeouts ? ` (${b.timeouts}/${b.n} timed out at 15 s)` : ''}`,
      ratio: `${(b.p50 / a.p50).toFixed(0)}x`,
      bar,
      ok,
      detail: `${a.n} starts; avg ${a.rows.toFixed(0)} nodes (naive: ${b.rows.toFixed(0)} path rows, ${b.n} starts)`,
    }
    rows.push(r)
    line(r)
  }

  // Impact of a dataset version: every run and model version depending on it. The naive
  // CTE gets depth 12 (it enumerates paths; deeper does not finish) and 30 s.
  {
    const start = () => {
      const id = rnd(D * K)
      return [`ds${1 + Math.floor((id - 1) / K)}`, String(id)]
    }
    const oursSql = 'SELECT count(*) AS n FROM dv.lineage_impact($1, $2)'
    const naiveSql = `WITH RECURSIVE w(node, depth) AS (SELECT n.id, 0 FROM dv.lineage_nodes n WHERE n.kind = 'dataset_version' AND n.ref_id = $2::bigint AND $1 <> ''
                        UNION ALL SELECT e.dst, w.depth + 1 FROM w JOIN public.naive_edges e ON e.src = w.node WHERE w.depth < 12)
                      SELECT count(DISTINCT w.node) AS n FROM w JOIN dv.lineage_nodes n ON n.id = w.node WHERE n.kind IN ('run', 'model_version')`
    await sample(c, 5, oursSql, start)
    const a = await sample(c, samples.impact, oursSql, start)
    const b = await sample(c, samples.naive, naiveSql, start)
    const r = {
      query: 'impact of a dataset version',
      ours: `${f(a.p50)} / ${f(a.p99)} ms`,
      peer: `${f(b.p50)} / ${f(b.p99)} ms${b.timeouts ? ` (${b.timeouts}/${b.n} timed out at 15 s)` : ''}`,
      ratio: `${(b.p50 / a.p50).toFixed(0)}x`,
      bar: 'p50 ≤ 100 ms',
      ok: a.p50 <= 100 ? 'yes' : 'NO',
      detail: `${a.n} starts; avg ${a.rows.toFixed(0)} runs + model versions (unbounded depth)`,
    }
    rows.push(r)
    line(r)
  }

  // Graph of one model (all its versions) as jsonb, depth 3.
  {
    const sql = 'SELECT jsonb_array_length(g -> $3) AS n FROM dv.lineage_graph($1, $2::bigint, 3) g'
    const start = () => ['model', rnd(M), 'nodes']
    await sample(c, 3, sql, start)
    const a = await sample(c, samples.graph, sql, start)
    const r = {
      query: 'graph of one model (10 versions), depth 3, jsonb',
      ours: `${f(a.p50)} / ${f(a.p99)} ms`,
      peer: '—',
      ratio: '',
      bar: 'p50 ≤ 200 ms, ≤ 1,000 nodes',
      ok: a.p50 <= 200 && a.rows <= 1000 ? 'yes' : 'NO',
      detail: `${a.n} models; avg ${a.rows.toFixed(0)} nodes`,
    }
    rows.push(r)
    line(r)
  }
  }
  await c.query('RESET statement_timeout')

  if (only !== 'walks') {
  // OpenLineage ingest through the CLI's path: a JSONL file streamed in batches of 1,000.
  {
    const file = path.join(os.tmpdir(), `pgdv-bench-ol-${process.pid}.jsonl`)
    const out = createWriteStream(file)
    for (let i = 0; i < olEvents / 2; i++) {
      const runId = randomUUID()
      const d = rnd(D)
      const base = {
        producer: 'https://github.com/OpenLineage/OpenLineage/tree/1.0.0/integration/airflow',
        schemaURL: 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent',
        run: { runId, facets: { nominalTime: { nominalStartTime: '2026-01-01T00:00:00Z' } } },
        job: { namespace: 'airflow://bench', name: `dag${i % 200}.task${i % 7}` },
        inputs: [
          { namespace: 'pgdv', name: `ds${d}@v${(d - 1) * K + rnd(K)}` },
          { namespace: 's3://raw', name: `images/part-${i % 500}` },
        ],
        outputs: [{ namespace: 'warehouse', name: `clean.table_${i % 300}` }],
      }
      out.write(`${JSON.stringify({ eventType: 'START', eventTime: new Date(1767225600000 + i * 1000).toISOString(), ...base })}\n`)
      out.write(`${JSON.stringify({ eventType: 'COMPLETE', eventTime: new Date(1767225600000 + i * 1000 + 500).toISOString(), ...base })}\n`)
    }
    await new Promise<void>((resolve) => out.end(resolve))
    if (explain) {
      await c.query(`ALTER DATABASE ${pg.escapeIdentifier(dbName)} SET session_preload_libraries = 'auto_explain'`)
      await c.query(`ALTER DATABASE ${pg.escapeIdentifier(dbName)} SET auto_explain.log_min_duration = 5`)
      await c.query(`ALTER DATABASE ${pg.escapeIdentifier(dbName)} SET auto_explain.log_nested_statements = on`)
    }
    const pgdv = await Pgdv.open({ databaseUrl: url, env: {}, home: os.tmpdir() })
    let t = performance.now()
    const cpu0 = { server: await serverCpuSeconds(dataDir), node: process.cpuUsage() }
    const first = await ingestOpenLineageFile(pgdv, file)
    const rate = first.received / ((performance.now() - t) / 1000)
    const serverCpu = (await serverCpuSeconds(dataDir)) ?? Number.NaN
    const nodeCpu = process.cpuUsage(cpu0.node)
    const cpuSeconds = serverCpu - (cpu0.server ?? Number.NaN) + (nodeCpu.user + nodeCpu.system) / 1e6
    const cpuRate = first.received / cpuSeconds
    t = performance.now()
    const again = await ingestOpenLineageFile(pgdv, file)
    const rateDup = again.received / ((performance.now() - t) / 1000)
    await pgdv.close()
    await fs.rm(file, { force: true })
    if (explain && serverLog) {
      const text = await fs.readFile(serverLog, 'utf8')
      console.log(text.split('\n').filter((l) => /duration: |->|Query Text/.test(l)).slice(-400).join('\n'))
    }
    const r = {
      query: 'OpenLineage ingest (JSONL, batches of 1,000)',
      ours: `${Math.round(rate).toLocaleString('en-US')} events/s`,
      peer: `re-ingest (all duplicates): ${Math.round(rateDup).toLocaleString('en-US')} events/s`,
      ratio: '',
      bar: '≥ 5,000 events/s',
      ok: rate >= 5000 ? 'yes' : 'NO',
      detail: `${first.received} events (${first.ingested} new), each with a pgdv input, an external input and an external output${Number.isFinite(cpuRate) ? `; CPU: server ${(serverCpu - (cpu0.server ?? 0)).toFixed(1)} s + client ${((nodeCpu.user + nodeCpu.system) / 1e6).toFixed(1)} s = ${Math.round(cpuRate).toLocaleString('en-US')} events per CPU-second (server alone: ${Math.round(first.received / (serverCpu - (cpu0.server ?? 0))).toLocaleString('en-US')}/s)` : ''}`,
    }
    rows.push(r)
    line(r)
  }

  }
  await c.end()
  await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(dbName)} WITH (FORCE)`)
  await admin.end()
  await stop()

  const cpus = os.cpus()
  const report = [
    '# Lineage benchmark',
    '',
    `- date: ${new Date().toISOString()}`,
    `- command: \`node --import tsx bench/lineage.ts${args.length ? ` ${args.join(' ')}` : ''}\``,
    `- machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.platform()} ${os.release()}; load average (1, 5, 15 min) at the start ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}, at the end ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
    `- PostgreSQL ${pgVersion}${flag('--database-url') || process.env.PGDV_BENCH_DATABASE_URL ? '' : ' (embedded, default settings)'}; Node ${process.version}`,
    '- note: the machine was shared with other helpers running tests and benchmarks at the same time (2 cores for 4 sessions); treat figures as ±20% or worse.',
    '',
    `Graph: ${D} datasets x ${K} versions, ${R.toLocaleString('en-US')} runs (${P} pipeline runs producing dataset versions, the rest training runs reading 8 versions each), ${MV.toLocaleString('en-US')} model versions (${M} models x 10, each version fine-tuned from the previous), ${JOBS} jobs: **${Number(counts.nodes).toLocaleString('en-US')} nodes, ${Number(counts.edges).toLocaleString('en-US')} edges** (${counts.edge_size} with indexes), loaded in ${loadS.toFixed(0)} s through the real tables and triggers.`,
    '',
    'pgdv: `dv.lineage_*` (breadth first, one set-based query per level, visited set, indexes on (src) and (dst)). Peer: a naive `WITH RECURSIVE ... UNION ALL` over a copy of the edge table with no indexes and no cycle handling, bounded by the same depth (12 for impact) and a 15 s statement timeout. Latencies are client round trips over random start nodes.',
    '',
    '| query | pgdv p50 / p99 | naive CTE p50 / p99 | ratio (p50) | bar | meets bar | detail |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.query} | ${r.ours} | ${r.peer} | ${r.ratio} | ${r.bar} | ${r.ok} | ${r.detail} |`),
    '',
  ].join('\n')
  if (!quick || args.includes('--write')) {
    await fs.mkdir(path.join(root, 'bench/results'), { recursive: true })
    await fs.writeFile(path.join(root, 'bench/results/lineage.md'), report)
    console.log('\nwrote bench/results/lineage.md')
  } else {
    console.log('\n(--quick: report not written; add --write to write it)')
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
