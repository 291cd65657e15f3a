/**
 * Vector search, measured on a clustered dataset, on the server and on the embedded database:
 *  1. build time of HNSW with PostgreSQL's defaults (maintenance_work_mem 64 MB) vs pgml-kit's
 *     `build: 'auto'` (memory sized from the table, parallel workers), and of IVFFlat with lists
 *     from the advice;
 *  2. recall@10 against exact search and p50/p95 latency over ef_search (HNSW) and probes (IVFFlat),
 *     measured by `checkIndex` — the code behind `pgml-kit index check` — on 100 tuning queries;
 *     its recommendation for recall 0.95 is then measured on 100 held-out queries;
 *  3. a filter matching 10 % of rows, with and without iterative scans;
 *  4. `kit.search` vs the same query as raw SQL through node-postgres, interleaved (the builder's
 *     overhead), and Kysely's own `sql` template in between (where the overhead goes).
 *
 *   npx tsx bench/search.ts                                    # embedded PGlite
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://... npx tsx bench/search.ts   # a server with pgvector
 *   BENCH_ROWS=10000 npx tsx bench/search.ts                   # the small dataset, for a quick run
 *
 * The data is generated inside the database with a fixed seed (setseed + random()), so both
 * targets hold the same vectors: 100 cluster centres uniform in [-1, 1]^384, each row a centre plus
 * uniform noise of ±0.5 per dimension, a random category 0–9. Queries are drawn the same way but
 * are not in the table. Writes bench/results/search-<target>.json; `npx tsx bench/search-report.ts`
 * turns the results into bench/results/search.md and docs/search-recall-latency.svg.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { createKit } from '../src/query/create-kit.js'
import { openTarget, type Target } from '../src/db/target.js'
import { resolveConfig } from '../src/model/resolve.js'
import { checkIndex, type IndexCheckResult } from '../src/indexes/check.js'
import { adviseIvfflat } from '../src/indexes/advice.js'
import { renderBuildSettings, renderCreateIndexConcurrently } from '../src/sql/render-index.js'
import type { PgmlKitConfig } from '../src/config/schema.js'

const ROWS = Number(process.env.BENCH_ROWS ?? 100_000)
const DIMS = Number(process.env.BENCH_DIMS ?? 384)
const CLUSTERS = 100
// The data's own dimension, how far rows spread around their cluster's centre in it (centres are
// uniform in [-1, 1]), and the noise added in every one of the 384 dimensions.
const INTRINSIC = Number(process.env.BENCH_INTRINSIC ?? 16)
const SPREAD = Number(process.env.BENCH_SPREAD ?? 0.5)
const NOISE = Number(process.env.BENCH_NOISE ?? 3)
const QUERIES = 100
const LATENCY_RUNS = Number(process.env.BENCH_LATENCY_RUNS ?? 1000)
const SERVER = process.env.PGML_KIT_BENCH_DATABASE_URL
const TARGET_RECALL = 0.95

const config = {
  tables: {
    items: {
      embeddings: {
        embedding: {
          source: 'body',
          model: { id: 'bench/clustered', dimensions: DIMS },
          mode: 'app',
          indexes: [
            { method: 'hnsw', distance: 'cosine', build: 'auto' },
            { method: 'ivfflat', distance: 'cosine', lists: 'auto', build: 'auto' },
          ],
        },
      },
    },
  },
} satisfies PgmlKitConfig
const resolved = resolveConfig(config)
const [hnswNode, ivfNode] = resolved.state.indexes.filter((i) => i.method === 'hnsw').concat(resolved.state.indexes.filter((i) => i.method === 'ivfflat'))
const column = { vectorType: 'vector' as const, dimensions: DIMS }

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? 0
}

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now()
  const value = await fn()
  return [value, (performance.now() - start) / 1000]
}

async function generate(client: pg.Client): Promise<{ tuning: number[][]; heldOut: number[][] }> {
  await client.query('CREATE EXTENSION IF NOT EXISTS vector')
  await client.query('DROP TABLE IF EXISTS items, bench_centers, bench_queries, bench_basis')
  await client.query(`CREATE TABLE items (id bigint PRIMARY KEY, category int NOT NULL, body text, embedding vector(${DIMS}))`)
  await client.query('SELECT setseed(0.42)')
  // A 16-dimensional space of meaning (16 random directions of the 384-dimensional space), with
  // overlapping clusters in it, plus a little noise in every dimension: neighbourhoods that look
  // like those of text embeddings, whose intrinsic dimension is low, rather than uniform noise.
  await client.query(`CREATE TABLE bench_basis AS SELECT j, ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, ${DIMS}) WHERE j >= 0)::vector AS v FROM generate_series(1, ${INTRINSIC}) AS j`)
  await client.query(`CREATE TABLE bench_centers AS SELECT c, ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, ${INTRINSIC}) WHERE c >= 0) AS w FROM generate_series(0, ${CLUSTERS - 1}) AS c`)
  const point = (row: string) => `((SELECT sum(array_fill((c.w[b.j] + (random() * 2 - 1) * ${SPREAD})::real, ARRAY[${DIMS}])::vector * b.v) FROM bench_basis AS b WHERE ${row} IS NOT NULL)
      + ARRAY(SELECT ((random() * 2 - 1) * ${NOISE})::real FROM generate_series(1, ${DIMS}) WHERE ${row} IS NOT NULL)::vector)`
  for (let start = 1; start <= ROWS; start += 10_000) {
    const end = Math.min(ROWS, start + 9_999)
    // OFFSET 0 keeps the draws in the subquery: one cluster and one category per row.
    await client.query(`INSERT INTO items (id, category, body, embedding)
      SELECT g.i, g.category, 'item ' || g.i, ${point('g.i')}
      FROM (SELECT i, floor(random() * ${CLUSTERS})::int AS cluster, floor(random() * 10)::int AS category FROM generate_series(${start}, ${end}) AS i OFFSET 0) AS g
      JOIN bench_centers c ON c.c = g.cluster`)
  }
  await client.query(`CREATE TABLE bench_queries AS SELECT g.q, ${point('g.q')}::real[] AS v
    FROM (SELECT q, floor(random() * ${CLUSTERS})::int AS cluster FROM generate_series(1, ${2 * QUERIES}) AS q OFFSET 0) AS g JOIN bench_centers c ON c.c = g.cluster`)
  await client.query('VACUUM ANALYZE items')
  const { rows } = await client.query<{ v: number[] }>('SELECT v FROM bench_queries ORDER BY q')
  const vectors = rows.map((r) => r.v.map(Number))
  return { tuning: vectors.slice(0, QUERIES), heldOut: vectors.slice(QUERIES) }
}

/** Builds an index as a generated migration would (optionally with its build settings), returning seconds. */
async function build(client: pg.Client, node: typeof hnswNode, name: string, withSettings: boolean): Promise<number> {
  const index = { ...node!, name }
  await client.query(`DROP INDEX IF EXISTS ${name}`)
  const settings = withSettings ? renderBuildSettings(index, column) : { set: [], reset: [] }
  for (const statement of settings.set) await client.query(statement)
  const [, seconds] = await timed(() => client.query(renderCreateIndexConcurrently(index, 'vector')))
  for (const statement of settings.reset) await client.query(statement)
  return seconds
}

