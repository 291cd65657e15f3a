import { readFile } from 'node:fs/promises'
import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { createKit } from '../../src/query/create-kit.js'
import { runWorker, type WorkerTotals } from '../../src/worker/run-worker.js'
import { backfill } from '../../src/worker/backfill.js'
import { readColumnWithCopies } from '../../src/db/live-catalog.js'
import { localEmbedderLoader } from '../../src/embed/embedder-for-config.js'
import { MODELS_DIR, cosine, loadTiny, parseVector } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { server, type TestDatabase } from '../helpers/targets.js'
import { leastPrivilegeRoles } from '../helpers/roles.js'

/**
 * The whole staged model change on PostgreSQL with pgml_compat (real in-database embedding, no test
 * double), under load: writers insert and update rows as the application role from before the
 * shadow is added until after the previous column is dropped, a worker runs as the worker role
 * throughout, and searches run as the application role throughout. Every stage is migrated while
 * they run. In the end every row holds the new model's vector, and no search failed.
 */
const A = { id: 'pgml-kit/tiny-bert-16', dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ' }
const B = { id: 'pgml-kit/tiny-bert-32', dimensions: 32 }
/** For the queue column: the same model and dimensions with other prefixes — vectors only the catalog's fingerprint tells apart. */
const A2 = { ...A, documentPrefix: 'search_document: ', queryPrefix: 'search_query: ' }

function config(next: boolean, roles: { app: string; worker: string }): PgmlKitConfig {
  return {
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    roles,
    tables: {
      documents: {
        embeddings: {
          // Embedded in the writing transaction by pgml.embed (pgml_compat), the shadow too.
          body_embedding: { source: ['title', 'body'], model: next ? B : A, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine' }] },
          // Embedded by the worker with the local model.
          title_embedding: { source: 'title', model: next ? A2 : A, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'l2' }] },
        },
      },
    },
  }
}

/** A write slower than this during the change is a stall (see the test). */
const WRITE_STALL_MS = 30_000

