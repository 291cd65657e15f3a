/**
 * Backfill throughput with the local embedder, next to the raw embedder on the same texts, so the
 * toolkit's overhead (reading rows, writing vectors, committing batches) shows as a ratio.
 *
 *   npx tsx bench/backfill.ts                      # embedded PGlite
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://... npx tsx bench/backfill.ts   # a server too
 *
 * Writes bench/results/backfill.json and bench/results/backfill.md.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir, cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { loadConfig } from '../src/config/load.js'
import { generate } from '../src/migrations/generate.js'
import { migrate } from '../src/migrations/run.js'
import { openTarget } from '../src/db/target.js'
import { LocalEmbedder } from '../src/embed/local-embedder.js'
import { backfill } from '../src/worker/backfill.js'

const ROWS = Number(process.env.BENCH_ROWS ?? 2000)
const BATCH_SIZES = [1, 8, 32, 128]
const MODELS_DIR = fileURLToPath(new URL('../test/fixtures/models', import.meta.url))
const MODEL = { id: 'pgml-kit/tiny-bert-32', revision: null, dimensions: 32, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null } as const
const WORDS = 'housing family affordable rent school health care city public park water road tax budget police fire safety library transit bus train bike energy power climate green tree waste recycling permit business jobs wage search model query database table document'.split(' ')

function texts(n: number): { title: string; body: string }[] {
  let seed = 42
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  return Array.from({ length: n }, (_, i) => {
    const words = Array.from({ length: 20 + Math.floor(next() * 60) }, () => WORDS[Math.floor(next() * WORDS.length)])
    return { title: `document ${i}`, body: words.join(' ') }
  })
}

interface Row { target: string; batchSize: number; rawRowsPerSecond: number; backfillRowsPerSecond: number; ratio: number }

async function benchTarget(name: string, databaseUrl: string): Promise<Row[]> {
  const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-bench-'))
  try {
    await mkdir(join(cwd, 'migrations'))
    await writeFile(join(cwd, 'migrations', '1000_documents.sql'), '-- Up Migration\nCREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text);\n-- Down Migration\nDROP TABLE documents;\n')
    await writeFile(join(cwd, 'pgml-kit.config.ts'), `export default ${JSON.stringify({
      embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
      tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: { id: MODEL.id, dimensions: 32 }, mode: 'app' } } } },
    })}\n`)
    const config = await loadConfig('pgml-kit.config.ts', cwd)
    await generate(config, { name: 'bench' })
    const target = await openTarget({ cwd, databaseUrl })
    try {
      await migrate({ databaseUrl, cwd, dir: config.migrationsDir, settings: config.migrations })
      const data = texts(ROWS)
      const client = new pg.Client({ connectionString: target.url })
      await client.connect()
      await client.query(`INSERT INTO documents (title, body) SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(title text, body text)`, [JSON.stringify(data)])
      await client.end()
      const column = config.state.embeddingColumns[0]!
      const rows: Row[] = []
      for (const batchSize of BATCH_SIZES) {
        const embedder = await LocalEmbedder.load({ model: MODEL, modelsDir: MODELS_DIR, batchSize })
        const strings = data.map((d) => `${d.title}\n\n${d.body}`)
        await embedder.embed(strings.slice(0, 64)) // warm-up
        let t = performance.now()
        await embedder.embed(strings)
        const raw = ROWS / ((performance.now() - t) / 1000)
        t = performance.now()
        const result = await backfill({ url: target.url, column, loadEmbedder: async () => embedder, all: true, restart: true, batchSize })
        const full = result.done / ((performance.now() - t) / 1000)
        rows.push({ target: name, batchSize, rawRowsPerSecond: Math.round(raw), backfillRowsPerSecond: Math.round(full), ratio: Number((full / raw).toFixed(2)) })
        process.stderr.write(`${name} batch ${batchSize}: raw ${raw.toFixed(0)} rows/s, backfill ${full.toFixed(0)} rows/s\n`)
      }
      return rows
    } finally {
      await target.close()
    }
  } finally {
    await rm(cwd, { recursive: true, force: true })
  }
}

const results: Row[] = []
results.push(...(await benchTarget('embedded (PGlite)', '')))
if (process.env.PGML_KIT_BENCH_DATABASE_URL) {
  const admin = new pg.Client({ connectionString: process.env.PGML_KIT_BENCH_DATABASE_URL })
  await admin.connect()
  await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench')
  await admin.query('CREATE DATABASE pgml_kit_bench')
  const url = new URL(process.env.PGML_KIT_BENCH_DATABASE_URL)
  url.pathname = '/pgml_kit_bench'
  try {
    results.push(...(await benchTarget('server (PostgreSQL 15)', url.toString())))
  } finally {
    await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench WITH (FORCE)')
    await admin.end()
  }
}
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`
const when = new Date().toISOString().slice(0, 10)
await writeFile(new URL('./results/backfill.json', import.meta.url), `${JSON.stringify({ date: when, machine, rows: ROWS, model: MODEL.id, results }, null, 2)}\n`)
const table = ['| target | batch size | raw embedder (rows/s) | backfill (rows/s) | backfill / raw |', '|---|---:|---:|---:|---:|',
  ...results.map((r) => `| ${r.target} | ${r.batchSize} | ${r.rawRowsPerSecond} | ${r.backfillRowsPerSecond} | ${r.ratio} |`)].join('\n')
await writeFile(new URL('./results/backfill.md', import.meta.url), `# Backfill throughput (${when})\n\n${ROWS} rows of 20–80 words, model ${MODEL.id} (fixture, 32 dimensions), ${machine}.\n\n${table}\n`)
process.stdout.write(`${table}\n`)
