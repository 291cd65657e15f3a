/**
 * Filtered vector search at 10 %, 1 % and 0.1 % selectivity, on the harder dataset
 * (bench/datasets/anisotropic.ts: 100,000 × 384, fixed seed). Each row has a `tenant` from 0 to
 * 999 (uniform, seeded); a filter keeps a range of tenants of 100, 10 or 1 of them, a different
 * range for every query (so every search with `filterStrategy: 'auto'` pays for its planner
 * estimate: none is served from the kit's estimate cache). For each filter, `kit.search` with
 *   - `filterStrategy: 'index'`: the vector index with iterative scans (the kit's rule before),
 *   - `filterStrategy: 'auto'`: exact scan when the planner says it is cheaper (the rule now),
 * and the same query written by hand (node-postgres, the session's defaults: the planner's choice,
 * no iterative scan), with and without a B-tree index on `tenant`. Recall@10 against exact
 * nearest neighbours computed here in float64 over the filter's rows; p50 per query.
 *
 * The rule's constant (ITERATIVE_COST_PER_INVERSE_SELECTIVITY in src/query/query-vector.ts) was
 * set on the tuning queries (the 100 drawn first); the table reports both sets, and the held-out
 * set (the next 100) is the one to judge by.
 *
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://... npx tsx bench/filtered-search.ts
 *   npx tsx bench/filtered-search.ts        # the embedded database (PGlite)
 *
 * Writes bench/results/filtered-search-<target>.json and bench/results/filtered-search.md
 * (the latter from every target's JSON present).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { createKit } from '../src/query/create-kit.js'
import { openTarget, type Target } from '../src/db/target.js'
import { resolveConfig } from '../src/model/resolve.js'
import { renderBuildSettings, renderCreateIndexConcurrently } from '../src/sql/render-index.js'
import type { PgmlKitConfig } from '../src/config/schema.js'
import { anisotropicDataset, generator, DIMS } from './datasets/anisotropic.js'

const SERVER = process.env.PGML_KIT_BENCH_DATABASE_URL
const ROWS = Number(process.env.BENCH_ROWS ?? 100_000)
const QUERIES = 100
const K = 10
const TENANTS = 1000
const FILTERS = [{ name: '10 %', width: 100 }, { name: '1 %', width: 10 }, { name: '0.1 %', width: 1 }] as const

const config = {
  tables: { items: { embeddings: { embedding: { source: 'body', model: { id: 'bench/hard', dimensions: DIMS }, mode: 'app', indexes: [{ method: 'hnsw', distance: 'cosine', build: 'auto' }] } } } },
} satisfies PgmlKitConfig
const { state } = resolveConfig(config)
const index = state.indexes[0]!

/** The table as the kit's typed builders see it. */
interface Database { items: { id: string; tenant: number; body: string; embedding: string } }

interface Row { readonly tenant: number; readonly v: Float32Array; readonly norm: number }

function norm(v: ArrayLike<number>): number {
  let s = 0
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!
  return Math.sqrt(s)
}