/** A seeded Fisher–Yates shuffle (mulberry32), so every run interleaves the same way. */
let shuffleState = 20261206
function shuffle<T>(items: T[]): T[] {
  const next = () => {
    shuffleState = (shuffleState + 0x6d2b79f5) >>> 0
    let t = shuffleState
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}

interface OverheadRow {
  readonly efSearch: number | null
  /** Hand-written SQL at its best: one connection of its own whose session has the setting, one round trip per search. */
  readonly rawSession: { p50: number; p95: number }
  readonly raw: { p50: number; p95: number }
  readonly kysely: { p50: number; p95: number }
  readonly kit: { p50: number; p95: number }
  /** kit.prepareSearch: compiled once, the vector bound per call. */
  readonly prepared: { p50: number; p95: number }
  readonly kitOverP50: number
  /** Median over iterations of kit ÷ raw for the same query run back to back: robust to the machine's drift. */
  readonly pairedRatio: number
  /** Median of kit − raw, ms. */
  readonly pairedExtraMs: number
  /** The same against rawSession. */
  readonly pairedRatioSession: number
  readonly pairedExtraMsSession: number
  /**
   * Client CPU per search (µs, mean: process.cpuUsage around each call, user + system, GC
   * included): what the code in this process costs, without the server's time and the machine's
   * scheduling noise that dominate the wall-clock figures on a small machine.
   */
  readonly cpuMicros: { rawSession: number; raw: number; kysely: number; kit: number; prepared: number }
  /** kit.prepareSearch against raw (pooled) and against rawSession. */
  readonly preparedPairedRatio: number
  readonly preparedPairedExtraMs: number
  readonly preparedPairedRatioSession: number
}

/**
 * kit.search vs raw SQL (node-postgres: with a pooled connection and SET LOCAL in a transaction,
 * and on a session of its own that holds the setting) vs Kysely's sql template, same query,
 * interleaved per query.
 */
async function overhead(url: string, queries: readonly number[][], efSearch: number | null): Promise<OverheadRow> {
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  const db = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) })
  const kit = createKit(config, { db, embedIn: 'local' })
  const text = `SELECT id, embedding <=> $1::vector(${DIMS}) AS distance FROM items ORDER BY embedding <=> $1::vector(${DIMS}) LIMIT 10`
  const session = new pg.Client({ connectionString: url })
  await session.connect()
  if (efSearch !== null) await session.query(`SET hnsw.ef_search = ${efSearch}`)
  const times = { rawSession: [] as number[], raw: [] as number[], kysely: [] as number[], kit: [] as number[], prepared: [] as number[] }
  const cpu = { rawSession: 0, raw: 0, kysely: 0, kit: 0, prepared: 0 }
  const names = ['raw', 'kysely', 'kit', 'rawSession', 'prepared'] as const
  const prepared = kit.prepareSearch('items.embedding', { k: 10, ...(efSearch === null ? {} : { efSearch }) }, (search) => search.select(['id']))
  const VARIANTS = 5
  try {
    for (let i = 0; i < LATENCY_RUNS + 20; i += 1) {
      const q = queries[i % queries.length]!
      // Hand-written code formats the vector as pgvector's own Node client does (toSql: JSON.stringify), inside the timing, as the kit does.
      let literal = ''
      // A shuffled order every iteration (seeded): each variant goes first equally often (the first
      // query on a new vector pays for cold caches) and follows every other one (a variant that
      // always followed the one on the other connection always paid for waking this one up).
      const order = shuffle(Array.from({ length: VARIANTS }, (_, k) => k))
      for (const which of order) {
        const cpuStart = process.cpuUsage()
        const start = performance.now()
        if (which !== 2 && which !== 4) literal = JSON.stringify(q)
        if (which === 4) {
          await prepared.execute(q)
          if (i >= 20) times.prepared.push(performance.now() - start)
        } else if (which === 3) {
          await session.query(text, [literal])
          if (i >= 20) times.rawSession.push(performance.now() - start)
        } else if (which === 0) {
          const c = await pool.connect()
          try {
            if (efSearch === null) await c.query(text, [literal])
            else {
              await c.query(`BEGIN; SELECT pg_catalog.set_config('hnsw.ef_search', '${efSearch}', true)`)
              await c.query(text, [literal])
              await c.query('COMMIT')
            }
          } finally {
            c.release()
          }
          if (i >= 20) times.raw.push(performance.now() - start)
        } else if (which === 1) {
          if (efSearch === null) await sql`SELECT id, embedding <=> ${literal}::vector(${sql.raw(String(DIMS))}) AS distance FROM items ORDER BY embedding <=> ${literal}::vector(${sql.raw(String(DIMS))}) LIMIT 10`.execute(db)
          else await db.transaction().execute(async (trx) => {
            await sql`SELECT pg_catalog.set_config('hnsw.ef_search', ${String(efSearch)}, true)`.execute(trx)
            await sql`SELECT id, embedding <=> ${literal}::vector(${sql.raw(String(DIMS))}) AS distance FROM items ORDER BY embedding <=> ${literal}::vector(${sql.raw(String(DIMS))}) LIMIT 10`.execute(trx)
          })
          if (i >= 20) times.kysely.push(performance.now() - start)
        } else {
          await kit.search('items.embedding', q, { k: 10, ...(efSearch === null ? {} : { efSearch }) }).select(['id']).execute()
          if (i >= 20) times.kit.push(performance.now() - start)
        }
        const used = process.cpuUsage(cpuStart)
        if (i >= 20) cpu[names[which]!] += used.user + used.system
      }
    }
  } finally {
    await db.destroy()
    await session.end()
  }
  const stats = (t: number[]) => ({ p50: round(percentile(t, 0.5)), p95: round(percentile(t, 0.95)) })
  const result = { rawSession: stats(times.rawSession), raw: stats(times.raw), kysely: stats(times.kysely), kit: stats(times.kit), prepared: stats(times.prepared) }
  const paired = (base: number[], of = times.kit) => ({ ratio: round(percentile(of.map((k, i) => k / base[i]!), 0.5)), extra: round(percentile(of.map((k, i) => k - base[i]!), 0.5)) })
  const vsRaw = paired(times.raw)
  const vsSession = paired(times.rawSession)
  const preparedVsRaw = paired(times.raw, times.prepared)
  const preparedVsSession = paired(times.rawSession, times.prepared)
  const cpuMicros = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, Math.round(v / LATENCY_RUNS)])) as OverheadRow['cpuMicros']
  return {
    efSearch, ...result, cpuMicros, kitOverP50: round(result.kit.p50 / result.raw.p50), pairedRatio: vsRaw.ratio, pairedExtraMs: vsRaw.extra, pairedRatioSession: vsSession.ratio, pairedExtraMsSession: vsSession.extra,
    preparedPairedRatio: preparedVsRaw.ratio, preparedPairedExtraMs: preparedVsRaw.extra, preparedPairedRatioSession: preparedVsSession.ratio,
  }
}

