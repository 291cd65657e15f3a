/**
 * Does `index check`'s recommendation hold on queries it has not seen? A harder dataset than
 * bench/search.ts's — 200 anisotropic clusters of Zipf-like sizes in a 64-dimensional subspace of
 * the 384-dimensional space, plus noise in every dimension — with queries drawn the way traffic
 * arrives (a cluster in proportion to its size, a point of it), none of them in the table. Every
 * setting of the grid is measured on 100 tuning queries and on 100 held-out ones; the
 * recommendation rule sees only the tuning queries, and is judged on the held-out ones.
 *
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://... npx tsx bench/index-advice.ts
 *   BENCH_ROWS=20000 ... (a smaller run)
 *
 * The data is generated here with a fixed seed (a seeded PRNG, not the database's random()), so
 * every run and every target holds the same vectors. Writes bench/results/index-advice.{json,md}.
 */
import { writeFile } from 'node:fs/promises'
import pg from 'pg'
import { checkIndex, recommendSetting, type IndexCheckRow } from '../src/indexes/check.js'
import { resolveConfig } from '../src/model/resolve.js'
import { renderBuildSettings, renderCreateIndexConcurrently } from '../src/sql/render-index.js'
import type { PgmlKitConfig } from '../src/config/schema.js'
import { anisotropicDataset, CLUSTERS, DIMS, SUBSPACE } from './datasets/anisotropic.js'

const URL_ = process.env.PGML_KIT_BENCH_DATABASE_URL
if (!URL_) {
  process.stderr.write('set PGML_KIT_BENCH_DATABASE_URL (a server with pgvector)\n')
  process.exit(2)
}
const ROWS = Number(process.env.BENCH_ROWS ?? 100_000)
const QUERIES = 100
const TARGETS = [0.9, 0.95, 0.99]
const PAIRS = Number(process.env.BENCH_PAIRS ?? 8)
const GRID = [10, 20, 40, 80, 120, 200, 400]

const { point } = anisotropicDataset(20261206)

const config = {
  tables: { items: { embeddings: { embedding: { source: 'body', model: { id: 'bench/hard', dimensions: DIMS }, mode: 'app', indexes: [{ method: 'hnsw', distance: 'cosine', build: 'auto' }] } } } },
} satisfies PgmlKitConfig
const { state } = resolveConfig(config)
const index = state.indexes[0]!

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
  // Queries drawn after the rows, the same way: none is in the table. Several pairs of sets: the
  // rule is judged on how often the held-out set of a pair falls short, not on one draw.
  const pairs = Array.from({ length: PAIRS }, () => ({ tuning: Array.from({ length: QUERIES }, point), heldOut: Array.from({ length: QUERIES }, point) }))
  await client.query('VACUUM ANALYZE items')
  process.stderr.write(`${ROWS} rows in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
  const { set, reset } = renderBuildSettings(index, { dimensions: DIMS, vectorType: 'vector' })
  for (const statement of set) await client.query(statement)
  const buildStart = Date.now()
  await client.query(renderCreateIndexConcurrently(index, 'vector'))
  for (const statement of reset) await client.query(statement)
  process.stderr.write(`HNSW built in ${((Date.now() - buildStart) / 1000).toFixed(0)} s\n`)

  const measure = async (queryVectors: number[][]) =>
    (await checkIndex(client, state, { column: 'items.embedding', queryVectors, targetRecall: 0.95, grid: GRID })).rows
  const rules = {
    'one standard error (before)': (rows: readonly IndexCheckRow[], target: number) => rows.filter((r) => r.recall - r.recallStdErr >= target).sort((a, b) => a.setting - b.setting)[0] ?? null,
    'index check now (2.33 standard errors)': recommendSetting,
  }
  const measured: { tuning: readonly IndexCheckRow[]; heldOut: readonly IndexCheckRow[] }[] = []
  for (const [i, pair] of pairs.entries()) {
    measured.push({ tuning: await measure(pair.tuning), heldOut: await measure(pair.heldOut) })
    process.stderr.write(`pair ${i + 1} of ${PAIRS} measured\n`)
  }
  const row = (rows: readonly IndexCheckRow[], setting: number | undefined) => rows.find((r) => r.setting === setting)
  const judged = Object.entries(rules).flatMap(([rule, choose]) => TARGETS.map((target) => {
    const outcomes = measured.map((m) => {
      const chosen = choose(m.tuning, target)
      return { setting: chosen?.setting ?? null, heldOut: row(m.heldOut, chosen?.setting)?.recall ?? null }
    })
    const judgedOn = outcomes.filter((o) => o.heldOut !== null)
    return { rule, target, settings: outcomes.map((o) => o.setting), heldOut: outcomes.map((o) => o.heldOut),
      below: judgedOn.filter((o) => o.heldOut! < target).length, belowByMoreThan001: judgedOn.filter((o) => o.heldOut! < target - 0.01).length,
      worst: judgedOn.length ? Math.min(...judgedOn.map((o) => o.heldOut!)) : null }
  }))
  const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length * 1000) / 1000
  const out = { measured: new Date().toISOString(), rows: ROWS, dimensions: DIMS, clusters: CLUSTERS, subspace: SUBSPACE, queries: QUERIES, pairs: PAIRS, grid: GRID, measuredPairs: measured, judged }
  await writeFile(new URL('./results/index-advice.json', import.meta.url), `${JSON.stringify(out, null, 2)}\n`)
  const md = [
    '# index check on queries it has not seen',
    '',
    `Measured ${out.measured}: ${ROWS.toLocaleString('en')} rows × ${DIMS} (${CLUSTERS} anisotropic clusters of Zipf-like sizes in a ${SUBSPACE}-dimensional subspace, plus noise), HNSW m 16 / ef_construction 64, k 10; ${PAIRS} pairs of ${QUERIES} tuning and ${QUERIES} held-out queries, none in the table (\`bench/index-advice.ts\`). A rule sees only a pair's tuning queries; its choice is judged on the pair's held-out queries.`,
    '',
    'Recall over the pairs (mean of the sets):',
    '',
    '| ef_search | tuning recall | held-out recall | mean SE of one set |',
    '|---:|---:|---:|---:|',
    ...GRID.map((g) => `| ${g} | ${mean(measured.map((m) => row(m.tuning, g)!.recall))} | ${mean(measured.map((m) => row(m.heldOut, g)!.recall))} | ${mean(measured.map((m) => row(m.tuning, g)!.recallStdErr))} |`),
    '',
    '| rule | target | ef_search chosen, per pair | held-out recall, per pair | pairs below target | below by more than 0.01 |',
    '|---|---:|---|---|---:|---:|',
    ...judged.map((j) => `| ${j.rule} | ${j.target} | ${j.settings.map((x) => x ?? '—').join(', ')} | ${j.heldOut.map((x) => x ?? '—').join(', ')} | ${j.below} of ${PAIRS} | ${j.belowByMoreThan001} |`),
    '',
  ].join('\n')
  await writeFile(new URL('./results/index-advice.md', import.meta.url), md)
  process.stdout.write(md)
} finally {
  await client.query('DROP TABLE IF EXISTS items').catch(() => undefined)
  await client.end()
}
