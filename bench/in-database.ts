/**
 * In-database inference with pgml_compat, measured honestly:
 *  1. embedding throughput, two models: pgml.embed one row at a time vs pgml.embed(text[]) batches
 *     vs the Node embedder on the same texts, interleaved rounds (ratios per round);
 *  2. prediction: pgml.predict over N rows inside the database (per row, and one predict_batch call)
 *     vs pulling the same rows into Node and predicting there with the same linear model.
 *
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres npx tsx bench/in-database.ts
 *
 * Needs a server with pgml_compat installed (the docker/postgres image: docker compose -f docker/compose.yaml up).
 * Writes bench/results/in-database.{json,md}; with BENCH_LOAD=1 (one busy process per CPU beside
 * the run) bench/results/in-database-loaded.{json,md}.
 */
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
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
const SHIPPED_MODELS_DIR = fileURLToPath(new URL('../models', import.meta.url))
const EMBED_MODELS = [
  { id: 'pgml-kit/tiny-bert-32', dimensions: 32, pooling: null, localDir: LOCAL_MODELS_DIR },
  { id: 'pgml-kit/wordnet-static-128', dimensions: 128, pooling: 'mean' as const, localDir: SHIPPED_MODELS_DIR },
]
const TEXTS = Number(process.env.BENCH_TEXTS ?? 2000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
/** BENCH_LOAD=1: the whole run beside one busy process per CPU (a loaded machine). */
const LOADED = process.env.BENCH_LOAD === '1'
const OUT = LOADED ? 'in-database-loaded' : 'in-database'
const ROWS = Number(process.env.BENCH_ROWS ?? 100000)

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const summary = (xs: number[]) => ({ median: Math.round(median(xs) * 100) / 100, min: Math.round(Math.min(...xs) * 100) / 100, max: Math.round(Math.max(...xs) * 100) / 100 })
interface EmbeddingResult {
  readonly model: string
  readonly rounds: Record<string, number>[]
  readonly rowsPerSecond: Record<string, number>
  readonly batchOverNode: ReturnType<typeof summary>
  readonly perRowOverBatch: ReturnType<typeof summary>
}
const embedding: EmbeddingResult[] = []
const burners = LOADED ? cpus().map(() => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' })) : []

async function time<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now()
  const result = await fn()
  return [result, (performance.now() - started) / 1000]
}

const admin = new pg.Client({ connectionString: ADMIN })
await admin.connect()
const server = (await admin.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]?.v ?? '?'
let compatVersion = '?'
await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench_db')
await admin.query('CREATE DATABASE pgml_kit_bench_db')
const url = new URL(ADMIN)
url.pathname = '/pgml_kit_bench_db'
const db = new pg.Client({ connectionString: url.toString() })
await db.connect()
const results: Record<string, number> = {}
try {
  await db.query('CREATE EXTENSION pgml_compat CASCADE')
  compatVersion = (await db.query<{ v: string }>(`SELECT extversion AS v FROM pg_extension WHERE extname = 'pgml_compat'`)).rows[0]?.v ?? '?'
  // Texts with a real vocabulary (Zipf-distributed words of the wordnet model's 68k-word vocabulary,
  // some capitalised, some followed by punctuation): a fresh set every round, the same set for every
  // path within a round, the paths' order rotated from round to round (interleaved: a machine whose
  // load changes during the run changes every path's numbers alike).
  const vocabulary = Object.keys((JSON.parse(await readFile(join(SHIPPED_MODELS_DIR, 'pgml-kit/wordnet-static-128/tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }).model.vocab)
    .filter((w) => /^[a-z]{3,}$/.test(w))
  let seed = 7
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  for (let i = vocabulary.length - 1; i > 0; i--) { const j = Math.floor(next() * (i + 1)); [vocabulary[i], vocabulary[j]] = [vocabulary[j]!, vocabulary[i]!] }
  const harmonic = vocabulary.reduce((sum, _, r) => sum + 1 / (r + 1), 0)
  const zipfWord = () => { let u = next() * harmonic; for (let r = 0; r < vocabulary.length; r++) { u -= 1 / (r + 1); if (u <= 0) return vocabulary[r]! } return vocabulary[0]! }
  const makeTexts = () => Array.from({ length: TEXTS }, () => Array.from({ length: 20 + Math.floor(next() * 60) }, () => {
    const w = zipfWord()
    const x = next()
    return x < 0.05 ? `${w[0]!.toUpperCase()}${w.slice(1)}` : x < 0.12 ? `${w},` : x < 0.15 ? `${w}.` : w
  }).join(' '))

  for (const model of EMBED_MODELS) {
    const local = await LocalEmbedder.load({ model: { id: model.id, revision: null, dimensions: model.dimensions, documentPrefix: '', queryPrefix: '', normalize: true, pooling: model.pooling }, modelsDir: model.localDir, batchSize: 32 })
    await db.query(`SELECT pgml.embed($1, 'warm up')`, [model.id])
    await local.embed(['warm up'])
    const paths: Record<string, (texts: string[]) => Promise<unknown>> = {
      db_batch32: async (texts) => { for (let i = 0; i < texts.length; i += 32) await db.query(`SELECT pgml.embed($1, $2::text[], '{"normalize_embeddings": true}')`, [model.id, texts.slice(i, i + 32)]) },
      db_per_row: (texts) => db.query(`SELECT pgml.embed($1, t, '{"normalize_embeddings": true}') FROM unnest($2::text[]) AS t`, [model.id, texts]),
      node: (texts) => local.embed(texts),
    }
    const names = Object.keys(paths)
    const rounds: Record<string, number>[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const texts = makeTexts()
      const rates: Record<string, number> = {}
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + round) % names.length]!
        const [, seconds] = await time(() => paths[name]!(texts))
        rates[name] = TEXTS / seconds
      }
      rounds.push(rates)
    }
    embedding.push({
      model: model.id, rounds,
      rowsPerSecond: Object.fromEntries(names.map((n) => [n, median(rounds.map((r) => r[n]!))])),
      batchOverNode: summary(rounds.map((r) => r.db_batch32! / r.node!)),
      perRowOverBatch: summary(rounds.map((r) => r.db_per_row! / r.db_batch32!)),
    })
  }
  // Cold starts: the first call in a new connection (Python imports, the model loaded), median of 3.
  const coldly = async (sql: string) => {
    const times: number[] = []
    for (let i = 0; i < 3; i++) {
      const cold = new pg.Client({ connectionString: url.toString() })
      await cold.connect()
      times.push((await time(() => cold.query(sql)))[1] * 1000)
      await cold.end()
    }
    return median(times)
  }
  results.cold_start_first_embed_ms = await coldly(`SELECT pgml.embed('${EMBED_MODELS[0]!.id}', 'a first text')`)

  await db.query(`CREATE TABLE items AS SELECT i AS id, random() AS a, random() AS b, NULL::float8 AS y FROM generate_series(1, ${ROWS}) AS i;
    UPDATE items SET y = 3 * a - 2 * b + 1 + random() / 100;
    CREATE VIEW items_training AS SELECT a, b, y FROM items;`)
  // Cold start: the first prediction in a new connection imports numpy, scikit-learn and the model.
  await db.query(`SELECT * FROM pgml.train('bench', 'regression', 'items_training', 'y', 'linear')`)
  await db.query(`SELECT * FROM pgml.train('bench_xgboost', 'regression', 'items_training', 'y', 'xgboost')`)
  results.cold_start_first_predict_ms = await coldly(`SELECT pgml.predict('bench', ARRAY[0.5, 0.5]::real[])`)
  results.cold_start_first_predict_xgboost_ms = await coldly(`SELECT pgml.predict('bench_xgboost', ARRAY[0.5, 0.5]::real[])`)
  const perRow = (project: string) => `SELECT count(pgml.predict('${project}', ARRAY[a, b]::real[])) FROM items`
  const batchSql = (project: string) => `SELECT count(*) FROM pgml.predict_batch('${project}', (SELECT array_agg(ARRAY[a, b] ORDER BY id)::real[] FROM items))`
  // PostgreSQL's default plan (parallel workers allowed) against a serial plan, interleaved, 3 rounds
  // each: before 0.4.0 the parallel workers each imported Python and loaded the model on every query.
  await db.query(`SELECT pgml.predict('bench', ARRAY[0.5, 0.5]::real[])`)
  const defaultPlan: number[] = []
  const serialPlan: number[] = []
  for (let round = 0; round < 3; round++) {
    await db.query('RESET max_parallel_workers_per_gather')
    defaultPlan.push(ROWS / (await time(() => db.query(perRow('bench'))))[1])
    await db.query('SET max_parallel_workers_per_gather = 0')
    serialPlan.push(ROWS / (await time(() => db.query(perRow('bench'))))[1])
  }
  results.predict_linear_per_row_default_plan_rows_per_s = median(defaultPlan)
  results.predict_linear_per_row_serial_plan_rows_per_s = median(serialPlan)
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

for (const burner of burners) burner.kill()
const rounded = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Math.round(v)]))
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, PostgreSQL ${server} + pgml_compat ${compatVersion}; ${LOADED ? `loaded: one busy process per CPU beside the run (load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')})` : `no other load (load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')})`}`
const date = new Date().toISOString().slice(0, 10)
const roundedEmbedding = embedding.map((e) => ({ ...e, rounds: e.rounds.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v)]))), rowsPerSecond: Object.fromEntries(Object.entries(e.rowsPerSecond).map(([k, v]) => [k, Math.round(v)])) }))
await writeFile(new URL(`./results/${OUT}.json`, import.meta.url), `${JSON.stringify({ date, machine, texts: TEXTS, rounds: ROUNDS, rows: ROWS, embedding: roundedEmbedding, results: rounded }, null, 2)}\n`)
const r = rounded
const md = `# In-database inference with pgml_compat (${date}${LOADED ? ', loaded machine' : ''})

${machine}. \`PGML_KIT_BENCH_DATABASE_URL=... ${LOADED ? 'BENCH_LOAD=1 ' : ''}npx tsx bench/in-database.ts\`

## Embedding

${TEXTS} texts of 20–80 words per round (Zipf-distributed words of a 68k-word vocabulary, some capitalised or followed by punctuation; new texts every round), ${ROUNDS} rounds, the three paths interleaved within each round (their order rotated). Medians of the rounds; the ratios are per round (median, min–max).

| model | pgml.embed(text[]), 32 a call | pgml.embed per row (set-based SELECT) | Node embedder (onnxruntime), 32 a batch | batch / Node | per row / batch |
|---|---:|---:|---:|---:|---:|
${roundedEmbedding.map((e) => `| ${e.model} | ${e.rowsPerSecond.db_batch32} | ${e.rowsPerSecond.db_per_row} | ${e.rowsPerSecond.node} | ${e.batchOverNode.median}× (${e.batchOverNode.min}–${e.batchOverNode.max}) | ${e.perRowOverBatch.median} (${e.perRowOverBatch.min}–${e.perRowOverBatch.max}) |`).join('\n')}

Rows per second.

## Prediction

${ROWS} rows, 2 features, a linear regression and an xgboost regressor (its defaults: 100 trees of depth ≤ 6).

| what | rows/s |
|---|---:|
| pgml.predict per row, linear regression, PostgreSQL's default plan (parallel workers allowed) | ${r.predict_linear_per_row_default_plan_rows_per_s} |
| the same, serial plan (max_parallel_workers_per_gather = 0) | ${r.predict_linear_per_row_serial_plan_rows_per_s} |
| pgml.predict per row, linear regression (serial) | ${r.predict_linear_per_row_rows_per_s} |
| pgml.predict_batch, linear regression, one call over a 2-D array | ${r.predict_batch_linear_rows_per_s} |
| pgml.predict per row, xgboost (100 trees) | ${r.predict_xgboost_per_row_rows_per_s} |
| pgml.predict_batch, xgboost | ${r.predict_batch_xgboost_rows_per_s} |
| pull rows into Node, predict there (same linear model in JS) | ${r.predict_pull_into_node_rows_per_s} |
| predict_batch's query shape alone, no prediction (array_agg(ARRAY[a, b] ORDER BY id), unnest) | ${r.batch_query_shape_without_prediction_rows_per_s} |

Default plan / serial: ${(r.predict_linear_per_row_default_plan_rows_per_s! / r.predict_linear_per_row_serial_plan_rows_per_s!).toFixed(2)}. Per-row / batch: linear ${(r.predict_linear_per_row_rows_per_s! / r.predict_batch_linear_rows_per_s!).toFixed(2)}, xgboost ${(r.predict_xgboost_per_row_rows_per_s! / r.predict_batch_xgboost_rows_per_s!).toFixed(3)}. predict_batch / pulling into Node (linear): ${(r.predict_batch_linear_rows_per_s! / r.predict_pull_into_node_rows_per_s!).toFixed(2)}×.

## Cold start

The first call in a new connection (PL/Python loads pgml_compat, imports what the call needs, loads the model), median of 3: pgml.embed ${r.cold_start_first_embed_ms} ms, pgml.predict of a linear model ${r.cold_start_first_predict_ms} ms, of an xgboost model ${r.cold_start_first_predict_xgboost_ms} ms.
`
await writeFile(new URL(`./results/${OUT}.md`, import.meta.url), md)
process.stdout.write(md)