async function run(target: Target, name: 'server' | 'embedded') {
  const client = await target.connect('pgml-kit bench search')
  const out: Record<string, unknown> = { target: name, rows: ROWS, dimensions: DIMS, clusters: CLUSTERS, cpus: cpus().length, cpu: cpus()[0]?.model ?? '?', node: process.version }
  try {
    out.server = (await client.query<{ v: string }>('SELECT version() AS v')).rows[0]?.v
    const [queries, generateSeconds] = await timed(() => generate(client))
    out.generateSeconds = round(generateSeconds, 1)
    process.stderr.write(`[${name}] ${ROWS} rows generated in ${generateSeconds.toFixed(1)} s\n`)
    out.pgvector = (await client.query<{ v: string }>(`SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'`)).rows[0]?.v

    if (process.env.BENCH_ONLY === 'overhead') {
      // Only the builder's overhead (section 4), on an HNSW index built with the kit's settings.
      await build(client, hnswNode, hnswNode!.name, true)
      out.overhead = [await overhead(target.url, queries.tuning, null), await overhead(target.url, queries.tuning, 40)]
      process.stderr.write(`[${name}] overhead: ${JSON.stringify(out.overhead)}\n`)
      return
    }
    // 1. Builds: defaults, then the kit's 'auto' settings (the index that stays).
    const defaults = await build(client, hnswNode, 'items_hnsw_defaults', false)
    await client.query('DROP INDEX items_hnsw_defaults')
    process.stderr.write(`[${name}] HNSW build, defaults: ${defaults.toFixed(1)} s\n`)
    const auto = await build(client, hnswNode, hnswNode!.name, true)
    process.stderr.write(`[${name}] HNSW build, build: 'auto': ${auto.toFixed(1)} s\n`)
    const lists = adviseIvfflat(ROWS).lists
    const ivfIndex = { ...ivfNode!, params: { lists } }
    const ivf = await build(client, ivfIndex, ivfNode!.name, true)
    process.stderr.write(`[${name}] IVFFlat build (lists ${lists}): ${ivf.toFixed(1)} s\n`)
    out.build = { hnswDefaultsSeconds: round(defaults, 1), hnswAutoSeconds: round(auto, 1), hnswSpeedup: round(defaults / auto, 2), ivfflatSeconds: round(ivf, 1), ivfflatLists: lists }
    out.indexBytes = Object.fromEntries((await client.query<{ name: string; size: string }>(`SELECT relname AS name, pg_relation_size(oid) AS size FROM pg_class WHERE relname IN ($1, $2)`, [hnswNode!.name, ivfNode!.name])).rows.map((r) => [r.name, Number(r.size)]))

    // 2. Recall and latency per setting (only one index at a time, so the planner uses it).
    const state = { ...resolved.state, indexes: [hnswNode!, { ...ivfNode!, params: { lists } }] }
    const check = async (index: string, options: Partial<Parameters<typeof checkIndex>[2]>): Promise<IndexCheckResult> =>
      checkIndex(client, state, { column: 'items.embedding', index, targetRecall: TARGET_RECALL, ...options })
    // Which index a query uses is the planner's choice; each is measured alone (the other is dropped and rebuilt).
    await client.query(`DROP INDEX ${ivfNode!.name}`)
    const hnswTuning = await check(hnswNode!.name, { queryVectors: queries.tuning })
    const hnswHeld = hnswTuning.recommendation ? await check(hnswNode!.name, { queryVectors: queries.heldOut, grid: [hnswTuning.recommendation.setting] }) : null
    const hnswSampled = await check(hnswNode!.name, { queries: QUERIES, grid: hnswTuning.recommendation ? [hnswTuning.recommendation.setting] : [40] })
    const filtered = await check(hnswNode!.name, { queryVectors: queries.tuning, grid: [...new Set([40, hnswTuning.recommendation?.setting ?? 100])], where: 'category = 3' })
    process.stderr.write(`[${name}] HNSW: ${hnswTuning.rows.map((r) => `${r.setting}:${r.recall}@${r.p50Ms}ms`).join(' ')}\n`)

    // 4. The builder's overhead, on the HNSW index.
    out.overhead = [await overhead(target.url, queries.tuning, null), await overhead(target.url, queries.tuning, 40)]
    process.stderr.write(`[${name}] overhead: ${JSON.stringify(out.overhead)}\n`)

    await client.query(`DROP INDEX ${hnswNode!.name}`)
    await build(client, ivfIndex, ivfNode!.name, true)
    const ivfTuning = await check(ivfNode!.name, { queryVectors: queries.tuning })
    const ivfHeld = ivfTuning.recommendation ? await check(ivfNode!.name, { queryVectors: queries.heldOut, grid: [ivfTuning.recommendation.setting] }) : null
    const ivfFiltered = await check(ivfNode!.name, { queryVectors: queries.tuning, grid: [...new Set([adviseIvfflat(ROWS).probes, ivfTuning.recommendation?.setting ?? lists])].sort((a, b) => a - b), where: 'category = 3' })
    process.stderr.write(`[${name}] IVFFlat: ${ivfTuning.rows.map((r) => `${r.setting}:${r.recall}@${r.p50Ms}ms`).join(' ')}\n`)

    out.hnsw = { tuning: hnswTuning, heldOut: hnswHeld?.rows[0] ?? null, sampledFromTable: hnswSampled.rows[0] ?? null, filtered: filtered.rows }
    out.ivfflat = { tuning: ivfTuning, heldOut: ivfHeld?.rows[0] ?? null, filtered: ivfFiltered.rows }
  } finally {
    await client.query('DROP TABLE IF EXISTS items, bench_centers, bench_queries, bench_basis').catch(() => undefined)
    await client.end()
  }
  if (process.env.BENCH_ONLY === 'overhead') return
  const file = new URL(`./results/search-${name}${ROWS === 100_000 ? '' : `-${ROWS}`}.json`, import.meta.url)
  await writeFile(file, `${JSON.stringify(out, null, 2)}\n`)
  process.stderr.write(`[${name}] wrote ${file.pathname}\n`)
}

if (SERVER) {
  const target = await openTarget({ databaseUrl: SERVER })
  try {
    await run(target, 'server')
  } finally {
    await target.close()
  }
} else {
  const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-bench-search-'))
  const target = await openTarget({ cwd, databaseUrl: '' })
  try {
    await run(target, 'embedded')
  } finally {
    await target.close()
    await rm(cwd, { recursive: true, force: true })
  }
}
