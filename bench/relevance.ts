/**
 * Relevance of the model pgml-kit ships on the labelled set in test/fixtures/relevance: recall@3 of
 * vector search (kit.search), full text alone and hybrid search (kit.hybridSearch, RRF), on the
 * tuning queries (used to choose the model's settings) and the held-out ones (written after).
 *
 *   npx tsx bench/relevance.ts                                  # embedded PGlite
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://… npx tsx bench/relevance.ts   # a server (a scratch database is created)
 *
 * Writes bench/results/relevance-<target>.json and prints a table; the per-query tops are in the JSON.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { loadConfig } from '../src/config/load.js'
import { openTarget } from '../src/db/target.js'
import { localEmbedderLoader } from '../src/embed/embedder-for-config.js'
import { generate } from '../src/migrations/generate.js'
import { migrate } from '../src/migrations/run.js'
import { backfill } from '../src/worker/backfill.js'
import { PAGES_TABLE, RELEVANCE_SET, evaluateRelevance, relevanceConfig } from '../test/helpers/relevance.js'

const admin = process.env.PGML_KIT_BENCH_DATABASE_URL
const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-relevance-'))
let databaseUrl = ''
if (admin) {
  const c = new pg.Client({ connectionString: admin })
  await c.connect()
  await c.query('DROP DATABASE IF EXISTS pgml_kit_relevance')
  await c.query('CREATE DATABASE pgml_kit_relevance')
  await c.end()
  const u = new URL(admin)
  u.pathname = '/pgml_kit_relevance'
  databaseUrl = u.toString()
}
const target = await openTarget({ cwd, databaseUrl })
try {
  await mkdir(join(cwd, 'migrations'))
  await writeFile(join(cwd, 'migrations', '1000000000000_create-pages.sql'), PAGES_TABLE)
  await writeFile(join(cwd, 'pgml-kit.config.ts'), `export default ${JSON.stringify(relevanceConfig)}\n`)
  let config = await loadConfig('pgml-kit.config.ts', cwd)
  await generate(config, { name: 'add-page-embeddings', timestamp: 2000000000000 })
  config = await loadConfig('pgml-kit.config.ts', cwd)
  await migrate({ databaseUrl: target.url, cwd, dir: config.migrationsDir, settings: config.migrations, direction: 'up' })
  const c = new pg.Client({ connectionString: target.url })
  await c.connect()
  const docs = RELEVANCE_SET.documents
  await c.query('INSERT INTO pages (id, title, body) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])', [docs.map((d) => d.id), docs.map((d) => d.title), docs.map((d) => d.body)])
  await c.end()
  const column = config.state.embeddingColumns[0]!
  await backfill({ url: target.url, column, loadEmbedder: () => localEmbedderLoader(config.embedder)(column) })
  const report = await evaluateRelevance(target.url)
  const name = admin ? 'server' : 'embedded'
  const counts = { tuning: RELEVANCE_SET.queries.filter((q) => q.split === 'tuning').length, 'held-out': RELEVANCE_SET.queries.filter((q) => q.split === 'held-out').length, all: RELEVANCE_SET.queries.length }
  await writeFile(fileURLToPath(new URL(`./results/relevance-${name}.json`, import.meta.url)), `${JSON.stringify({ target: name, documents: docs.length, queries: counts, ...report }, null, 2)}\n`)
  process.stdout.write(`recall@3 on ${name}, ${docs.length} documents\n`)
  process.stdout.write(`${'method'.padEnd(12)}${(['tuning', 'held-out', 'all'] as const).map((s) => `${s} (${counts[s]})`.padStart(16)).join('')}\n`)
  for (const method of ['vector', 'fullText', 'hybrid'] as const) {
    process.stdout.write(`${method.padEnd(12)}${(['tuning', 'held-out', 'all'] as const).map((s) => report.recall[method][s].toFixed(3).padStart(16)).join('')}\n`)
  }
} finally {
  await target.close()
  await rm(cwd, { recursive: true, force: true })
}
