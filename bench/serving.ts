/**
 * What serving through the registry costs: pgml.predict against pgml_kit.predict (the route, the
 * sample of the prediction log, the shadow) on the same rows.
 *  1. set-based: one SELECT predicting N rows, per path (rows per second);
 *  2. per request: one round trip per prediction from Node, as an application makes them (median
 *     and p99 latency), for the plain call and the logged shadow.
 * Paths interleaved within each round, their order rotated (a machine whose load changes changes
 * every path alike); medians of the rounds. And the log's size per logged request.
 *
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres npx tsx bench/serving.ts
 *
 * Needs a server with pgml_compat (the docker/postgres image). Writes bench/results/serving.{json,md}.
 */
import { writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import pg from 'pg'
import { runtimeInstallSql } from '../src/runtime/assets.js'
import { RUNTIME_VERSION } from '../src/model/ir.js'

const ADMIN = process.env.PGML_KIT_BENCH_DATABASE_URL
if (!ADMIN) {
  process.stderr.write('set PGML_KIT_BENCH_DATABASE_URL to a server with pgml_compat (docker compose -f docker/compose.yaml up starts one)\n')
  process.exit(2)
}
const ROWS = Number(process.env.BENCH_ROWS ?? 20000)
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 1000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const quantile = (xs: readonly number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!

const admin = new pg.Client({ connectionString: ADMIN })
await admin.connect()
const server = (await admin.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v
await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench_serving')
await admin.query('CREATE DATABASE pgml_kit_bench_serving')
const url = new URL(ADMIN)
url.pathname = '/pgml_kit_bench_serving'
const db = new pg.Client({ connectionString: url.toString() })
await db.connect()

/** The settings of each path: route (none, canary 10%, shadow) and log sample (none, 10%, all). */
const PATHS = {
  'pgml.predict': { call: 'pgml.predict', route: null, sample: null },
  'pgml_kit.predict, no route, no log': { call: 'kit', route: null, sample: null },
  'pgml_kit.predict, canary 10%, no log': { call: 'kit', route: 'canary', sample: null },
  'pgml_kit.predict, log 10%': { call: 'kit', route: null, sample: 0.1 },
  'pgml_kit.predict, log 100%': { call: 'kit', route: null, sample: 1 },
  'pgml_kit.predict, shadow, log 10%': { call: 'kit', route: 'shadow', sample: 0.1 },
  'pgml_kit.predict, shadow, log 100%': { call: 'kit', route: 'shadow', sample: 1 },
} as const
type PathName = keyof typeof PATHS

async function configure(name: PathName): Promise<void> {
  const p = PATHS[name]
  await db.query('DELETE FROM pgml_kit.model_routes')
  await db.query('DELETE FROM pgml_kit.prediction_log_settings')
  if (p.route) await db.query(`INSERT INTO pgml_kit.model_routes (project, alias, mode, share) VALUES ('bench', 'challenger', $1, 0.1)`, [p.route])
  if (p.sample !== null) await db.query(`INSERT INTO pgml_kit.prediction_log_settings (project, sample, retention_days) VALUES ('bench', $1, 30)`, [p.sample])
}

const setBased: Record<string, number[]> = {}
const latency: Record<string, { median: number[]; p99: number[] }> = {}
let logBytesPerRow = 0
try {
  await db.query('CREATE EXTENSION pgml_compat CASCADE')
  const compat = (await db.query<{ v: string }>(`SELECT extversion AS v FROM pg_extension WHERE extname = 'pgml_compat'`)).rows[0]!.v
  for (let v = 1; v <= RUNTIME_VERSION; v++) await db.query(runtimeInstallSql(v))
  await db.query(`CREATE TABLE houses AS SELECT s::real AS size, r::real AS rooms, (1000 * s + 50 * r)::real AS price FROM generate_series(1, 40) AS s, generate_series(1, 4) AS r`)
  await db.query(`CREATE TABLE requests AS SELECT g AS id, (1 + g % 40)::real AS size, (1 + g % 4)::real AS rooms FROM generate_series(1, ${ROWS}) AS g`)
  for (let i = 0; i < 2; i++) await db.query(`SELECT * FROM pgml.train('bench', 'regression', 'houses', 'price', 'linear', automatic_deploy => true)`)
  const ids = (await db.query<{ id: string }>(`SELECT m.id FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE p.name = 'bench' ORDER BY m.id`)).rows.map((r) => r.id)
  await db.query(`SELECT * FROM pgml.deploy('bench', strategy => 'most_recent')`)
  await db.query(`INSERT INTO pgml_kit.model_versions (project, version, model_id) VALUES ('bench', 1, $1), ('bench', 2, $2)`, ids)
  await db.query(`INSERT INTO pgml_kit.model_aliases (project, alias, version) VALUES ('bench', 'champion', 2), ('bench', 'challenger', 1)`)
  // Warm the session: PL/Python, both models loaded.
  await db.query(`SELECT pgml.predict($1::bigint, ARRAY[1, 1]::real[]), pgml.predict($2::bigint, ARRAY[1, 1]::real[])`, ids)
  const names = Object.keys(PATHS) as PathName[]
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + round) % names.length]!
      await configure(name)
      const call = PATHS[name].call === 'pgml.predict' ? `pgml.predict('bench', ARRAY[size, rooms])` : `pgml_kit.predict('bench', ARRAY[size, rooms], id::text)`
      let started = performance.now()
      await db.query(`SELECT sum(${call}) FROM requests`)
      ;(setBased[name] ??= []).push(ROWS / ((performance.now() - started) / 1000))
      const times: number[] = []
      const one = PATHS[name].call === 'pgml.predict' ? `SELECT pgml.predict('bench', ARRAY[$1, $2]::real[]) AS p` : `SELECT pgml_kit.predict('bench', ARRAY[$1, $2]::real[], $3::text) AS p`
      for (let i = 0; i < REQUESTS; i++) {
        const params = PATHS[name].call === 'pgml.predict' ? [1 + (i % 40), 1 + (i % 4)] : [1 + (i % 40), 1 + (i % 4), String(i)]
        started = performance.now()
        await db.query(one, params)
        times.push(performance.now() - started)
      }
      const l = (latency[name] ??= { median: [], p99: [] })
      l.median.push(median(times))
      l.p99.push(quantile(times, 0.99))
    }
  }
  const { rows: size } = await db.query<{ bytes: string; n: string }>(`SELECT (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'pgml_kit.prediction_log'::regclass)::bigint AS bytes, (SELECT count(*) FROM pgml_kit.prediction_log) AS n`)
  logBytesPerRow = Number(size[0]!.bytes) / Math.max(1, Number(size[0]!.n))
  const date = new Date().toISOString().slice(0, 10)
  const machine = `${cpus().length} × ${cpus()[0]?.model.split(' ').slice(0, 2).join(' ') ?? '?'}, Node ${process.version}, PostgreSQL ${server} + pgml_compat ${compat}`
  const summary = Object.fromEntries(names.map((n) => [n, { rowsPerSecond: Math.round(median(setBased[n]!)), medianMs: Math.round(median(latency[n]!.median) * 1000) / 1000, p99Ms: Math.round(median(latency[n]!.p99) * 1000) / 1000 }]))
  await writeFile(new URL('./results/serving.json', import.meta.url), `${JSON.stringify({ date, machine, rows: ROWS, requests: REQUESTS, rounds: ROUNDS, summary, rounds_raw: { setBased, latency }, logBytesPerRow: Math.round(logBytesPerRow) }, null, 2)}\n`)
  const base = summary['pgml.predict']!
  const md = `# Serving through the registry (${date})

${machine}; load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}. \`PGML_KIT_BENCH_DATABASE_URL=... npx tsx bench/serving.ts\`

A linear regression (pgml_compat), champion and challenger. **Set-based**: one \`SELECT sum(...)\` over ${ROWS} rows (each row its own entity key). **Per request**: ${REQUESTS} sequential round trips from Node over a local connection, as an application predicts one entity at a time. ${ROUNDS} rounds, paths interleaved (order rotated per round); medians of the rounds.

| path | rows/s (set-based) | vs pgml.predict | per request, median ms | p99 ms |
|---|---:|---:|---:|---:|
${names.map((n) => { const s = summary[n]!; return `| ${n} | ${s.rowsPerSecond} | ${(s.rowsPerSecond / base.rowsPerSecond).toFixed(2)}× | ${s.medianMs} | ${s.p99Ms} |` }).join('\n')}

The prediction log takes about ${Math.round(logBytesPerRow)} bytes per logged request (two features, with its index; a shadow logs two rows per request).

What it means (from these numbers): per request, pgml_kit.predict adds ${(summary['pgml_kit.predict, no route, no log']!.medianMs - base.medianMs).toFixed(3)} ms without a log and ${(summary['pgml_kit.predict, log 100%']!.medianMs - base.medianMs).toFixed(3)} ms when every request is logged (a row insert, in a subtransaction so that a failed log insert never fails the prediction) — sample accordingly; a shadow adds the challenger's prediction to the requests it logs. Set-based, every row runs a PL/pgSQL function that calls the model through SPI: ${(base.rowsPerSecond / summary['pgml_kit.predict, no route, no log']!.rowsPerSecond).toFixed(1)}× slower than pgml.predict in the query — score tables in bulk with pgml.predict / predict_batch directly (a version by \`pgml.predict(pgml_kit.model_id('project@champion'), …)\`), and serve requests through pgml_kit.predict.
`
  await writeFile(new URL('./results/serving.md', import.meta.url), md)
  process.stdout.write(md)
} finally {
  await db.end()
  await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench_serving')
  await admin.end()
}
