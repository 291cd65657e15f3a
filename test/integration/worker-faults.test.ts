import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { openTarget } from '../../src/db/target.js'
import { toConnector, type Connector } from '../../src/db/connect.js'
import { TargetError } from '../../src/errors.js'
import type { Embedder } from '../../src/embed/embedder.js'
import type { EmbeddingColumnNode } from '../../src/model/ir.js'
import { backfill } from '../../src/worker/backfill.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { MODELS_DIR, cosine, loadTiny, parseVector } from '../helpers/embedders.js'
import { runCli, startCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { tiers, withClient, type TestDatabase } from '../helpers/targets.js'

const MODEL = { id: 'pgml-kit/tiny-bert-16', dimensions: 16, documentPrefix: 'passage: ' }

function queueConfig(table = 'documents', key: string | string[] = 'id'): PgmlKitConfig {
  return {
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    tables: { [table]: { primaryKey: key, embeddings: { body_embedding: { source: ['title', 'body'], model: MODEL, mode: 'queue' } } } },
  }
}

/** TEST DOUBLE around a real embedder: returns a vector with NaN for texts containing "NAN", as a broken model can. */
class NanEmbedder implements Embedder {
  readonly modelId: string
  readonly dimensions: number
  constructor(private readonly inner: Embedder) {
    this.modelId = inner.modelId
    this.dimensions = inner.dimensions
  }
  async embed(texts: readonly string[], options?: { as?: 'document' | 'query' }): Promise<Float32Array[]> {
    const out = await this.inner.embed(texts, options)
    return out.map((v, i) => (texts[i]!.includes('NAN') ? v.map((x, j) => (j === 3 ? Number.NaN : x)) : v))
  }
}

/** TEST DOUBLE around a real embedder: takes `ms` per call, like a large model on a CPU. */
class SlowEmbedder implements Embedder {
  readonly modelId: string
  readonly dimensions: number
  constructor(private readonly inner: Embedder, private readonly ms: number) {
    this.modelId = inner.modelId
    this.dimensions = inner.dimensions
  }
  async embed(texts: readonly string[], options?: { as?: 'document' | 'query' }): Promise<Float32Array[]> {
    await new Promise((resolve) => setTimeout(resolve, this.ms))
    return this.inner.embed(texts, options)
  }
}

/**
 * TEST DOUBLE around the real connector: its first connection breaks — its socket destroyed, as a
 * terminated backend's is — just before the first statement `breakAt` picks; `refuse` connects
 * fail the way a server that is starting up answers (57P03) before any succeeds.
 */
function faultyConnector(url: string, options: { breakAt?: (sql: string) => boolean; refuse?: number; skip?: number }): Connector & { readonly connects: () => number } {
  const real = toConnector(url)
  let connects = 0
  let broken = false
  let seen = 0
  return {
    description: real.description,
    connects: () => connects,
    async connect(name) {
      connects++
      if (connects <= (options.refuse ?? 0)) {
        throw new TargetError('CONNECTION_FAILED', 'the database system is starting up', { cause: Object.assign(new Error('the database system is starting up'), { code: '57P03' }) })
      }
      const client = await real.connect(name)
      const query = client.query.bind(client) as (...args: unknown[]) => unknown
      ;(client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text ?? ''
        if (!broken && options.breakAt?.(text) && seen++ >= (options.skip ?? 0)) {
          broken = true
          ;(client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy()
        }
        return query(...args)
      }
      return client
    },
  }
}

describe.each(tiers)('the worker under faults on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function setup(config = queueConfig(), table = `CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text)`): Promise<{ column: EmbeddingColumnNode; embedder: Embedder }> {
    db = await tier.create()
    const p = new TestProject(db)
    const names = Object.keys(config.tables)
    await p.writeMigration('1000000000000_create-table.sql', `-- Up Migration\n${table};\n-- Down Migration\nDROP TABLE ${names.join(', ')};\n`)
    await p.writeConfig(config)
    await p.generate()
    await p.migrate()
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    return { column: loaded.state.embeddingColumns[0]!, embedder: await loadTiny() }
  }

  const count = async (sql: string) => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`))[0]!.n
  const run = (column: EmbeddingColumnNode, embedder: Embedder, extra: Partial<Parameters<typeof runWorker>[0]> = {}) =>
    runWorker({ url: db.url, columns: [column], loadEmbedder: async () => embedder, batchSize: 16, maxAttempts: 3, backoffBaseSeconds: 0, backoffMaxSeconds: 0, once: true, ...extra })

  it('a row the database refuses fails alone: the rest of its batch is written, it is retried, then dead-lettered', async () => {
    const { column, embedder } = await setup()
    await db.query(`CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.title = 'refused' AND NEW.body_embedding IS NOT NULL THEN RAISE EXCEPTION 'row % is not allowed a vector', NEW.id; END IF; RETURN NEW; END $$;
      CREATE TRIGGER refuse_row BEFORE UPDATE ON documents FOR EACH ROW EXECUTE FUNCTION refuse_row();`)
    await db.query(`INSERT INTO documents (title, body) SELECT CASE WHEN i = 7 THEN 'refused' ELSE 'title ' || i END, 'body ' || i FROM generate_series(1, 40) AS i`)
    const totals = await run(column, embedder)
    expect(totals).toMatchObject({ written: 39, failed: 3, deadLettered: 1 })
    expect(await count('documents WHERE body_embedding IS NULL')).toBe(1)
    expect(await db.query(`SELECT row_key, attempts, last_error FROM pgml_kit.embedding_dead_letters`)).toEqual([
      { row_key: { id: 7 }, attempts: 3, last_error: expect.stringContaining('row 7 is not allowed a vector') },
    ])
    expect(await count('pgml_kit.embedding_jobs')).toBe(0)
  })

  it('a queued key the table\'s key cannot take fails alone: the rest of the queue is written, it is retried, then dead-lettered', async () => {
    const { column, embedder } = await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 20) AS i`)
    // A job written into the queue by hand (the worker role may insert jobs, for queue retry) with a key that is not a bigint.
    await db.query(`INSERT INTO pgml_kit.embedding_jobs (table_schema, table_name, column_name, row_key) VALUES ('public', 'documents', 'body_embedding', '{"id": "not a number"}')`)
    const totals = await run(column, embedder)
    expect(totals).toMatchObject({ written: 20, failed: 3, deadLettered: 1 })
    expect(await count('documents WHERE body_embedding IS NULL')).toBe(0)
    expect(await db.query(`SELECT row_key, attempts, last_error FROM pgml_kit.embedding_dead_letters`)).toEqual([
      { row_key: { id: 'not a number' }, attempts: 3, last_error: expect.stringMatching(/^its row could not be read: .*invalid input syntax for type bigint/) },
    ])
    expect(await count('pgml_kit.embedding_jobs')).toBe(0)
  })

  if (tier.name === 'server') {
    it('an in-database backfill computes a batch\'s vectors without locking its rows: a write to them does not wait for the embeddings', async () => {
      db = await tier.create()
      // TEST DOUBLE of pgml.embed that takes 50 ms a call, as a busy server's model can.
      await db.query(`CREATE SCHEMA IF NOT EXISTS pgml;
        CREATE FUNCTION pgml.embed(transformer text, "text" text, kwargs jsonb DEFAULT '{}') RETURNS real[] LANGUAGE plpgsql VOLATILE AS $$
        BEGIN PERFORM pg_sleep(0.05); RETURN array_fill(0.5::real, ARRAY[8]); END $$`)
      const p = new TestProject(db)
      await p.writeMigration('1000000000000_create-table.sql', `-- Up Migration\nCREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text, department text);\n-- Down Migration\nDROP TABLE documents;\n`)
      await p.writeConfig({ tables: {} })
      await p.migrate()
      await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 64) AS i`)
      await p.writeConfig({ tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: { id: 'test/double', dimensions: 8 }, mode: 'trigger' } } } } })
      await p.generate()
      await p.migrate()
      const column = (await loadConfig('pgml-kit.config.ts', db.cwd)).state.embeddingColumns[0]!
      // One batch of 64 rows: about 3 s of embedding.
      const running = backfill({ url: db.url, column, batchSize: 64 })
      const embedding = async () => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgml-kit backfill' AND state = 'active' AND query LIKE '%pgml.embed%'`))[0]!.n
      for (let i = 0; i < 100 && await embedding() === 0; i++) await new Promise((r) => setTimeout(r, 50))
      await new Promise((r) => setTimeout(r, 1_000))
      expect(await embedding()).toBe(1)
      // Every row of the batch, by the application, while the batch is embedded: no row is locked yet.
      await withClient(db.url, async (c) => {
        await c.query(`SET lock_timeout = '1s'`)
        expect((await c.query(`UPDATE documents SET department = 'library'`)).rowCount).toBe(64)
      })
      expect(await running).toMatchObject({ written: 64, failedCount: 0 })
      expect(await count(`documents WHERE body_embedding IS NULL OR department IS DISTINCT FROM 'library'`)).toBe(0)
    })
  }

  it('a NaN in a vector fails that row only', async () => {
    const { column, embedder } = await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, CASE WHEN i = 3 THEN 'NAN' ELSE 'body ' || i END FROM generate_series(1, 20) AS i`)
    const totals = await run(column, new NanEmbedder(embedder))
    expect(totals).toMatchObject({ written: 19, deadLettered: 1 })
    expect(await db.query(`SELECT row_key, last_error FROM pgml_kit.embedding_dead_letters`)).toEqual([
      { row_key: { id: 3 }, last_error: expect.stringContaining('NaN') },
    ])
  })

  it('retries a write that hits a deadlock instead of stopping', async () => {
    const { column, embedder } = await setup()
    // TEST DOUBLE for a deadlock with an application's multi-row UPDATE: the first two writes of the
    // vectors raise SQLSTATE 40P01 (deadlock_detected), as PostgreSQL does to one of the two sides.
    // (A sequence counts them: it is not rolled back with the failed statement.)
    await db.query(`CREATE SEQUENCE deadlocks;
      CREATE FUNCTION simulate_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.body_embedding IS NOT NULL AND nextval('deadlocks') <= 2 THEN
          RAISE EXCEPTION 'deadlock detected (simulated)' USING ERRCODE = '40P01';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER simulate_deadlock BEFORE UPDATE ON documents FOR EACH ROW EXECUTE FUNCTION simulate_deadlock();`)
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 30) AS i`)
    const totals = await run(column, embedder)
    expect(totals).toMatchObject({ written: 30, failed: 0, deadLettered: 0 })
    expect(await count('documents WHERE body_embedding IS NULL')).toBe(0)
  })

  it('keeps the leases of a live worker alive, so a short lease never hands its jobs to another worker', async () => {
    const { column, embedder } = await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 8) AS i`)
    // A slow worker with a 1 s lease, whose batch takes 3 s.
    const slow = run(column, new SlowEmbedder(embedder, 3_000), { leaseSeconds: 1, batchSize: 8, workerId: 'slow' })
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    // Past the lease: without a heartbeat the second worker would take the same jobs.
    const other = await run(column, embedder, { workerId: 'other' })
    expect(other.claimed).toBe(0)
    expect(other.outlook).toMatchObject({ leasedElsewhere: 8 })
    expect(await slow).toMatchObject({ claimed: 8, written: 8 })
  })

  it('backfill and the worker keep keys of every type exact: bigint beyond 2^53, numeric, uuid, text, composite', async () => {
    const tables: [string, string | string[], string, string][] = [
      ['big', 'id', 'id bigint PRIMARY KEY', `(9007199254740993::bigint + i)`],
      ['num', 'id', 'id numeric PRIMARY KEY', `(12345678901234567890.123456789 + i)`],
      ['uid', 'id', 'id uuid PRIMARY KEY', `md5(i::text)::uuid`],
      ['txt', 'id', 'id text PRIMARY KEY', `('key ' || i || ' ''quoted'' "x"')`],
      ['comp', ['a', 'b'], 'a bigint, b text, PRIMARY KEY (a, b)', `9007199254740993::bigint + i % 3, 'b' || i`],
    ]
    const config: PgmlKitConfig = { embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false }, tables: {} }
    for (const [name, key] of tables) config.tables[name] = queueConfig(name, key).tables[name]!
    await setup(config, tables.map(([name, , columns]) => `CREATE TABLE ${name} (${columns}, title text, body text)`).join(';\n'))
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const embedder = await loadTiny()
    for (const [name, key, , value] of tables) {
      const column = loaded.state.embeddingColumns.find((c) => c.table === name)!
      const keyColumns = typeof key === 'string' ? key : key.join(', ')
      await db.query(`ALTER TABLE ${name} DISABLE TRIGGER USER`)
      await db.query(`INSERT INTO ${name} (${keyColumns}, title, body) SELECT ${value}, 'title ' || i, 'body ' || i FROM generate_series(1, 30) AS i`)
      await db.query(`ALTER TABLE ${name} ENABLE TRIGGER USER`)
      const controller = new AbortController()
      // Keys rounded through JavaScript numbers never advance: the run would go on forever.
      const result = await backfill({ url: db.url, column, loadEmbedder: async () => embedder, batchSize: 7, signal: controller.signal, onProgress: (p) => { if (p.done > 60) controller.abort() } })
      expect(result, name).toMatchObject({ total: 30, done: 30, written: 30, interrupted: false })
      // And through the queue: an update of every row queues it, the worker writes it back by its exact key.
      await db.query(`UPDATE ${name} SET body = body || ' again'`)
      const totals = await run(column, embedder)
      expect(totals, name).toMatchObject({ written: 30, failed: 0 })
      const rows = await db.query<{ title: string; body: string; v: string }>(`SELECT title, body, body_embedding::text AS v FROM ${name}`)
      const expected = await embedder.embed(rows.map((r) => `${r.title}\n\n${r.body}`))
      rows.forEach((r, i) => expect(cosine(parseVector(r.v), expected[i]!), name).toBeGreaterThan(0.99999))
    }
  })

  it('a connection lost at any step of its start-up — catalog read, model load, pgvector check — or a server still starting: it connects again and finishes the queue', async () => {
    const { column, embedder } = await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 40) AS i`)
    expect(await run(column, embedder)).toMatchObject({ written: 40 })
    const cases: { name: string; connector: ReturnType<typeof faultyConnector>; breakOnLoad?: boolean }[] = [
      { name: 'catalog read', connector: faultyConnector(db.url, { breakAt: (sql) => sql.includes('pgml_kit.embedding_columns') }) },
      { name: 'model load', connector: faultyConnector(db.url, {}), breakOnLoad: true },
      { name: 'pgvector check', connector: faultyConnector(db.url, { breakAt: (sql) => sql.includes('pg_extension') }) },
      { name: 'server starting up', connector: faultyConnector(db.url, { refuse: 2 }) },
    ]
    for (const c of cases) {
      await db.query(`UPDATE documents SET body = body || '.' WHERE id <= 10`)
      const reconnects: string[] = []
      const startupRetries: string[] = []
      let loads = 0
      let connection: pg.Client | undefined
      const connector: Connector = { description: c.connector.description, connect: async (name) => (connection = await c.connector.connect(name)) }
      const totals = await runWorker({
        url: connector, columns: [column], batchSize: 16, once: true, onReconnect: (e) => reconnects.push(e.message), onStartupRetry: (e) => startupRetries.push(e.message),
        loadEmbedder: async () => {
          // The model takes long to load; meanwhile the connection is lost.
          if (c.breakOnLoad && loads++ === 0) (connection as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy()
          return embedder
        },
      })
      // A database never reached yet is a start-up retry (bounded by startupWaitSeconds); one reached and lost, a reconnect.
      if (c.name === 'server starting up') expect([reconnects.length, startupRetries.length], c.name).toEqual([0, 2])
      else expect([reconnects.length >= 1, startupRetries.length], c.name).toEqual([true, 0])
      expect(totals, c.name).toMatchObject({ written: 10, failed: 0, reconnects: reconnects.length })
      expect(await count('pgml_kit.embedding_jobs'), c.name).toBe(0)
    }
    expect(await count('documents WHERE body_embedding IS NULL')).toBe(0)
  })

  it('a database it has never reached is tried for startupWaitSeconds, then the worker gives up with that error', async () => {
    const { column, embedder } = await setup()
    const tries: number[] = []
    const started = Date.now()
    const refusing = faultyConnector(db.url, { refuse: 1_000 })
    await expect(runWorker({ url: refusing, columns: [column], once: true, startupWaitSeconds: 2, onStartupRetry: (_e, ms) => tries.push(ms), loadEmbedder: async () => embedder }))
      .rejects.toMatchObject({ code: 'CONNECTION_FAILED', message: 'the database system is starting up' })
    expect(tries.length).toBeGreaterThanOrEqual(2)
    // It stopped before a pause would have taken it past the two seconds (with room for a slow machine).
    expect(tries.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2_000)
    expect(Date.now() - started).toBeGreaterThanOrEqual(tries.reduce((a, b) => a + b, 0))
    // 0: the first failure ends it (what `worker --once` does by default).
    await expect(runWorker({ url: faultyConnector(db.url, { refuse: 1 }), columns: [column], once: true, startupWaitSeconds: 0, loadEmbedder: async () => embedder }))
      .rejects.toMatchObject({ code: 'CONNECTION_FAILED' })
  })

  it('backfill whose connection is lost mid-run connects again and goes on from the first row not written, with and without --all', async () => {
    const { embedder } = await setup(queueConfig())
    const column = (await loadConfig('pgml-kit.config.ts', db.cwd)).state.embeddingColumns[0]!
    await db.query(`ALTER TABLE documents DISABLE TRIGGER USER`)
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 100) AS i`)
    await db.query(`ALTER TABLE documents ENABLE TRIGGER USER`)
    for (const all of [false, true]) {
      if (all) await db.query(`UPDATE documents SET body_embedding = NULL WHERE id % 2 = 0`)
      const reconnects: string[] = []
      // The third batch's write: the connection drops with two batches committed.
      const connector = faultyConnector(db.url, { breakAt: (sql) => sql.startsWith('UPDATE') && sql.includes('unnest'), skip: 2 })
      const result = await backfill({ url: connector, column, loadEmbedder: async () => embedder, batchSize: 16, all, onReconnect: (e) => reconnects.push(e.message) })
      expect(reconnects, `all: ${all}`).toHaveLength(1)
      expect(connector.connects()).toBe(2)
      expect(result, `all: ${all}`).toMatchObject({ total: 100, done: 100, written: 100, failedCount: 0, interrupted: false })
      expect(await count('documents WHERE body_embedding IS NULL')).toBe(0)
    }
    // Every vector is the model's for its row's text.
    const rows = await db.query<{ t: string; v: string }>(`SELECT title || E'\\n\\n' || body AS t, body_embedding::text AS v FROM documents ORDER BY id LIMIT 5`)
    const expected = await embedder.embed(rows.map((r) => r.t))
    rows.forEach((r, i) => expect(cosine(parseVector(r.v), expected[i]!)).toBeGreaterThan(0.99999))
  })

  it('worker --once says which jobs other workers still hold, and when they become due', async () => {
    await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, repeat('word ', 40) || i FROM generate_series(1, 3000) AS i`)
    // Kill a worker while it holds a batch (polled, so the kill lands inside one).
    let leased = 0
    for (let attempt = 0; attempt < 5 && leased === 0; attempt++) {
      const worker = startCli(['worker', '--batch-size', '256', '--lease', '60', '--poll', '50'], { cwd: db.cwd, databaseUrl: db.databaseUrl || undefined })
      const closed = new Promise((resolve) => worker.on('close', resolve))
      for (let i = 0; i < 600 && (await count('pgml_kit.embedding_jobs WHERE leased_until > now()')) === 0; i++) await new Promise((r) => setTimeout(r, 10))
      worker.kill('SIGKILL')
      await closed
      leased = await count('pgml_kit.embedding_jobs WHERE leased_until > now()')
    }
    expect(leased).toBeGreaterThan(0)
    const once = await runCli(['worker', '--once'], { cwd: db.cwd, databaseUrl: db.databaseUrl || undefined })
    expect(once.code, once.stderr).toBe(0)
    expect(once.stdout).toMatch(new RegExp(`${leased} jobs are leased by other workers .*; the last lease ends in \\d+ s`))
  })
})

