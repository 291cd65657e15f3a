/**
 * Does `index check`'s recommendation hold on queries it has not seen? A harder dataset than
 * bench/search.ts's — 200 anisotropic clusters of Zipf-like sizes in a 64-dimensional subspace of
 * the 384-dimensional space, plus noise in every dimension (bench/datasets/anisotropic.ts, fixed
 * seed) — with queries drawn the way traffic arrives (a cluster in proportion to its size, a point
 * of it), none of them in the table.
 *
 * A pool of queries is measured once with `checkIndex` (the code behind `pgml-kit index check`):
 * each query's recall@10 at every ef_search of the grid. Then, many times over, the pool is split
 * into a tuning set and a held-out set that share no query: a rule sees only the tuning set's rows
 * (as index check computes them) and picks a setting; the held-out set's mean recall at that
 * setting judges it. No constant of the rule is fitted here (its confidence, 95%, is a convention),
 * and the per-query recall the unit test of the rule simulates from came from another build.
 *
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://... npx tsx bench/index-advice.ts
 *   BENCH_ROWS=20000 BENCH_POOL=600 ... (a smaller run)
 *
 * Writes bench/results/index-advice.{json,md}.
 */
import { writeFile } from 'node:fs/promises'
import pg from 'pg'
import { checkIndex, defaultQueryCount, recommendSetting, summariseRecall, type IndexCheckRow } from '../src/indexes/check.js'
import { resolveConfig } from '../src/model/resolve.js'
import { renderBuildSettings, renderCreateIndexConcurrently } from '../src/sql/render-index.js'
import type { PgmlKitConfig } from '../src/config/schema.js'
import { anisotropicDataset, generator, CLUSTERS, DIMS, SUBSPACE } from './datasets/anisotropic.js'

const URL_ = process.env.PGML_KIT_BENCH_DATABASE_URL
if (!URL_) {
  process.stderr.write('set PGML_KIT_BENCH_DATABASE_URL (a server with pgvector)\n')
  process.exit(2)
}
const ROWS = Number(process.env.BENCH_ROWS ?? 100_000)
const POOL = Number(process.env.BENCH_POOL ?? 2000)
const TRIALS = Number(process.env.BENCH_TRIALS ?? 1000)
const HELD_OUT = 100
const TARGETS = [0.9, 0.95, 0.99]
const GRID = [10, 20, 40, 80, 120, 200, 400, 800, 1000]

const { point } = anisotropicDataset(20261206)

const config = {
  tables: { items: { embeddings: { embedding: { source: 'body', model: { id: 'bench/hard', dimensions: DIMS }, mode: 'app', indexes: [{ method: 'hnsw', distance: 'cosine', build: 'auto' }] } } } },
} satisfies PgmlKitConfig
const { state } = resolveConfig(config)
const index = state.indexes[0]!

type Rule = (rows: readonly IndexCheckRow[], target: number) => IndexCheckRow | null
const lowest = (rows: readonly IndexCheckRow[], ok: (r: IndexCheckRow) => boolean) => rows.filter(ok).sort((a, b) => a.setting - b.setting)[0] ?? null
const rules: Record<string, Rule> = {
  'mean − 1 standard error (first rule)': (rows, t) => lowest(rows, (r) => r.recall - r.recallStdErr >= t),
  'mean − 2.33 standard errors (second rule)': (rows, t) => lowest(rows, (r) => r.recall - 2.326 * r.recallStdErr >= t),
  'index check now (95% bound on the miss rate)': recommendSetting,
}

