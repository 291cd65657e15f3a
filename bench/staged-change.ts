/**
 * A staged model change end to end under application load, on PostgreSQL with pgml_compat: the
 * latency of writes and searches in every stage against the same load with no change going on.
 *
 * A `documents` table of ROWS rows (default 50,000) has two embedding columns: one embedded by
 * `pgml.embed` in the writing transaction (`trigger`), one by a worker with the local model
 * (`queue`). Both switch to another model through the stages `generate` plans: shadow columns,
 * backfill, switch, drop of the previous columns. Throughout, as least-privilege roles:
 * - WRITERS writers (default 3), each at WRITE_RATE writes/s (default 10; 0 = as fast as they can):
 *   two inserts for every single-row UPDATE of a random row;
 * - SEARCHERS searchers (default 2), each at SEARCH_RATE rounds/s (default 5) of one k=5 search on
 *   each column;
 * - one worker.
 * Every 250 ms a monitor samples `pg_stat_activity` for backends of the database waiting on a lock,
 * and keeps the longest wait of each stage with the statement that waited and the one that blocked
 * it. The `baseline` and `after` stages run the same load for STAGE_SECONDS (default 60) with no
 * change; every other stage lasts as long as its work, and at least MIN_STAGE_SECONDS (default 15).
 * In the end every row must hold the new models' vectors (checked against pgml.embed and the local
 * model), or the bench fails.
 *
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://postgres:...@host/postgres npx tsx bench/staged-change.ts
 *
 * The URL is an administrator's on a server with pgvector and pgml_compat (docker/postgres) that
 * reads the fixture models (mounted at /var/lib/pgml-kit/models, as test/helpers/server-container.ts
 * does). A database and two roles are created for the run and dropped after it.
 * Writes bench/results/staged-change.json and bench/results/staged-change.md.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { PgmlKitConfig } from '../src/config/schema.js'
import { loadConfig } from '../src/config/load.js'
import { createKit } from '../src/query/create-kit.js'
import { runWorker, type WorkerTotals } from '../src/worker/run-worker.js'
import { backfill } from '../src/worker/backfill.js'
import { readColumnWithCopies } from '../src/db/live-catalog.js'
import { localEmbedderLoader } from '../src/embed/embedder-for-config.js'
import { MODELS_DIR, cosine, loadTiny, parseVector } from '../test/helpers/embedders.js'
import { TestProject } from '../test/helpers/project.js'
import type { TestDatabase } from '../test/helpers/targets.js'

const ADMIN_URL = process.env.PGML_KIT_BENCH_DATABASE_URL
const ROWS = Number(process.env.BENCH_ROWS ?? 50_000)
const WRITERS = Number(process.env.BENCH_WRITERS ?? 3)
const WRITE_RATE = Number(process.env.BENCH_WRITE_RATE ?? 10)
const SEARCHERS = Number(process.env.BENCH_SEARCHERS ?? 2)
const SEARCH_RATE = Number(process.env.BENCH_SEARCH_RATE ?? 5)
const STAGE_SECONDS = Number(process.env.BENCH_STAGE_SECONDS ?? 60)
const MIN_STAGE_SECONDS = Number(process.env.BENCH_MIN_STAGE_SECONDS ?? 15)
const OUT = process.env.BENCH_OUT ?? 'staged-change'

const A = { id: 'pgml-kit/tiny-bert-16', dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ' }
const B = { id: 'pgml-kit/tiny-bert-32', dimensions: 32 }
/** The queue column's next model: the same weights with other prefixes (only the catalog's fingerprint tells the vectors apart). */
const A2 = { ...A, documentPrefix: 'search_document: ', queryPrefix: 'search_query: ' }

function config(next: boolean, roles: { app: string; worker: string }): PgmlKitConfig {
  return {
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    roles,
    tables: {
      documents: {
        embeddings: {
          body_embedding: { source: ['title', 'body'], model: next ? B : A, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine' }] },
          title_embedding: { source: 'title', model: next ? A2 : A, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'l2' }] },
        },
      },
    },
  }
}

interface Latencies { count: number; p50: number; p95: number; p99: number; max: number }
interface LockWait { ms: number; waiting: string; blockedBy: string }
interface StageResult {
  readonly stage: string
  readonly seconds: number
  /** The stage's own work (migrate, backfill), in seconds; null for the no-change stages. */
  readonly workSeconds: number | null
  readonly writes: Latencies
  readonly searches: Latencies
  readonly writeErrors: number
  readonly searchErrors: number
  readonly longestLockWait: LockWait | null
}

