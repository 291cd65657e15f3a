/**
 * Backfill throughput with the local embedder, next to the raw embedder on the same texts, so the
 * toolkit's overhead (reading rows, writing vectors, committing batches) shows as a ratio.
 *
 * Two models: the test fixture tiny-bert-32 (one layer, 32 wide: the embedder costs almost
 * nothing, so this is the database path's cost laid bare), and bench-bert-384, a model with
 * MiniLM-L6's shape and cost (6 layers, 384 wide; random weights) generated into a scratch
 * directory by scripts/generate-fixture-models.py --bench (python3-onnx, python3-numpy).
 * The raw embedder is timed before and after each backfill; the mean is the reference.
 *
 *   npx tsx bench/backfill.ts                      # embedded PGlite
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://... npx tsx bench/backfill.ts   # a server too
 *
 * Writes bench/results/backfill.json and bench/results/backfill.md.
 */
import { execFileSync } from 'node:child_process'
import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises'
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
const FIXTURES = fileURLToPath(new URL('../test/fixtures/models', import.meta.url))
const SCRATCH = await mkdtemp(join(tmpdir(), 'pgml-kit-bench-models-'))
execFileSync('/usr/bin/python3', [fileURLToPath(new URL('../scripts/generate-fixture-models.py', import.meta.url)), '--bench', SCRATCH])
const base = { revision: null, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null } as const
const MODELS = [
  { model: { ...base, id: 'pgml-kit/tiny-bert-32', dimensions: 32 }, modelsDir: FIXTURES, rows: ROWS, batchSizes: [1, 8, 32, 128], label: 'tiny-bert-32 (fixture, 1 layer × 32)' },
  { model: { ...base, id: 'pgml-kit/bench-bert-384', dimensions: 384 }, modelsDir: SCRATCH, rows: Math.round(ROWS / 2), batchSizes: [8, 32, 128], label: 'bench-bert-384 (MiniLM-L6 shape, 6 layers × 384)' },
] as const
const WORDS = 'housing family affordable rent school health care city public park water road tax budget police fire safety library transit bus train bike energy power climate green tree waste recycling permit business jobs wage search model query database table document'.split(' ')

function texts(n: number): { title: string; body: string }[] {
  let seed = 42
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  return Array.from({ length: n }, (_, i) => {
    const words = Array.from({ length: 20 + Math.floor(next() * 60) }, () => WORDS[Math.floor(next() * WORDS.length)])
    return { title: `document ${i}`, body: words.join(' ') }
  })
}

interface Row { target: string; model: string; batchSize: number; rawRowsPerSecond: number; backfillRowsPerSecond: number; ratio: number }

async function benchTarget(name: string, databaseUrl: string): Promise<Row[]> {
  const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-bench-'))
  try {
    await mkdir(join(cwd, 'migrations'))
    await writeFile(join(cwd, 'migrations', '1000_documents.sql'), '-- Up Migration\nCREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text);\n-- Down Migration\nDROP TABLE documents;\n')
    const rows: Row[] = []
    for (const spec of MODELS) {
      await rm(join(cwd, 'migrations', '.pgml-kit-snapshot.json'), { force: true })
      await writeFile(join(cwd, 'pgml-kit.config.ts'), `export default ${JSON.stringify({
        embedder: { modelsDir: spec.modelsDir, allowRemoteModels: false },
        tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: { id: spec.model.id, dimensions: spec.model.dimensions }, mode: 'app' } } } },
      })}\n`)
      const config = await loadConfig('pgml-kit.config.ts', cwd)
      const target = await openTarget({ cwd, databaseUrl })
      try {
        const client = new pg.Client({ connectionString: target.url })
        await client.connect()
        await client.query('DROP TABLE IF EXISTS documents CASCADE; DROP SCHEMA IF EXISTS pgml_kit CASCADE; DROP TABLE IF EXISTS pgmigrations')
        await client.end()
        for (const f of await readdir(join(cwd, 'migrations'))) if (f !== '1000_documents.sql') await rm(join(cwd, 'migrations', f))
        await generate(config, { name: 'bench' })
        await migrate({ databaseUrl, cwd, dir: config.migrationsDir, settings: config.migrations })
        const data = texts(spec.rows)
        const fill = new pg.Client({ connectionString: target.url })
        await fill.connect()
        await fill.query(`INSERT INTO documents (title, body) SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(title text, body text)`, [JSON.stringify(data)])
        await fill.end()
        const column = config.state.embeddingColumns[0]!
        const strings = data.map((d) => `${d.title}\n\n${d.body}`)
        for (const batchSize of spec.batchSizes) {
          const embedder = await LocalEmbedder.load({ model: spec.model, modelsDir: spec.modelsDir, batchSize })
          await embedder.embed(strings.slice(0, 64)) // warm-up
          const timeRaw = async () => {
            const t = performance.now()
            await embedder.embed(strings)
            return spec.rows / ((performance.now() - t) / 1000)
          }
          const before = await timeRaw()
          const t = performance.now()
          const result = await backfill({ url: target.url, column, loadEmbedder: async () => embedder, all: true, restart: true, batchSize })
          const full = result.done / ((performance.now() - t) / 1000)
          const raw = (before + await timeRaw()) / 2
          rows.push({ target: name, model: spec.label, batchSize, rawRowsPerSecond: Math.round(raw), backfillRowsPerSecond: Math.round(full), ratio: Number((full / raw).toFixed(2)) })
          process.stderr.write(`${name} ${spec.model.id} batch ${batchSize}: raw ${raw.toFixed(0)} rows/s, backfill ${full.toFixed(0)} rows/s (${(full / raw).toFixed(2)})\n`)
        }
      } finally {
        await target.close()
      }
    }
    return rows
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
    const version = (await admin.query<{ v: string }>("SELECT split_part(current_setting('server_version'), ' ', 1) AS v")).rows[0]!.v
    results.push(...(await benchTarget(`server (PostgreSQL ${version})`, url.toString())))
  } finally {
    await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench WITH (FORCE)')
    await admin.end()
  }
}
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`
const when = new Date().toISOString().slice(0, 10)
await rm(SCRATCH, { recursive: true, force: true })
await writeFile(new URL('./results/backfill.json', import.meta.url), `${JSON.stringify({ date: when, machine, rows: ROWS, results }, null, 2)}\n`)
const table = ['| target | model | batch size | raw embedder (rows/s) | backfill (rows/s) | backfill / raw |', '|---|---|---:|---:|---:|---:|',
  ...results.map((r) => `| ${r.target} | ${r.model} | ${r.batchSize} | ${r.rawRowsPerSecond} | ${r.backfillRowsPerSecond} | ${r.ratio} |`)].join('\n')
await writeFile(new URL('./results/backfill.md', import.meta.url), `# Backfill throughput (${when})\n\n${ROWS} rows of 20–80 words with tiny-bert-32, ${Math.round(ROWS / 2)} with bench-bert-384; \`pgml-kit backfill --all\` (pipelined: the database reads and writes of neighbouring batches overlap the model's work on this one) vs the raw embedder on the same texts, timed before and after. ${machine}.\n\n${table}\n`)
process.stdout.write(`${table}\n`)