/** The k nearest ids by cosine distance, in float64, among the rows whose tenant is in [from, from + width). */
function exactNearest(rows: readonly Row[], q: readonly number[], from: number, width: number): Set<number> {
  const qn = norm(q)
  const best: { id: number; d: number }[] = []
  for (let id = 0; id < rows.length; id++) {
    const r = rows[id]!
    if (r.tenant < from || r.tenant >= from + width) continue
    let dot = 0
    for (let i = 0; i < DIMS; i++) dot += r.v[i]! * q[i]!
    const d = 1 - dot / (r.norm * qn)
    if (best.length < K || d < best[best.length - 1]!.d) {
      best.push({ id, d })
      best.sort((a, b) => a.d - b.d)
      if (best.length > K) best.pop()
    }
  }
  return new Set(best.map((b) => b.id))
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits

async function run(target: Target, name: 'server' | 'embedded') {
  const { point } = anisotropicDataset(20261206)
  const tenants = generator(1000)
  const rows: Row[] = []
  const client = await target.connect('pgml-kit bench filtered-search')
  const started = Date.now()
  const out: Record<string, unknown> = { target: name, rows: ROWS, dimensions: DIMS, k: K, measured: new Date().toISOString() }
  try {
    out.server = (await client.query<{ v: string }>('SELECT version() AS v')).rows[0]?.v
    await client.query('CREATE EXTENSION IF NOT EXISTS vector')
    out.pgvector = (await client.query<{ v: string }>(`SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'`)).rows[0]?.v
    await client.query('DROP TABLE IF EXISTS items')
    await client.query(`CREATE TABLE items (id bigint PRIMARY KEY, tenant int NOT NULL, body text, embedding vector(${DIMS}))`)
    for (let start = 0; start < ROWS; start += 2000) {
      const n = Math.min(2000, ROWS - start)
      const batch = Array.from({ length: n }, () => {
        const v = Float32Array.from(point())
        const row = { tenant: Math.floor(tenants.uniform() * TENANTS), v, norm: norm(v) }
        rows.push(row)
        return row
      })
      await client.query(`INSERT INTO items (id, tenant, body, embedding) SELECT $1::bigint + i - 1, t, 'item', v::vector FROM unnest($2::text[], $3::int[]) WITH ORDINALITY AS u(v, t, i)`,
        [start, batch.map((r) => `[${Array.from(r.v).join(',')}]`), batch.map((r) => r.tenant)])
    }
    // Drawn after the rows: none is in the table. The first 100 tuned the rule; the next 100 judge it.
    const sets = { tuning: Array.from({ length: QUERIES }, point), heldOut: Array.from({ length: QUERIES }, point) }
    await client.query('VACUUM ANALYZE items')
    const { set, reset } = renderBuildSettings(index, { dimensions: DIMS, vectorType: 'vector' })
    for (const statement of set) await client.query(statement)
    await client.query(renderCreateIndexConcurrently(index, 'vector'))
    for (const statement of reset) await client.query(statement)
    process.stderr.write(`[${name}] ${ROWS} rows and HNSW in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)

    const pool = new pg.Pool({ connectionString: target.url, max: 1 })
    // Which way each kit search went: the exact form (pgml_kit_exact) or the index.
    let exactScans = 0
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: (event) => { if (event.level === 'query' && /^SELECT \* FROM \(select .* AS pgml_kit_exact/.test(event.query.sql)) exactScans += 1 } })
    const raw = new pg.Client({ connectionString: target.url })
    await raw.connect()
    const results: Record<string, unknown>[] = []
    try {
      for (const btree of [true, false]) {
        if (btree) await client.query('CREATE INDEX items_tenant ON items (tenant)')
        else await client.query('DROP INDEX IF EXISTS items_tenant')
        await client.query('ANALYZE items')
        for (const filter of FILTERS) {
          for (const [setName, queries] of Object.entries(sets)) {
            const from = (i: number) => (i * 37) % (TENANTS - filter.width + 1)
            const truth = queries.map((q, i) => exactNearest(rows, q, from(i), filter.width))
            const variants = {
              'kit, filterStrategy index (before)': async (q: number[], i: number) => createKitOnce().search('items.embedding', q, { k: K, filterStrategy: 'index' })
                .where('tenant', '>=', from(i)).where('tenant', '<', from(i) + filter.width).select(['id']).execute(),
              'kit, filterStrategy auto (now)': async (q: number[], i: number) => createKitOnce().search('items.embedding', q, { k: K })
                .where('tenant', '>=', from(i)).where('tenant', '<', from(i) + filter.width).select(['id']).execute(),
              'hand-written SQL (planner, no iterative scan)': async (q: number[], i: number) => (await raw.query(
                `SELECT id FROM items WHERE tenant >= $2 AND tenant < $3 ORDER BY embedding <=> $1::vector(${DIMS}) LIMIT ${K}`, [`[${q.join(',')}]`, from(i), from(i) + filter.width])).rows,
            }
            for (const [variant, search] of Object.entries(variants)) {
              let found = 0
              const times: number[] = []
              exactScans = 0
              for (const [i, q] of queries.entries()) {
                const start = performance.now()
                const hits = await search(q, i) as { id: string | number }[]
                times.push(performance.now() - start)
                found += hits.filter((h) => truth[i]!.has(Number(h.id))).length
              }
              const row = { btree, filter: filter.name, set: setName, variant, recall: round(found / (K * queries.length)), p50Ms: round(median(times), 2), exactScans: variant.startsWith('kit') ? exactScans : null }
              results.push(row)
              process.stderr.write(`[${name}] ${JSON.stringify(row)}\n`)
            }
          }
        }
      }
      // Unfiltered, for comparison: the recall the filtered searches should reach.
      for (const [setName, queries] of Object.entries(sets)) {
        const truth = queries.map((q) => exactNearest(rows, q, 0, TENANTS))
        let found = 0
        const times: number[] = []
        for (const [i, q] of queries.entries()) {
          const start = performance.now()
          const hits = await createKitOnce().search('items.embedding', q, { k: K }).select(['id']).execute()
          times.push(performance.now() - start)
          found += hits.filter((h) => truth[i]!.has(Number(h.id))).length
        }
        results.push({ btree: null, filter: 'none', set: setName, variant: 'kit (unfiltered)', recall: round(found / (K * queries.length)), p50Ms: round(median(times), 2) })
      }
    } finally {
      await db.destroy()
      await raw.end()
    }
    out.results = results

    function createKitOnce() {
      kit ??= createKit(config, { db, embedIn: 'local' })
      return kit
    }
  } finally {
    await client.query('DROP TABLE IF EXISTS items').catch(() => undefined)
    await client.end()
  }
  await writeFile(new URL(`./results/filtered-search-${name}.json`, import.meta.url), `${JSON.stringify(out, null, 2)}\n`)
}
let kit: ReturnType<typeof createKit<typeof config, Database>> | undefined

async function report() {
  const sections: string[] = ['# Filtered vector search at 10 %, 1 % and 0.1 %', '', 'Written by `bench/filtered-search.ts`. Recall@10 against exact neighbours (float64) among the rows the filter keeps; p50 in ms. Each query filters its own range of tenants. `auto` is the kit\'s default; its constant was set on the tuning queries — judge it by the held-out ones.', '']
  for (const name of ['server', 'embedded']) {
    let data: { results: { btree: boolean | null; filter: string; set: string; variant: string; recall: number; p50Ms: number; exactScans?: number | null }[]; rows: number; server: string; pgvector: string; measured: string }
    try {
      data = JSON.parse(await readFile(new URL(`./results/filtered-search-${name}.json`, import.meta.url), 'utf8'))
    } catch {
      continue
    }
    sections.push(`## ${name === 'server' ? 'Server' : 'Embedded (PGlite)'}`, '', `${data.rows.toLocaleString('en')} rows × ${DIMS}; ${data.server.split(' on ')[0]}, pgvector ${data.pgvector}; measured ${data.measured}.`, '')
    const unfiltered = data.results.filter((r) => r.filter === 'none')
    sections.push(`Unfiltered, same index and ef_search: recall ${unfiltered.map((r) => `${r.recall} (${r.set})`).join(', ')}, p50 ${unfiltered.map((r) => r.p50Ms).join(' / ')} ms.`, '')
    for (const btree of [true, false]) {
      sections.push(`### ${btree ? 'With' : 'Without'} a B-tree index on the filter column`, '', '| filter | search | recall, tuning | recall, held-out | p50 ms, held-out | held-out queries scanned exactly |', '|---|---|---:|---:|---:|---:|')
      for (const filter of FILTERS) {
        const here = data.results.filter((r) => r.btree === btree && r.filter === filter.name)
        for (const variant of [...new Set(here.map((r) => r.variant))]) {
          const t = here.find((r) => r.variant === variant && r.set === 'tuning')
          const h = here.find((r) => r.variant === variant && r.set === 'heldOut')
          sections.push(`| ${filter.name} | ${variant} | ${t?.recall ?? '—'} | **${h?.recall ?? '—'}** | ${h?.p50Ms ?? '—'} | ${h?.exactScans ?? '—'} |`)
        }
      }
      sections.push('')
    }
  }
  await writeFile(new URL('./results/filtered-search.md', import.meta.url), `${sections.join('\n')}\n`)
}

if (process.env.BENCH_REPORT_ONLY) {
  await report()
} else if (SERVER) {
  const target = await openTarget({ databaseUrl: SERVER })
  try {
    await run(target, 'server')
  } finally {
    await target.close()
  }
  await report()
} else {
  const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-bench-filtered-'))
  const target = await openTarget({ cwd, databaseUrl: '' })
  try {
    await run(target, 'embedded')
  } finally {
    await target.close()
    await rm(cwd, { recursive: true, force: true })
  }
  await report()
}