function stats(xs: number[]): Latencies {
  const s = [...xs].sort((a, b) => a - b)
  const at = (q: number) => (s.length === 0 ? 0 : Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10)
  return { count: s.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s.length === 0 ? 0 : Math.round(s[s.length - 1]! * 10) / 10 }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function main(): Promise<void> {
  if (!ADMIN_URL) throw new Error('set PGML_KIT_BENCH_DATABASE_URL to an administrator\'s URL on a server with pgvector and pgml_compat (see the header of bench/staged-change.ts)')
  const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const dbName = `bench_staged_${suffix}`
  const APP = `bench_app_${suffix}`
  const WORKER = `bench_worker_${suffix}`
  const admin = async (sql: string, url = ADMIN_URL) => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    try { return (await c.query(sql)).rows } finally { await c.end() }
  }
  const withDb = (base: string, user?: string, password?: string) => {
    const u = new URL(base)
    u.pathname = `/${dbName}`
    if (user) { u.username = user; u.password = password ?? '' }
    return u.toString()
  }
  await admin(`CREATE DATABASE ${dbName}`)
  await admin(`CREATE ROLE ${APP} LOGIN PASSWORD 'app'; CREATE ROLE ${WORKER} LOGIN PASSWORD 'worker'`)
  const url = withDb(ADMIN_URL)
  const as = (role: string) => withDb(ADMIN_URL, role, role === APP ? 'app' : 'worker')
  const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-bench-staged-'))
  const pools: pg.Pool[] = []
  try {
    const db: TestDatabase = {
      cwd, databaseUrl: url, url,
      query: async (sql, params) => { const c = new pg.Client({ connectionString: url }); await c.connect(); try { return (await c.query(sql, params)).rows } finally { await c.end() } },
      session: async () => { throw new Error('not used') },
      close: async () => undefined,
    }
    const declared = { app: APP, worker: WORKER }
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-documents.sql', `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text, department text);
GRANT SELECT, INSERT, UPDATE, DELETE ON documents TO ${APP};
-- Down Migration
DROP TABLE documents;
`)
    await p.writeConfig(config(false, declared))
    await p.generate('add-embeddings')
    await p.migrate()
    const loaded = await loadConfig('pgml-kit.config.ts', cwd)
    const loadEmbedder = localEmbedderLoader(loaded.embedder)

    // The table: ROWS rows, embedded as any write is (the trigger in the statement, the queue by a worker).
    const seedStarted = performance.now()
    for (let from = 1; from <= ROWS; from += 1000) {
      await db.query(`INSERT INTO documents (title, body, department) SELECT 'page ' || i, CASE WHEN i % 4 = 0 THEN 'children play in the park, ' || i ELSE 'opening hours of the library, branch ' || i END, 'd' || (i % 7) FROM generate_series($1::int, $2::int) AS i`, [from, Math.min(ROWS, from + 999)])
    }
    await runWorker({ url: as(WORKER), columns: loaded.state.embeddingColumns, loadEmbedder, batchSize: 256, once: true })
    await db.query('ANALYZE documents')
    const seedSeconds = (performance.now() - seedStarted) / 1000
    console.log(`seeded ${ROWS} rows in ${seedSeconds.toFixed(0)} s`)

    const appPool = new pg.Pool({ connectionString: as(APP), max: WRITERS + SEARCHERS + 2 })
    appPool.on('error', () => undefined)
    pools.push(appPool)
    const stopWorker = new AbortController()
    let workerError: unknown = null
    const worker: Promise<WorkerTotals | null> = runWorker({
      url: as(WORKER), columns: loaded.state.embeddingColumns, loadEmbedder, batchSize: 32, pollIntervalMs: 100, signal: stopWorker.signal,
    }).catch((error: unknown) => { workerError = error; return null })

    let stage = 'warm-up'
    let running = true
    const writeMs = new Map<string, number[]>()
    const searchMs = new Map<string, number[]>()
    const writeErrors = new Map<string, string[]>()
    const searchErrors = new Map<string, string[]>()
    const push = <T>(m: Map<string, T[]>, k: string, v: T) => { const xs = m.get(k) ?? []; xs.push(v); m.set(k, xs) }
    const paced = async (rate: number, fn: (i: number) => Promise<void>) => {
      const interval = rate > 0 ? 1000 / rate : 0
      // Start each client at a random phase, so that they do not all fire at once.
      await sleep(Math.random() * interval)
      let next = performance.now()
      for (let i = 1; running; i++) {
        await fn(i)
        next += interval
        const wait = next - performance.now()
        if (wait > 0) await sleep(wait)
        else { next = performance.now(); if (interval === 0) await sleep(1) }
      }
    }
    const writer = (n: number) => paced(WRITE_RATE, async (i) => {
      const at = stage
      const started = performance.now()
      try {
        if (i % 3 === 0) {
          await appPool.query('UPDATE documents SET body = $1 WHERE id = (SELECT floor(random() * (SELECT max(id) FROM documents))::bigint + 1)', [`updated by writer ${n} in ${at}: a park, ${i}`])
        } else {
          await appPool.query('INSERT INTO documents (title, body) VALUES ($1, $2)', [`writer ${n} page ${i}`, `written in ${at}: ${i % 2 ? 'children in the park' : 'library hours'}`])
        }
        push(writeMs, at, performance.now() - started)
      } catch (error) {
        push(writeErrors, at, (error as Error).message)
      }
    })
    const kit = createKit(config(true, declared), { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool: appPool }) }), cwd }) as unknown as {
      search(r: string, q: string, o: object): { select(c: string[]): { execute(): Promise<{ id: number; distance: number }[]> } }
    }
    const searcher = () => paced(SEARCH_RATE, async () => {
      for (const column of ['documents.body_embedding', 'documents.title_embedding']) {
        const at = stage
        const started = performance.now()
        try {
          const hits = await kit.search(column, 'a park for children', { k: 5 }).select(['id']).execute()
          if (hits.length !== 5) push(searchErrors, at, `${column} returned ${hits.length} rows`)
          else push(searchMs, at, performance.now() - started)
        } catch (error) {
          push(searchErrors, at, `${column}: ${(error as Error).message}`)
        }
      }
    })

    // Lock waits, sampled.
    const longest = new Map<string, LockWait>()
    const monitor = new pg.Client({ connectionString: url, application_name: 'bench lock monitor' })
    await monitor.connect()
    const sampling = (async () => {
      while (running) {
        const at = stage
        const { rows } = await monitor.query<{ ms: number; waiting: string; blocked_by: string }>(
          `SELECT (extract(epoch FROM clock_timestamp() - a.query_start) * 1000)::float8 AS ms, left(a.query, 160) AS waiting,
                  coalesce((SELECT string_agg(left(b.query, 160) || ' [' || b.state || ']', ' | ') FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(a.pid))), '') AS blocked_by
           FROM pg_stat_activity a
           WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid()
           ORDER BY 1 DESC LIMIT 1`)
        const top = rows[0]
        if (top && top.ms > (longest.get(at)?.ms ?? 0)) longest.set(at, { ms: Math.round(top.ms), waiting: top.waiting, blockedBy: top.blocked_by })
        await sleep(250)
      }
    })()

    const load = [...Array.from({ length: WRITERS }, (_, n) => writer(n + 1)), ...Array.from({ length: SEARCHERS }, () => searcher())]
    const results: StageResult[] = []
    let stageStarted = performance.now()
    const enter = (name: string) => { stage = name; stageStarted = performance.now(); console.log(new Date().toISOString(), 'stage', name) }
    const leave = async (workSeconds: number | null, atLeastSeconds: number) => {
      const wait = atLeastSeconds * 1000 - (performance.now() - stageStarted)
      if (wait > 0) await sleep(wait)
      const name = stage
      results.push({
        stage: name, seconds: Math.round((performance.now() - stageStarted) / 100) / 10, workSeconds: workSeconds === null ? null : Math.round(workSeconds * 10) / 10,
        writes: stats(writeMs.get(name) ?? []), searches: stats(searchMs.get(name) ?? []),
        writeErrors: writeErrors.get(name)?.length ?? 0, searchErrors: searchErrors.get(name)?.length ?? 0,
        longestLockWait: longest.get(name) ?? null,
      })
      console.log(JSON.stringify(results.at(-1)))
    }
    const work = async (fn: () => Promise<unknown>) => { const t = performance.now(); await fn(); return (performance.now() - t) / 1000 }

    // Cold starts (PL/Python loads each model once per backend) are not the change's doing.
    enter('warm-up')
    await leave(null, 10)
    enter('baseline')
    await leave(null, STAGE_SECONDS)

    enter('shadow')
    await p.writeConfig(config(true, declared))
    const shadowSeconds = await work(async () => {
      const generated = await p.generateWith('switch-model', { allowDestructive: false })
      if (generated.plan.stages.map((s) => s.stage).join() !== 'shadow,shadow') throw new Error(`expected two shadow stages, got ${JSON.stringify(generated.plan.stages)}`)
      await p.migrate()
    })
    await leave(shadowSeconds, MIN_STAGE_SECONDS)

    enter('backfill')
    const configNow = await loadConfig('pgml-kit.config.ts', cwd)
    const backfills: { column: string; how: string; rows: number; seconds: number }[] = []
    const backfillSeconds = await work(async () => {
      for (const column of configNow.state.embeddingColumns) {
        for (const target of await readColumnWithCopies(as(WORKER), column)) {
          const result = await backfill({ url: as(WORKER), column: target, loadEmbedder, batchSize: 64 })
          if (result.failedCount > 0) throw new Error(`backfill of ${target.column}: ${result.failedCount} rows failed: ${JSON.stringify(result.failed.slice(0, 3))}`)
          backfills.push({ column: target.column, how: result.how, rows: result.written, seconds: Math.round(result.seconds * 10) / 10 })
          console.log(JSON.stringify(backfills.at(-1)))
        }
      }
    })
    await leave(backfillSeconds, MIN_STAGE_SECONDS)

    enter('switch')
    const switchSeconds = await work(async () => {
      let switched = await p.generateWith('switch-model', { sized: true, allowDestructive: false })
      // Jobs the writers queued for the queue column's shadow count as on their way; the planner waits for the worker otherwise.
      for (let tries = 0; switched.written.length === 0 && tries < 600; tries++) {
        await sleep(500)
        switched = await p.generateWith('switch-model', { sized: true, allowDestructive: false })
      }
      if (switched.plan.stages.map((s) => s.stage).join() !== 'switch,switch') throw new Error(`expected two switch stages, got ${JSON.stringify(switched.plan.stages)}`)
      await p.migrate()
    })
    await leave(switchSeconds, MIN_STAGE_SECONDS)

    enter('drop')
    const dropSeconds = await work(async () => {
      const dropped = await p.generateWith('drop-previous', { allowDestructive: true })
      if (dropped.plan.stages.map((s) => s.stage).join() !== 'drop-previous,drop-previous') throw new Error(`expected two drop stages, got ${JSON.stringify(dropped.plan.stages)}`)
      await p.migrate()
    })
    await leave(dropSeconds, MIN_STAGE_SECONDS)

    enter('after')
    await leave(null, STAGE_SECONDS)

    running = false
    await Promise.all([...load, sampling])
    await monitor.end()
    // `worker --once` stops when nothing is due; a job deferred for a second (its row was locked, or a
    // switch changed its column under a batch) is due in the next round: drain until the queue is empty.
    let drainFailed = 0
    for (let round = 0; round < 30; round++) {
      drainFailed += (await runWorker({ url: as(WORKER), columns: configNow.state.embeddingColumns, loadEmbedder, once: true })).failed
      if ((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs'))[0]!.n === 0) break
      await sleep(500)
    }
    stopWorker.abort()
    const totals = await worker
    if (workerError) throw workerError
    if (drainFailed > 0) throw new Error(`the final drain failed ${drainFailed} jobs`)

    // Every row holds the new models' vectors.
    const [trigger] = await db.query<{ n: number; missing: number; worst: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE body_embedding IS NULL)::int AS missing,
              min(1 - (body_embedding <=> pgml.embed('pgml-kit/tiny-bert-32', title || E'\\n\\n' || body, '{"normalize_embeddings":true}')::vector(32)))::float8 AS worst
       FROM documents`)
    const rows = await db.query<{ title: string; v: string | null }>('SELECT title, title_embedding::text AS v FROM documents ORDER BY id')
    const local = await (await loadTiny({ ...A2, revision: null, normalize: true, pooling: null }, 256)).embed(rows.map((r) => r.title))
    const queueMissing = rows.filter((r) => r.v === null).length
    const queueWorst = Math.min(...rows.map((r, i) => (r.v === null ? 1 : cosine(parseVector(r.v), local[i]!))))
    const [{ jobs }] = (await db.query<{ jobs: number }>('SELECT count(*)::int AS jobs FROM pgml_kit.embedding_jobs')) as [{ jobs: number }]
    const checks = { rows: trigger!.n, triggerMissing: trigger!.missing, triggerWorstCosine: trigger!.worst, queueMissing, queueWorstCosine: queueWorst, jobsLeft: jobs }
    console.log(JSON.stringify(checks))
    const failedChecks = checks.triggerMissing > 0 || checks.triggerWorstCosine < 0.9999 || checks.queueMissing > 0 || checks.queueWorstCosine < 0.9999 || jobs > 0
    const errors = [...writeErrors.values(), ...searchErrors.values()].flat()

    const [{ version }] = (await db.query<{ version: string }>('SELECT version()')) as [{ version: string }]
    const result = {
      date: new Date().toISOString().slice(0, 10),
      machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`,
      node: process.version, server: version.split(' on ')[0],
      rows: ROWS, seedSeconds: Math.round(seedSeconds),
      load: { writers: WRITERS, writeRatePerWriter: WRITE_RATE, searchers: SEARCHERS, searchRoundsPerSearcher: SEARCH_RATE },
      stages: results, backfills, workerWritten: totals?.written ?? null, checks,
      firstErrors: errors.slice(0, 5),
    }
    await mkdir(join('bench', 'results'), { recursive: true })
    await writeFile(join('bench', 'results', `${OUT}.json`), `${JSON.stringify(result, null, 2)}\n`)
    await writeFile(join('bench', 'results', `${OUT}.md`), markdown(result))
    if (failedChecks || errors.length > 0) throw new Error(`the change lost or broke something: ${JSON.stringify({ checks, firstErrors: errors.slice(0, 5) })}`)
  } finally {
    for (const pool of pools) await pool.end()
    await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined)
    await admin(`DROP ROLE IF EXISTS ${APP}; DROP ROLE IF EXISTS ${WORKER}`).catch(() => undefined)
    await rm(cwd, { recursive: true, force: true })
  }
}

function markdown(r: {
  date: string; machine: string; node: string; server: string | undefined; rows: number; seedSeconds: number
  load: { writers: number; writeRatePerWriter: number; searchers: number; searchRoundsPerSearcher: number }
  stages: StageResult[]; backfills: { column: string; how: string; rows: number; seconds: number }[]
}): string {
  const rate = r.load.writeRatePerWriter > 0 ? `${r.load.writeRatePerWriter} writes/s each` : 'as fast as they can'
  const lines = [
    `# A staged model change under load (${r.date})`,
    '',
    `${r.machine}; Node ${r.node}; ${r.server} + pgvector + pgml_compat. \`npx tsx bench/staged-change.ts\`.`,
    '',
    `${r.rows.toLocaleString('en')} rows (seeded in ${r.seedSeconds} s). Load throughout, as least-privilege roles: ${r.load.writers} writers (${rate}; two inserts for each single-row UPDATE of a random row), ${r.load.searchers} searchers (${r.load.searchRoundsPerSearcher} rounds/s each, a k=5 search on each column), one worker. The \`trigger\` column switches models (tiny-bert-16 → tiny-bert-32, embedded by pgml.embed in the writing transaction), the \`queue\` column changes prefixes (embedded by the worker). \`baseline\` and \`after\` are the same load with no change going on.`,
    '',
    'Latencies in ms, per stage. "work" is the stage\'s own work (migrate; the backfills). The longest lock wait is the longest a backend of the database was seen waiting on a lock (sampled every 250 ms).',
    '',
    '| stage | seconds | work s | writes | write p50 | p99 | max | searches | search p50 | p99 | max | errors | longest lock wait |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...r.stages.map((s) => `| ${s.stage} | ${s.seconds} | ${s.workSeconds ?? '–'} | ${s.writes.count} | ${s.writes.p50} | ${s.writes.p99} | ${s.writes.max} | ${s.searches.count} | ${s.searches.p50} | ${s.searches.p99} | ${s.searches.max} | ${s.writeErrors + s.searchErrors} | ${s.longestLockWait ? `${s.longestLockWait.ms} ms: \`${s.longestLockWait.waiting.replace(/\s+/g, ' ').slice(0, 60)}\` behind \`${s.longestLockWait.blockedBy.replace(/\s+/g, ' ').slice(0, 60)}\`` : 'none seen'} |`),
    '',
    'Backfills (in the `backfill` stage):',
    '',
    '| column | how | rows | seconds |',
    '|---|---|---:|---:|',
    ...r.backfills.map((b) => `| ${b.column} | ${b.how} | ${b.rows} | ${b.seconds} |`),
    '',
  ]
  return lines.join('\n')
}

await main()
