/**
 * In-database inference with pgml_compat, measured honestly:
 *  1. embedding throughput: pgml.embed one row at a time vs pgml.embed(text[]) batches vs the Node
 *     embedder on the same texts;
 *  2. prediction: pgml.predict over N rows inside the database (per row, and one predict_batch call)
 *     vs pulling the same rows into Node and predicting there with the same linear model.
 *
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres npx tsx bench/in-database.ts
 *
 * Needs a server with pgml_compat installed (the docker/postgres image: docker compose -f docker/compose.yaml up). Writes bench/results/in-database.{json,md}.
 */
import { writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { LocalEmbedder } from '../src/embed/local-embedder.js'

const ADMIN = process.env.PGML_KIT_BENCH_DATABASE_URL
if (!ADMIN) {
  process.stderr.write('set PGML_KIT_BENCH_DATABASE_URL to a server with pgml_compat (docker compose -f docker/compose.yaml up starts one)\n')
  process.exit(2)
}
// pgml_compat.models_dir comes from the server's configuration (the docker/postgres image, with the
// fixture models mounted at /var/lib/pgml-kit/models); the Node embedder reads them from here.
const LOCAL_MODELS_DIR = fileURLToPath(new URL('../test/fixtures/models', import.meta.url))
const MODEL = 'pgml-kit/tiny-bert-32'
const TEXTS = Number(process.env.BENCH_TEXTS ?? 1000)
const ROWS = Number(process.env.BENCH_ROWS ?? 100000)
const WORDS = 'housing family affordable rent school health care city public park water road tax budget police fire safety library transit bus'.split(' ')

async function time<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now()
  const result = await fn()
  return [result, (performance.now() - started) / 1000]
}

const admin = new pg.Client({ connectionString: ADMIN })
await admin.connect()
const server = (await admin.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]?.v ?? '?'
await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench_db')
await admin.query('CREATE DATABASE pgml_kit_bench_db')
const url = new URL(ADMIN)
url.pathname = '/pgml_kit_bench_db'
const db = new pg.Client({ connectionString: url.toString() })
await db.connect()
const results: Record<string, number> = {}
try {
  await db.query('CREATE EXTENSION pgml_compat CASCADE')
  let seed = 7
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  const texts = Array.from({ length: TEXTS }, () => Array.from({ length: 20 + Math.floor(next() * 60) }, () => WORDS[Math.floor(next() * WORDS.length)]).join(' '))
  await db.query(`SELECT pgml.embed($1, 'warm up')`, [MODEL])

  const [, single] = await time(() => db.query(`SELECT pgml.embed($1, t, '{"normalize_embeddings": true}') FROM unnest($2::text[]) AS t`, [MODEL, texts]))
  results.embed_single_rows_per_s = TEXTS / single
  const [, batch] = await time(async () => {
    for (let i = 0; i < TEXTS; i += 32) await db.query(`SELECT pgml.embed($1, $2::text[], '{"normalize_embeddings": true}')`, [MODEL, texts.slice(i, i + 32)])
  })
  results.embed_batch32_rows_per_s = TEXTS / batch
  const local = await LocalEmbedder.load({ model: { id: MODEL, revision: null, dimensions: 32, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null }, modelsDir: LOCAL_MODELS_DIR, batchSize: 32 })
  const [, node] = await time(() => local.embed(texts))
  results.embed_node_onnxruntime_rows_per_s = TEXTS / node

  await db.query(`CREATE TABLE items AS SELECT i AS id, random() AS a, random() AS b, NULL::float8 AS y FROM generate_series(1, ${ROWS}) AS i;
    UPDATE items SET y = 3 * a - 2 * b + 1 + random() / 100;
    CREATE VIEW items_training AS SELECT a, b, y FROM items;`)
  // Cold start: the first prediction in a new connection imports numpy, scikit-learn and the model.
  await db.query(`SELECT * FROM pgml.train('bench', 'regression', 'items_training', 'y', 'linear')`)
  await db.query(`SELECT * FROM pgml.train('bench_xgboost', 'regression', 'items_training', 'y', 'xgboost')`)
  const cold = new pg.Client({ connectionString: url.toString() })
  await cold.connect()
  const [, coldStart] = await time(() => cold.query(`SELECT pgml.predict('bench', ARRAY[0.5, 0.5]::real[])`))
  await cold.end()
  results.cold_start_first_predict_ms = coldStart * 1000
  const perRow = (project: string) => `SELECT count(pgml.predict('${project}', ARRAY[a, b]::real[])) FROM items`
  const batchSql = (project: string) => `SELECT count(*) FROM pgml.predict_batch('${project}', (SELECT array_agg(ARRAY[a, b] ORDER BY id)::real[] FROM items))`
  // A parallel plan starts worker processes that each import Python and load the model (the cold
  // start above) for every query: measured once, then the per-backend speed without them.
  await db.query(`SELECT pgml.predict('bench', ARRAY[0.5, 0.5]::real[])`)
  const [, parallel] = await time(() => db.query(perRow('bench')))
  results.predict_linear_per_row_parallel_workers_rows_per_s = ROWS / parallel
  await db.query('SET max_parallel_workers_per_gather = 0')
  for (const [project, key] of [['bench', 'linear'], ['bench_xgboost', 'xgboost']] as const) {
    await db.query(`SELECT pgml.predict('${project}', ARRAY[0.5, 0.5]::real[])`) // load the model into this backend
    const [, row] = await time(() => db.query(perRow(project)))
    results[`predict_${key}_per_row_rows_per_s`] = ROWS / row
    const [, all] = await time(() => db.query(batchSql(project)))
    results[`predict_batch_${key}_rows_per_s`] = ROWS / all
  }
  // The lower bound of predict_batch's query shape: the same aggregation and unnest, no prediction.
  const [, sqlOnly] = await time(() => db.query(`SELECT count(*) FROM unnest((SELECT array_agg(ARRAY[a, b] ORDER BY id)::real[] FROM items))`))
  results.batch_query_shape_without_prediction_rows_per_s = ROWS / sqlOnly
  // Node: fetch the rows, then the same linear model (least squares fitted on the same data) in JavaScript.
  const [{ rows }] = await Promise.all([db.query<{ a: number; b: number; y: number }>('SELECT a, b, y FROM items')])
  const coefficients = fitLinear(rows.map((r) => [r.a, r.b]), rows.map((r) => r.y))
  const [, inNode] = await time(async () => {
    const { rows: fetched } = await db.query<{ id: number; a: number; b: number }>('SELECT id, a, b FROM items')
    return fetched.map((r) => coefficients[0]! + coefficients[1]! * r.a + coefficients[2]! * r.b)
  })
  results.predict_pull_into_node_rows_per_s = ROWS / inNode
} finally {
  await db.end()
  await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench_db WITH (FORCE)')
  await admin.end()
}