describe.each(tiers.filter((t) => t.name === 'server'))('the worker loses its connection on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  it('reconnects after its backend is terminated, gives its leases back, and finishes the queue', async () => {
    db = await tier.create()
    const p = await new TestProject(db).withDocumentsTable(queueConfig())
    await p.generate()
    await p.migrate()
    const column = (await loadConfig('pgml-kit.config.ts', db.cwd)).state.embeddingColumns[0]!
    const embedder = await loadTiny()
    const controller = new AbortController()
    const reconnects: string[] = []
    const worker = runWorker({
      url: db.url, columns: [column], loadEmbedder: async () => new SlowEmbedder(embedder, 50), batchSize: 8, pollIntervalMs: 20,
      signal: controller.signal, onReconnect: (e) => reconnects.push(e.message),
    })
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 200) AS i`)
    await new Promise((resolve) => setTimeout(resolve, 300))
    const killer = new pg.Client({ connectionString: db.url })
    await killer.connect()
    await killer.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgml-kit worker' AND datname = current_database()`)
    await killer.end()
    await db.query(`INSERT INTO documents (title, body) SELECT 'later ' || i, 'body ' || i FROM generate_series(1, 50) AS i`)
    for (let i = 0; i < 400 && (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs'))[0]!.n > 0; i++) await new Promise((r) => setTimeout(r, 50))
    controller.abort()
    const totals = await worker
    expect(reconnects.length).toBeGreaterThanOrEqual(1)
    expect(totals.reconnects).toBe(reconnects.length)
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NULL'))[0]!.n).toBe(0)
  })
})