describe('a staged model change on PostgreSQL under load (pgml_compat, least-privilege roles)', () => {
  const roles = leastPrivilegeRoles()
  const APP = roles.app
  const WORKER = roles.worker

  let db: TestDatabase
  const pools: pg.Pool[] = []
  afterEach(async () => {
    for (const pool of pools.splice(0)) await pool.end()
    await db?.close()
  })
  const as = (role: string) => roles.as(db.url, role === APP ? 'app' : 'worker')

  it('switches a trigger and a queue column to a new model while writers, a worker and searches run; every row ends with the new model\'s vector', { timeout: 600_000 }, async () => {
    db = await server.create()
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
    await db.query(`INSERT INTO documents (title, body) SELECT 'page ' || i, CASE WHEN i % 4 = 0 THEN 'children play in the park' ELSE 'opening hours of the library, branch ' || i END FROM generate_series(1, 150) AS i`)

    const appPool = new pg.Pool({ connectionString: as(APP), max: 6 })
    // Teardown drops the database WITH (FORCE): a client of this pool still closing hears about it.
    appPool.on('error', () => undefined)
    pools.push(appPool)
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const loadEmbedder = localEmbedderLoader(loaded.embedder)
    // The worker, as the worker role, from the start to the end.
    const stopWorker = new AbortController()
    let workerError: unknown = null
    const worker: Promise<WorkerTotals | null> = runWorker({
      url: as(WORKER), columns: loaded.state.embeddingColumns, loadEmbedder, batchSize: 16, pollIntervalMs: 50, signal: stopWorker.signal,
    }).catch((error: unknown) => { workerError = error; return null })

    // Writers, as the application role.
    let stage = 'before'
    let running = true
    const writes = { inserts: 0, updates: 0, errors: [] as string[] }
    /** The slowest single write of each stage, in ms. */
    const slowest = new Map<string, number>()
    const writer = async (n: number) => {
      let i = 0
      while (running) {
        i++
        const started = performance.now()
        const at = stage
        try {
          if (i % 3 === 0) {
            await appPool.query(`UPDATE documents SET body = $1 WHERE id = (SELECT id FROM documents ORDER BY random() LIMIT 1)`, [`updated by writer ${n} in ${stage}: a park, ${i}`])
            writes.updates++
          } else {
            await appPool.query(`INSERT INTO documents (title, body) VALUES ($1, $2)`, [`writer ${n} page ${i}`, `written in ${stage}: ${i % 2 ? 'children in the park' : 'library hours'}`])
            writes.inserts++
          }
        } catch (error) {
          writes.errors.push(`${stage}: ${(error as Error).message}`)
        }
        slowest.set(at, Math.max(slowest.get(at) ?? 0, performance.now() - started))
        await new Promise((r) => setTimeout(r, 5))
      }
    }
    // Searches, as the application role, through a kit deployed with the new config from the start.
    const kit = createKit(config(true, declared), { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool: appPool }) }), cwd: db.cwd }) as unknown as {
      search(r: string, q: string, o: object): { select(c: string[]): { execute(): Promise<{ id: number; distance: number }[]> } }
    }
    const searches = new Map<string, number>()
    const searchErrors: string[] = []
    const searcher = async () => {
      while (running) {
        for (const column of ['documents.body_embedding', 'documents.title_embedding']) {
          try {
            const hits = await kit.search(column, 'a park for children', { k: 5 }).select(['id']).execute()
            if (hits.length !== 5 || hits.some((h) => typeof h.distance !== 'number')) searchErrors.push(`${stage}: ${column} returned ${JSON.stringify(hits)}`)
            else searches.set(stage, (searches.get(stage) ?? 0) + 1)
          } catch (error) {
            searchErrors.push(`${stage}: ${column}: ${(error as Error).message}`)
          }
        }
        // Let the writers and the worker in between (a failing search must not spin the event loop).
        await new Promise((r) => setTimeout(r, 2))
      }
    }
    const load = [writer(1), writer(2), writer(3), searcher(), searcher()]
    const settle = (ms: number) => new Promise((r) => setTimeout(r, ms))
    /** Stays in the stage until searches and writes have answered in it (cold starts: PL/Python loads each model once per backend). */
    const answered = async () => {
      const writesBefore = writes.inserts + writes.updates
      for (let waited = 0; waited < 60_000 && ((searches.get(stage) ?? 0) < 4 || writes.inserts + writes.updates < writesBefore + 10); waited += 100) await settle(100)
    }
    const log = (what: string) => { if (process.env.DEBUG_LOAD) console.log(new Date().toISOString(), what, JSON.stringify({ writes: { i: writes.inserts, u: writes.updates, e: writes.errors.length }, searches: Object.fromEntries(searches), searchErrors: searchErrors.length, first: searchErrors[0], firstWrite: writes.errors[0] })) }
    const ticker = setInterval(() => log(stage), 3000)
    await answered()

    // 1. The shadows.
    stage = 'shadow'
    await p.writeConfig(config(true, declared))
    expect((await p.generateWith('switch-model', { allowDestructive: false })).plan.stages.map((s) => s.stage)).toEqual(['shadow', 'shadow'])
    await p.migrate()
    await answered()

    // 2. The backfill, while writes go on (the trigger and the queue keep the shadows in sync for new writes).
    stage = 'backfill'
    const configNow = await loadConfig('pgml-kit.config.ts', db.cwd)
    for (const column of configNow.state.embeddingColumns) {
      for (const target of await readColumnWithCopies(as(WORKER), column)) {
        const result = await backfill({ url: as(WORKER), column: target, loadEmbedder, batchSize: 32 })
        expect(result.failedCount, target.column).toBe(0)
      }
    }
    await answered()

    // 3. The switch, once the database says the shadows are filled (queued jobs count as on their way).
    stage = 'switch'
    let switched = await p.generateWith('switch-model', { sized: true, allowDestructive: false })
    for (let tries = 0; switched.written.length === 0 && tries < 20; tries++) {
      await settle(250)
      switched = await p.generateWith('switch-model', { sized: true, allowDestructive: false })
    }
    expect(switched.plan.stages.map((s) => s.stage)).toEqual(['switch', 'switch'])
    // Both columns' fill checks scan the table before the file's first lock that stops writers (the
    // first column's renames): a check behind that lock stalled every write for the length of its scan.
    const switchSql = (await Promise.all(switched.written.map((f) => readFile(f, 'utf8')))).join('\n').split('-- Down Migration')[0]!
    expect(switchSql.lastIndexOf('rows with text have no vector')).toBeGreaterThan(0)
    expect(switchSql.lastIndexOf('rows with text have no vector')).toBeLessThan(switchSql.indexOf('RENAME'))
    await p.migrate()
    await answered()

    // 4. The previous columns go, approved separately.
    stage = 'drop'
    const dropped = await p.generateWith('drop-previous', { allowDestructive: true })
    expect(dropped.plan.stages.map((s) => s.stage)).toEqual(['drop-previous', 'drop-previous'])
    for (const file of dropped.written) {
      const up = (await readFile(file, 'utf8')).split('-- Down Migration')[0]!
      if (up.includes('rows with text have no vector')) expect(up.lastIndexOf('rows with text have no vector')).toBeLessThan(up.search(/DROP (TRIGGER|INDEX|COLUMN)|ALTER TABLE/))
    }
    await p.migrate()
    await answered()

    stage = 'after'
    await answered()
    clearInterval(ticker)
    running = false
    await Promise.all(load)
    // Drain what the last writes queued, then stop the worker. `worker --once` stops when nothing is
    // due: a job deferred for a second (its row was locked, or a switch changed its column under a
    // batch) waits queued for the next round, so drain until the queue is empty.
    let drainFailed = 0
    for (let round = 0; round < 30; round++) {
      drainFailed += (await runWorker({ url: as(WORKER), columns: configNow.state.embeddingColumns, loadEmbedder, once: true })).failed
      if ((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs'))[0]!.n === 0) break
      await settle(500)
    }
    stopWorker.abort()
    const totals = await worker
    expect(workerError).toBeNull()
    expect(drainFailed).toBe(0)

    expect(writes.errors).toEqual([])
    // No write stalls behind the change: a hang detector, not a speed target (the audit saw single-row
    // UPDATEs wait 84–223 s behind an in-database backfill batch that held their rows while it embedded).
    // The bound is far above any healthy write on a loaded 2-core machine.
    if (process.env.DEBUG_LOAD) console.log('slowest write per stage (ms)', JSON.stringify(Object.fromEntries([...slowest].map(([k, v]) => [k, Math.round(v)]))))
    for (const [s, ms] of slowest) expect(ms, `slowest write during ${s}`).toBeLessThan(WRITE_STALL_MS)
    expect(searchErrors.slice(0, 10)).toEqual([])
    for (const s of ['before', 'shadow', 'backfill', 'switch', 'drop', 'after']) expect(searches.get(s) ?? 0, `searches during ${s}`).toBeGreaterThan(0)
    expect(writes.inserts).toBeGreaterThan(100)
    expect(totals?.written).toBeGreaterThan(100)

    // Every row: the trigger column holds what pgml.embed computes now, the queue column what the local model computes.
    const [trigger] = await db.query<{ n: number; missing: number; worst: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE body_embedding IS NULL)::int AS missing,
              min(1 - (body_embedding <=> pgml.embed('pgml-kit/tiny-bert-32', title || E'\\n\\n' || body, '{"normalize_embeddings":true}')::vector(32)))::float8 AS worst
       FROM documents`)
    expect(trigger).toMatchObject({ missing: 0 })
    expect(trigger!.n).toBeGreaterThan(250)
    expect(trigger!.worst).toBeGreaterThan(0.9999)
    const rows = await db.query<{ title: string; body: string; v: string | null }>('SELECT title, body, title_embedding::text AS v FROM documents ORDER BY id')
    const local = await (await loadTiny({ ...A2, revision: null, normalize: true, pooling: null })).embed(rows.map((r) => r.title))
    // (The body says in which stage a row was written or last updated.)
    expect(rows.filter((r) => r.v === null).map((r) => `${r.title}: ${r.body}`)).toEqual([])
    expect(Math.min(...rows.map((r, i) => cosine(parseVector(r.v!), local[i]!)))).toBeGreaterThan(0.9999)
    expect(await db.query('SELECT column_name, model_id, document_prefix, rollout_role FROM pgml_kit.embedding_columns ORDER BY 1')).toEqual([
      { column_name: 'body_embedding', model_id: B.id, document_prefix: '', rollout_role: null }, { column_name: 'title_embedding', model_id: A2.id, document_prefix: A2.documentPrefix, rollout_role: null },
    ])
    expect(await db.query('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs')).toEqual([{ n: 0 }])
  })
})