function fitLinear(x: number[][], y: number[]): number[] {
  // Normal equations for [1, a, b]: (XᵀX) β = Xᵀy, solved by Gaussian elimination.
  const m = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
  x.forEach((row, i) => {
    const v = [1, ...row]
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) m[r]![c]! += v[r]! * v[c]!
      m[r]![3]! += v[r]! * y[i]!
    }
  })
  for (let p = 0; p < 3; p++) for (let r = p + 1; r < 3; r++) {
    const f = m[r]![p]! / m[p]![p]!
    for (let c = p; c < 4; c++) m[r]![c]! -= f * m[p]![c]!
  }
  const beta = [0, 0, 0]
  for (let r = 2; r >= 0; r--) beta[r] = (m[r]![3]! - [0, 1, 2].filter((c) => c > r).reduce((s, c) => s + m[r]![c]! * beta[c]!, 0)) / m[r]![r]!
  return beta
}

const rounded = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Math.round(v)]))
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, PostgreSQL ${server} + pgml_compat`
const date = new Date().toISOString().slice(0, 10)
await writeFile(new URL('./results/in-database.json', import.meta.url), `${JSON.stringify({ date, machine, texts: TEXTS, rows: ROWS, model: MODEL, results: rounded }, null, 2)}\n`)
const r = rounded
const md = `# In-database inference with pgml_compat (${date})

${machine}. Embedding: ${TEXTS} texts of 20–80 words, fixture model ${MODEL}. Prediction: ${ROWS} rows, 2 features, a linear regression and an xgboost regressor (its defaults: 100 trees of depth ≤ 6).

| what | rows/s |
|---|---:|
| pgml.embed, one call per row (SELECT pgml.embed(model, t) FROM ...) | ${r.embed_single_rows_per_s} |
| pgml.embed(text[]), batches of 32 | ${r.embed_batch32_rows_per_s} |
| Node embedder (onnxruntime), batches of 32 | ${r.embed_node_onnxruntime_rows_per_s} |
| pgml.predict per row, linear regression (SELECT pgml.predict(p, ARRAY[a, b]) FROM items) | ${r.predict_linear_per_row_rows_per_s} |
| the same with PostgreSQL's default parallel plan (2 workers, each importing Python and the model) | ${r.predict_linear_per_row_parallel_workers_rows_per_s} |
| pgml.predict_batch, linear regression, one call over a 2-D array | ${r.predict_batch_linear_rows_per_s} |
| pgml.predict per row, xgboost (100 trees) | ${r.predict_xgboost_per_row_rows_per_s} |
| pgml.predict_batch, xgboost | ${r.predict_batch_xgboost_rows_per_s} |
| pull rows into Node, predict there (same linear model in JS) | ${r.predict_pull_into_node_rows_per_s} |
| predict_batch's query shape alone, no prediction (array_agg(ARRAY[a, b] ORDER BY id), unnest) | ${r.batch_query_shape_without_prediction_rows_per_s} |

Per-row / batch: linear ${(r.predict_linear_per_row_rows_per_s! / r.predict_batch_linear_rows_per_s!).toFixed(2)}, xgboost ${(r.predict_xgboost_per_row_rows_per_s! / r.predict_batch_xgboost_rows_per_s!).toFixed(3)}. predict_batch / pulling into Node (linear): ${(r.predict_batch_linear_rows_per_s! / r.predict_pull_into_node_rows_per_s!).toFixed(2)}×. Cold start (first prediction in a new connection: Python imports and loading the model): ${r.cold_start_first_predict_ms} ms.
`
await writeFile(new URL('./results/in-database.md', import.meta.url), md)
process.stdout.write(md)