describe('the worker outlives the embedded owner', () => {
  const cleanups: (() => Promise<unknown>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined)
  })

  it('when the process serving the embedded database is killed, a worker takes it over and finishes the queue', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-owner-'))
    cleanups.push(() => rm(cwd, { recursive: true, force: true }))
    // Generate and migrate with no process left holding the database.
    const project = new TestProject({ cwd, databaseUrl: '', url: '', query: async () => [], session: async () => { throw new Error('no database') }, close: async () => undefined })
    await project.withDocumentsTable(queueConfig())
    await project.generate()
    await project.migrate()
    const owner = startCli(['dev', '--port', '0', '--json'], { cwd })
    cleanups.push(async () => owner.kill('SIGKILL'))
    await new Promise<void>((resolve, reject) => {
      owner.stdout?.on('data', (d: Buffer) => { if (d.toString().includes('"url"')) resolve() })
      owner.on('close', (code) => reject(new Error(`dev exited with ${code}`)))
    })
    const worker = startCli(['worker', '--batch-size', '8', '--poll', '50'], { cwd })
    let workerErr = ''
    worker.stderr?.on('data', (d: Buffer) => { workerErr += d.toString() })
    const workerClosed = new Promise<number | null>((resolve) => worker.on('close', resolve))
    cleanups.push(async () => worker.kill('SIGKILL'))
    const t = await openTarget({ cwd, databaseUrl: '' })
    cleanups.push(() => t.close())
    const write = async (sql: string) => { const c = await t.connect('test'); try { await c.query(sql) } finally { await c.end() } }
    await write(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 200) AS i`)
    for (let i = 0; i < 200 && !/written/.test(workerErr); i++) await new Promise((r) => setTimeout(r, 50))
    const ownerClosed = new Promise((resolve) => owner.on('close', resolve))
    owner.kill('SIGKILL')
    await ownerClosed
    await write(`INSERT INTO documents (title, body) SELECT 'later ' || i, 'body ' || i FROM generate_series(1, 100) AS i`)
    const left = async () => { const c = await t.connect('test'); try { return (await c.query<{ n: number }>(`SELECT (SELECT count(*) FROM pgml_kit.embedding_jobs) + (SELECT count(*) FROM documents WHERE body_embedding IS NULL) AS n`)).rows[0]!.n } finally { await c.end() } }
    for (let i = 0; i < 600 && Number(await left()) > 0; i++) await new Promise((r) => setTimeout(r, 100))
    expect(Number(await left())).toBe(0)
    expect(workerErr).toMatch(/reconnecting/)
    worker.kill('SIGTERM')
    expect(await workerClosed, workerErr).toBe(0)
    expect(workerErr).not.toMatch(/internal error|Unhandled|uncaught/i)
  })
})
