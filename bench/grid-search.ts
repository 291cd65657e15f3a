/**
 * PostgresML's grid-search example — xgboost on `digits`, max_depth 1–6 × n_estimators 20/40/80/160
 * (24 candidates × 3 folds) — through pgml_compat's pgml.train, against scikit-learn's
 * GridSearchCV on the same split run by plain Python in the same container. Interleaved rounds;
 * the ratio is per round.
 *
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://postgres:...@127.0.0.1:5432/postgres \
 *   BENCH_CONTAINER=<the container's name> npx tsx bench/grid-search.ts
 *
 * Writes bench/results/grid-search.{json,md}.
 */
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { promisify } from 'node:util'
import pg from 'pg'

const ADMIN = process.env.PGML_KIT_BENCH_DATABASE_URL
const CONTAINER = process.env.BENCH_CONTAINER
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)
if (!ADMIN || !CONTAINER) {
  process.stderr.write('set PGML_KIT_BENCH_DATABASE_URL (a server with pgml_compat) and BENCH_CONTAINER (the Docker container it runs in)\n')
  process.exit(2)
}
const run = promisify(execFile)
const SEARCH_PARAMS = { max_depth: [1, 2, 3, 4, 5, 6], n_estimators: [20, 40, 80, 160] }

// The same data and split as pgml.train's (its default: test_size 0.25, stratified), then the same search.
const PYTHON = `
import json, sys, time
import numpy as np
from sklearn import datasets
from sklearn.model_selection import GridSearchCV, train_test_split
import xgboost
d = datasets.load_digits()
x = d.data.astype(np.float32)
x_train, x_test, y_train, y_test = train_test_split(x, d.target, test_size=0.25, stratify=d.target, random_state=0)
started = time.perf_counter()
search = GridSearchCV(xgboost.XGBClassifier(), ${JSON.stringify(SEARCH_PARAMS)}, cv=3, scoring='f1_macro')
search.fit(x_train, y_train)
print(json.dumps({'seconds': time.perf_counter() - started, 'best': search.best_params_}))
`

const admin = new pg.Client({ connectionString: ADMIN })
await admin.connect()
await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench_grid')
await admin.query('CREATE DATABASE pgml_kit_bench_grid')
const url = new URL(ADMIN)
url.pathname = '/pgml_kit_bench_grid'
const db = new pg.Client({ connectionString: url.toString() })
await db.connect()
const rounds: { pgml: number; python: number }[] = []
let best: unknown = null
try {
  await db.query('CREATE EXTENSION pgml_compat CASCADE')
  await db.query(`SELECT * FROM pgml.load_dataset('digits')`)
  // Imports and the first fit outside the timing, on both sides.
  await db.query(`SELECT * FROM pgml.train('warm', 'classification', 'pgml.digits', 'target', 'xgboost', '{"n_estimators": 2}')`)
  await run('docker', ['exec', CONTAINER, 'python3', '-c', 'import sklearn.model_selection, xgboost'])
  for (let round = 0; round < ROUNDS; round++) {
    const sides = {
      pgml: async () => {
        const started = performance.now()
        await db.query(`SELECT * FROM pgml.train($1, 'classification', 'pgml.digits', 'target', 'xgboost', search => 'grid', search_params => $2::jsonb)`,
          [`grid ${round}`, JSON.stringify(SEARCH_PARAMS)])
        const [row] = (await db.query<{ h: unknown }>(`SELECT m.hyperparams AS h FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE p.name = $1`, [`grid ${round}`])).rows
        best = row?.h
        return (performance.now() - started) / 1000
      },
      python: async () => {
        const { stdout } = await run('docker', ['exec', CONTAINER, 'python3', '-c', PYTHON], { maxBuffer: 1 << 20 })
        return (JSON.parse(stdout.trim().split('\n').at(-1)!) as { seconds: number }).seconds
      },
    }
    const order = round % 2 === 0 ? (['pgml', 'python'] as const) : (['python', 'pgml'] as const)
    const times: Partial<Record<'pgml' | 'python', number>> = {}
    for (const side of order) times[side] = await sides[side]()
    rounds.push({ pgml: times.pgml!, python: times.python! })
    process.stderr.write(`round ${round}: pgml.train ${times.pgml!.toFixed(1)} s, GridSearchCV ${times.python!.toFixed(1)} s\n`)
  }
} finally {
  await db.end()
  await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench_grid WITH (FORCE)')
  await admin.end()
}
const ratios = rounds.map((r) => r.pgml / r.python)
const date = new Date().toISOString().slice(0, 10)
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`
await writeFile(new URL('./results/grid-search.json', import.meta.url), `${JSON.stringify({ date, machine, searchParams: SEARCH_PARAMS, rounds, ratios, best }, null, 2)}\n`)
const md = `# PostgresML's grid-search example on pgml_compat (${date})

${machine}; the docker/postgres image. \`BENCH_CONTAINER=... npx tsx bench/grid-search.ts\`

xgboost on \`digits\` (1,797 images, 10 classes; pgml.train's stratified 75% training split), max_depth 1–6 × n_estimators 20/40/80/160: 24 candidates × 3 folds, scored by macro F1, then the best refitted. pgml.train (\`search => 'grid'\`) against scikit-learn's GridSearchCV on the same split in plain Python in the same container, interleaved.

| round | pgml.train, s | GridSearchCV, s | ratio |
|---|---:|---:|---:|
${rounds.map((r, i) => `| ${i + 1} | ${r.pgml.toFixed(1)} | ${r.python.toFixed(1)} | ${ratios[i]!.toFixed(2)} |`).join('\n')}

Best candidate (pgml.train): \`${JSON.stringify(best)}\`. pgml.train's time includes reading the table, the split, scoring on the test set and storing the model.
`
await writeFile(new URL('./results/grid-search.md', import.meta.url), md)
process.stdout.write(md)
