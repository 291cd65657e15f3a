/**
 * Scoring a table and writing the predictions back: in the database (one statement:
 * pgml.predict_batch over the rows, then UPDATE) against a Python service in the same container
 * that pulls the rows with COPY, predicts with the same estimator (scikit-learn / xgboost, fitted on
 * the same data), and writes back with COPY into a temporary table and one UPDATE — the path
 * in-database inference exists to replace. Also the write-back alone (the same UPDATE with a
 * constant, no prediction), which both paths pay: it bounds the ratio any in-database scoring can
 * reach. Interleaved rounds; ratios per round.
 *
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://postgres:...@127.0.0.1:5432/postgres \
 *   BENCH_CONTAINER=<the container's name> npx tsx bench/predict-service.ts
 *
 * Writes bench/results/predict-service.{json,md}.
 */
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { promisify } from 'node:util'
import pg from 'pg'

const ADMIN = process.env.PGML_KIT_BENCH_DATABASE_URL
const CONTAINER = process.env.BENCH_CONTAINER
const ROWS = Number(process.env.BENCH_ROWS ?? 100_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
if (!ADMIN || !CONTAINER) {
  process.stderr.write('set PGML_KIT_BENCH_DATABASE_URL (a server with pgml_compat) and BENCH_CONTAINER (the Docker container it runs in)\n')
  process.exit(2)
}
const run = promisify(execFile)
const DB = 'pgml_kit_bench_service'

/** The service: psql for COPY out and in (the container has no Python driver), numpy and the estimator in between. */
const SERVICE = (algorithm: 'linear' | 'xgboost') => `
import io, json, subprocess, sys, time
import numpy as np
def psql(sql, data=None):
    r = subprocess.run(['psql', '-U', 'postgres', '-d', '${DB}', '-v', 'ON_ERROR_STOP=1', '-Atq', '-c', sql] if data is None else
                       ['psql', '-U', 'postgres', '-d', '${DB}', '-v', 'ON_ERROR_STOP=1', '-Atq', '-f', '-'], input=data, capture_output=True, check=True)
    return r.stdout
# The estimator, fitted once on the same data before the timing (the service has its model loaded).
train = np.loadtxt(io.BytesIO(psql("COPY (SELECT a, b, y FROM items ORDER BY id) TO STDOUT")), dtype=np.float64)
${algorithm === 'linear' ? 'from sklearn.linear_model import LinearRegression as E' : 'from xgboost import XGBRegressor as E'}
model = E().fit(train[:, :2], train[:, 2])
started = time.perf_counter()
rows = np.loadtxt(io.BytesIO(psql("COPY (SELECT id, a, b FROM items) TO STDOUT")), dtype=np.float64)
predictions = model.predict(rows[:, 1:3].astype(np.float32))
body = '\\n'.join('%d\\t%r' % (int(i), float(p)) for i, p in zip(rows[:, 0], predictions))
psql(None, data=("CREATE TEMP TABLE scored (id bigint, p real);\\nCOPY scored FROM STDIN;\\n" + body + "\\n\\\\.\\n"
                 "UPDATE items SET y_hat = scored.p FROM scored WHERE items.id = scored.id;\\n").encode())
print(json.dumps({'seconds': time.perf_counter() - started}))
`

const admin = new pg.Client({ connectionString: ADMIN })
await admin.connect()
await admin.query(`DROP DATABASE IF EXISTS ${DB}`)
await admin.query(`CREATE DATABASE ${DB}`)
const url = new URL(ADMIN)
url.pathname = `/${DB}`
const db = new pg.Client({ connectionString: url.toString() })
await db.connect()
type Round = { inDatabase: number; service: number; writeBackAlone: number }
const results: Record<'linear' | 'xgboost', Round[]> = { linear: [], xgboost: [] }
const time = async (fn: () => Promise<unknown>) => { const t = performance.now(); await fn(); return (performance.now() - t) / 1000 }
try {
  await db.query('CREATE EXTENSION pgml_compat CASCADE')
  await db.query(`CREATE TABLE items AS SELECT i::bigint AS id, random() AS a, random() AS b, NULL::float8 AS y, NULL::real AS y_hat FROM generate_series(1, ${ROWS}) AS i;
    UPDATE items SET y = 3 * a - 2 * b + 1 + random() / 100; ALTER TABLE items ADD PRIMARY KEY (id);
    CREATE VIEW items_training AS SELECT a, b, y FROM items`)
  await db.query('VACUUM ANALYZE items')
  await db.query(`SELECT * FROM pgml.train('service_linear', 'regression', 'items_training', 'y', 'linear')`)
  await db.query(`SELECT * FROM pgml.train('service_xgboost', 'regression', 'items_training', 'y', 'xgboost')`)
  for (const algorithm of ['linear', 'xgboost'] as const) {
    const project = `service_${algorithm}`
    await db.query(`SELECT count(*) FROM pgml.predict_batch($1::text, (SELECT array_agg(ARRAY[a, b] ORDER BY id)::real[] FROM items WHERE id <= 10))`, [project])
    const sides = {
      inDatabase: () => time(() => db.query(`UPDATE items SET y_hat = s.p FROM (
          SELECT unnest(agg.ids) AS id, pgml.predict_batch($1::text, agg.x) AS p
          FROM (SELECT array_agg(id ORDER BY id) AS ids, array_agg(ARRAY[a, b] ORDER BY id)::real[] AS x FROM items) AS agg
        ) AS s WHERE items.id = s.id`, [project])),
      service: async () => {
        const { stdout } = await run('docker', ['exec', '-u', 'postgres', CONTAINER, 'python3', '-c', SERVICE(algorithm)], { maxBuffer: 64 << 20 })
        return (JSON.parse(stdout.trim().split('\n').at(-1)!) as { seconds: number }).seconds
      },
      writeBackAlone: () => time(() => db.query(`UPDATE items SET y_hat = s.p FROM (SELECT id, 0.5::real AS p FROM items) AS s WHERE items.id = s.id`)),
    }
    for (let round = 0; round < ROUNDS; round++) {
      const order = (['inDatabase', 'service', 'writeBackAlone'] as const).map((_, k, all) => all[(k + round) % all.length]!)
      const r: Partial<Round> = {}
      for (const side of order) r[side] = await sides[side]()
      results[algorithm].push(r as Round)
      process.stderr.write(`${algorithm} round ${round}: ${JSON.stringify(r)}\n`)
    }
  }
} finally {
  await db.end()
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
  await admin.end()
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const summary = (algorithm: 'linear' | 'xgboost') => {
  const rs = results[algorithm]
  return {
    inDatabaseSeconds: median(rs.map((r) => r.inDatabase)), serviceSeconds: median(rs.map((r) => r.service)), writeBackAloneSeconds: median(rs.map((r) => r.writeBackAlone)),
    serviceOverInDatabase: median(rs.map((r) => r.service / r.inDatabase)),
    /** The most any in-database path that writes back could reach: the service's time over the write-back alone. */
    bound: median(rs.map((r) => r.service / r.writeBackAlone)),
  }
}
const summaries = { linear: summary('linear'), xgboost: summary('xgboost') }
const date = new Date().toISOString().slice(0, 10)
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`
await writeFile(new URL('./results/predict-service.json', import.meta.url), `${JSON.stringify({ date, machine, rows: ROWS, rounds: results, summaries }, null, 2)}\n`)
const f = (x: number) => x.toFixed(2)
const md = `# Scoring a table and writing back: pgml_compat against a Python service (${date})

${machine}; the docker/postgres image. \`BENCH_CONTAINER=... npx tsx bench/predict-service.ts\`

${ROWS.toLocaleString('en')} rows, 2 features. In the database: one UPDATE from pgml.predict_batch over the rows. The service (Python in the same container, its estimator fitted beforehand on the same data): COPY the rows out, predict, COPY the predictions into a temporary table, one UPDATE. Write-back alone: the same UPDATE with a constant, which both paths pay. ${ROUNDS} interleaved rounds; medians, ratios per round.

| model | in the database, s | Python service, s | write-back alone, s | service / in the database | bound: service / write-back alone |
|---|---:|---:|---:|---:|---:|
${(['linear', 'xgboost'] as const).map((a) => `| ${a} | ${f(summaries[a].inDatabaseSeconds)} | ${f(summaries[a].serviceSeconds)} | ${f(summaries[a].writeBackAloneSeconds)} | ${f(summaries[a].serviceOverInDatabase)}× | ${f(summaries[a].bound)}× |`).join('\n')}

The last column is the ceiling for any in-database path that writes its predictions back: even a prediction that cost nothing leaves the UPDATE.
`
await writeFile(new URL('./results/predict-service.md', import.meta.url), md)
process.stdout.write(md)