const client = new pg.Client({ connectionString: URL_ })
await client.connect()
const started = Date.now()
try {
  await client.query('CREATE EXTENSION IF NOT EXISTS vector')
  await client.query('DROP TABLE IF EXISTS items')
  await client.query(`CREATE TABLE items (id bigint PRIMARY KEY, body text, embedding vector(${DIMS}))`)
  for (let start = 0; start < ROWS; start += 2000) {
    const n = Math.min(2000, ROWS - start)
    const vectors = Array.from({ length: n }, () => `[${point().join(',')}]`)
    await client.query(`INSERT INTO items (id, body, embedding) SELECT $1::bigint + i, 'item', v::vector FROM unnest($2::text[]) WITH ORDINALITY AS u(v, i)`, [start, vectors])
  }
  // Queries drawn after the rows, the same way: none is in the table.
  const pool = Array.from({ length: POOL }, point)
  await client.query('VACUUM ANALYZE items')
  process.stderr.write(`${ROWS} rows in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
  const { set, reset } = renderBuildSettings(index, { dimensions: DIMS, vectorType: 'vector' })
  for (const statement of set) await client.query(statement)
  const buildStart = Date.now()
  await client.query(renderCreateIndexConcurrently(index, 'vector'))
  for (const statement of reset) await client.query(statement)
  process.stderr.write(`HNSW built in ${((Date.now() - buildStart) / 1000).toFixed(0)} s\n`)

  const measureStart = Date.now()
  const measured = await checkIndex(client, state, {
    column: 'items.embedding', queryVectors: pool, grid: GRID,
    onProgress: (done, total) => { if (done % 2000 === 0) process.stderr.write(`${done} of ${total} searches\n`) },
  })
  process.stderr.write(`pool measured in ${((Date.now() - measureStart) / 1000).toFixed(0)} s\n`)
  const perQuery = new Map(measured.rows.map((r) => [r.setting, r.perQuery]))
  const p50 = new Map(measured.rows.map((r) => [r.setting, r.p50Ms]))

  // Resampled pairs: a tuning set of `size` queries and a held-out set of 100 others.
  const rng = generator(4242)
  const shuffled = (n: number) => {
    const a = Array.from({ length: n }, (_, i) => i)
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!]
    }
    return a
  }
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
  const judged: { rule: string; target: number; tuning: number; noChoice: number; below: number; belowBy001: number; worst: number | null; chosen: Record<number, number>; meanP50: number | null }[] = []
  for (const target of TARGETS) {
    const size = defaultQueryCount(target)
    if (size + HELD_OUT > POOL) continue
    const outcomes = Object.fromEntries(Object.keys(rules).map((name) => [name, { noChoice: 0, below: 0, belowBy001: 0, worst: Infinity, chosen: {} as Record<number, number>, p50: [] as number[] }]))
    for (let t = 0; t < TRIALS; t++) {
      const order = shuffled(POOL)
      const tuningIds = order.slice(0, size)
      const heldIds = order.slice(size, size + HELD_OUT)
      const rows: IndexCheckRow[] = GRID.map((setting) => ({ setting, iterative: null, p50Ms: p50.get(setting)!, p95Ms: 0, short: 0, ...summariseRecall(tuningIds.map((i) => perQuery.get(setting)![i]!)) }))
      for (const [name, rule] of Object.entries(rules)) {
        const o = outcomes[name]!
        const chosen = rule(rows, target)
        if (!chosen) { o.noChoice++; continue }
        o.chosen[chosen.setting] = (o.chosen[chosen.setting] ?? 0) + 1
        o.p50.push(chosen.p50Ms)
        const heldOut = mean(heldIds.map((i) => perQuery.get(chosen.setting)![i]!))
        if (heldOut < target) o.below++
        if (heldOut < target - 0.01) o.belowBy001++
        o.worst = Math.min(o.worst, heldOut)
      }
    }
    for (const [rule, o] of Object.entries(outcomes)) {
      judged.push({ rule, target, tuning: size, noChoice: o.noChoice, below: o.below, belowBy001: o.belowBy001, worst: Number.isFinite(o.worst) ? Math.round(o.worst * 1000) / 1000 : null, chosen: o.chosen, meanP50: o.p50.length ? Math.round(mean(o.p50) * 100) / 100 : null })
    }
  }
  const r3 = (x: number) => Math.round(x * 1000) / 1000
  const summary = GRID.map((setting) => {
    const q = perQuery.get(setting)!
    return { setting, recall: r3(mean(q)), missedAll: q.filter((x) => x === 0).length, p50Ms: p50.get(setting)! }
  })
  const out = { measured: new Date().toISOString(), rows: ROWS, dimensions: DIMS, clusters: CLUSTERS, subspace: SUBSPACE, pool: POOL, trials: TRIALS, heldOut: HELD_OUT, grid: GRID, server: (await client.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v, summary, judged }
  await writeFile(new URL('./results/index-advice.json', import.meta.url), `${JSON.stringify(out, null, 2)}\n`)
  const pct = (n: number) => `${(100 * n / TRIALS).toFixed(1)} %`
  const md = [
    '# index check on queries it has not seen',
    '',
    `Measured ${out.measured} on ${out.server.split(' on ')[0]}: ${ROWS.toLocaleString('en')} rows × ${DIMS} (${CLUSTERS} anisotropic clusters of Zipf-like sizes in a ${SUBSPACE}-dimensional subspace, plus noise; \`bench/datasets/anisotropic.ts\`), HNSW m 16 / ef_construction 64, k 10. A pool of ${POOL.toLocaleString('en')} queries drawn like traffic, none in the table, measured once by \`checkIndex\`; then ${TRIALS.toLocaleString('en')} times a tuning set (as many queries as \`index check\` samples by default for the target) and ${HELD_OUT} held-out queries, disjoint, drawn from the pool. A rule sees only the tuning set; the held-out mean at its choice judges it (\`bench/index-advice.ts\`).`,
    '',
    'The pool, per setting (a query that finds none of its 10 rows is the long tail the rules must expect):',
    '',
    '| ef_search | recall@10 | queries finding none of their rows | p50 ms |',
    '|---:|---:|---:|---:|',
    ...summary.map((s) => `| ${s.setting} | ${s.recall} | ${s.missedAll} of ${POOL} | ${s.p50Ms} |`),
    '',
    '| rule | target | tuning queries | no setting chosen | held-out below target | below by more than 0.01 | worst held-out | ef_search chosen (times) | mean p50 ms of the choice |',
    '|---|---:|---:|---:|---:|---:|---:|---|---:|',
    ...judged.map((j) => `| ${j.rule} | ${j.target} | ${j.tuning} | ${pct(j.noChoice)} | ${pct(j.below)} | **${pct(j.belowBy001)}** | ${j.worst ?? '—'} | ${Object.entries(j.chosen).map(([s, n]) => `${s} (${n})`).join(', ')} | ${j.meanP50 ?? '—'} |`),
    '',
  ].join('\n')
  await writeFile(new URL('./results/index-advice.md', import.meta.url), md)
  process.stdout.write(md)
} finally {
  await client.query('DROP TABLE IF EXISTS items').catch(() => undefined)
  await client.end()
}
