import { afterEach, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { claimBatch, embedBatch, finishBatch, processBatch, type BatchSettings } from '../../src/worker/process-batch.js'
import { readLiveColumns } from '../../src/db/live-catalog.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { backfill } from '../../src/worker/backfill.js'
import { readQueueStats, retryDeadLetters } from '../../src/worker/queue.js'
import { readStatus } from '../../src/status.js'
import { resolveConfig } from '../../src/model/resolve.js'
import type { Embedder } from '../../src/embed/embedder.js'
import type { EmbeddingColumnNode } from '../../src/model/ir.js'
import { InterleavingEmbedder, MODELS_DIR, PoisonEmbedder, cosine, loadTiny, parseVector } from '../helpers/embedders.js'
import { runCli, startCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'
import pg from 'pg'

function queueConfig(dimensions = 16): PgmlKitConfig {
  return {
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    tables: {
      documents: {
        embeddings: {
          body_embedding: {
            source: ['title', 'body'],
            model: { id: 'pgml-kit/tiny-bert-16', dimensions, documentPrefix: 'passage: ' },
            mode: 'queue',
            indexes: [{ method: 'hnsw', distance: 'cosine' }],
          },
        },
      },
    },
  }
}

describe.each(tiers)('queue mode on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function setup(config = queueConfig()): Promise<{ p: TestProject; column: EmbeddingColumnNode; embedder: Embedder }> {
    db = await tier.create()
    const p = await new TestProject(db).withDocumentsTable(config)
    await p.generate()
    await p.migrate()
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    return { p, column: loaded.state.embeddingColumns[0]!, embedder: await loadTiny() }
  }

  const settings = (over: Partial<BatchSettings> = {}): BatchSettings => ({
    workerId: 'test-worker', batchSize: 16, leaseSeconds: 60, maxAttempts: 3, backoffBaseSeconds: 0, backoffMaxSeconds: 0, vectorSchema: 'public', ...over,
  })
  const jobs = () => db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs').then((r) => r[0]!.n)

  it('generate refuses to drop the column without --allow-destructive; migrate refuses while its jobs are queued, changing nothing', async () => {
    const { p } = await setup()
    await db.query(`INSERT INTO documents (title, body) VALUES ('a', 'b'), ('c', 'd')`)
    expect(await jobs()).toBe(2)
    await p.writeConfig({ tables: { documents: { embeddings: {} } } })
    await expect(p.generate('drop-embeddings', { allowDestructive: false })).rejects.toThrow(/the config removes data[\s\S]*drop embedding column public\.documents\.body_embedding[\s\S]*stored vectors are deleted/)
    const cli = await runCli(['generate', '--name', 'drop-embeddings'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(cli.code).toBe(2)
    expect(cli.stderr).toMatch(/--allow-destructive/)
    await p.generate('drop-embeddings')
    await expect(p.migrate()).rejects.toThrow(/2 job\(s\) are still queued for public\.documents\.body_embedding/)
    expect(await db.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'documents' AND column_name = 'body_embedding'`)).toEqual([{ n: 1 }])
    expect(await jobs()).toBe(2)
    await db.query('DELETE FROM pgml_kit.embedding_jobs')
    await p.migrate()
    expect(await db.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'documents' AND column_name = 'body_embedding'`)).toEqual([{ n: 0 }])
  })

  /** Every row's stored vector is the model's vector of its current text. */
  async function expectVectorsMatchLatestText(embedder: Embedder) {
    const rows = await db.query<{ title: string | null; body: string | null; v: string | null }>('SELECT title, body, body_embedding::text AS v FROM documents ORDER BY id')
    const texts = rows.map((r) => (r.title === null && r.body === null ? null : `${r.title ?? ''}\n\n${r.body ?? ''}`))
    const expected = await embedder.embed(texts.filter((t): t is string => t !== null))
    let i = 0
    for (const [n, row] of rows.entries()) {
      if (texts[n] === null) {
        expect(row.v).toBeNull()
        continue
      }
      expect(row.v, `row ${n} has no vector`).not.toBeNull()
      expect(cosine(parseVector(row.v!), expected[i++]!), `row ${n} has the vector of an older text`).toBeGreaterThan(0.99999)
    }
  }

  it.each(['vector', 'halfvec'] as const)('stores the model\'s vectors (sent as binary float4) exactly in a %s column, by backfill and by the worker', async (type) => {
    const config = queueConfig()
    config.tables.documents!.embeddings.body_embedding!.type = type
    const { column, embedder } = await setup(config)
    await db.query(`ALTER TABLE documents DISABLE TRIGGER USER`)
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 40) AS i`)
    await db.query(`INSERT INTO documents (department) VALUES ('no text')`)
    await db.query(`ALTER TABLE documents ENABLE TRIGGER USER`)
    expect(await backfill({ url: db.url, column, loadEmbedder: async () => embedder, batchSize: 16 })).toMatchObject({ written: 40, failedCount: 0 })
    await db.query(`INSERT INTO documents (title, body) VALUES ('queued', 'by a write')`)
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      expect(await processBatch(client, column, embedder, settings())).toMatchObject({ written: 1, failed: 0 })
    } finally {
      await client.end()
    }
    const rows = await db.query<{ title: string | null; body: string | null; v: string | null }>('SELECT title, body, body_embedding::text AS v FROM documents ORDER BY id')
    const withText = rows.filter((r) => r.title !== null)
    const expected = await embedder.embed(withText.map((r) => `${r.title}\n\n${r.body}`))
    withText.forEach((row, i) => {
      const stored = parseVector(row.v!)
      const want = Array.from(expected[i]!)
      // float4 exactly; halfvec as pgvector rounds to half precision (relative error below 2^-11).
      if (type === 'vector') expect(stored.map(Math.fround)).toEqual(want)
      else stored.forEach((x, j) => expect(Math.abs(x - want[j]!)).toBeLessThanOrEqual(Math.abs(want[j]!) * 2 ** -10 + 1e-7))
    })
    expect(rows.find((r) => r.title === null)?.v).toBeNull()
  })

  it('queues writes and dequeues deletes in the writing transaction', async () => {
    await setup()
    await db.query(`INSERT INTO documents (title, body) VALUES ('a', 'b'), ('c', 'd')`)
    expect(await jobs()).toBe(2)
    await db.query(`UPDATE documents SET department = 'x'`)
    await db.query(`UPDATE documents SET title = title`)
    expect(await db.query('SELECT generation::int AS g FROM pgml_kit.embedding_jobs ORDER BY id')).toEqual([{ g: 1 }, { g: 1 }])
    await db.query(`UPDATE documents SET body = 'changed' WHERE title = 'a'`)
    expect(await db.query('SELECT generation::int AS g FROM pgml_kit.embedding_jobs ORDER BY id')).toEqual([{ g: 2 }, { g: 1 }])
    await db.query(`DELETE FROM documents WHERE title = 'c'`)
    expect(await db.query(`SELECT row_key FROM pgml_kit.embedding_jobs`)).toEqual([{ row_key: { id: 1 } }])
    await db.query(`BEGIN; INSERT INTO documents (title, body) VALUES ('rolled', 'back'); ROLLBACK;`)
    expect(await jobs()).toBe(1)
  })

  it('rows inserted and updated while the worker runs all end with the vector of their latest text', async () => {
    const { column, embedder } = await setup()
    const controller = new AbortController()
    const worker = runWorker({ url: db.url, columns: [column], loadEmbedder: async () => embedder, batchSize: 8, pollIntervalMs: 20, signal: controller.signal })
    try {
      // Multi-row writes beside the running worker: never a deadlock (test/server/worker-lock-order.test.ts).
      for (let round = 0; round < 5; round++) {
        await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'round ${round} body ' || i FROM generate_series(1, 40) AS i`)
        await db.query(`UPDATE documents SET body = body || ' edit ${round}' WHERE id % 3 = ${round % 3}`)
        await db.query(`UPDATE documents SET title = NULL, body = NULL WHERE id = 7`)
        await new Promise((r) => setTimeout(r, 30))
      }
      for (let i = 0; i < 600 && (await jobs()) > 0; i++) await new Promise((r) => setTimeout(r, 50))
    } finally {
      // Stopped before the database is dropped, also when a write above failed.
      controller.abort()
      await worker.catch(() => undefined)
    }
    const totals = await worker
    expect(await jobs()).toBe(0)
    expect(totals.written).toBeGreaterThanOrEqual(200)
    await expectVectorsMatchLatestText(embedder)
  })

  it('skips the write when the source changes while a batch is embedded, and the newer job writes', async () => {
    const { column, embedder } = await setup()
    await db.query(`INSERT INTO documents (title, body) VALUES ('original', 'text')`)
    const interleaving = new InterleavingEmbedder(embedder, () => db.query(`UPDATE documents SET body = 'newer text'`).then(() => undefined))
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      const first = await processBatch(client, column, interleaving, settings())
      expect(first).toMatchObject({ claimed: 1, written: 0, stale: 1, completed: 0 })
      expect(await db.query('SELECT body_embedding FROM documents')).toEqual([{ body_embedding: null }])
      expect(await db.query('SELECT generation::int AS g, leased_by FROM pgml_kit.embedding_jobs')).toEqual([{ g: 2, leased_by: null }])
      const second = await processBatch(client, column, embedder, settings())
      expect(second).toMatchObject({ claimed: 1, written: 1, completed: 1 })
    } finally {
      await client.end()
    }
    await expectVectorsMatchLatestText(embedder)
  })

  it('writes nothing when a migration changes the column\'s catalog row while the batch is embedded, and keeps the jobs (worker and backfill)', async () => {
    const { column, embedder } = await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 6) AS i`)
    const live = () => readLiveColumns((sql, params) => db.query(sql, [...params]).then((rows) => ({ rows })), [column]).then((l) => l![0]!.fingerprint)
    const fingerprint = await live()
    // A TEST DOUBLE embedder during whose work "a migration" changes what the catalog says the column is.
    const prefixChange = `UPDATE pgml_kit.embedding_columns SET document_prefix = 'other: ' WHERE column_name = 'body_embedding'`
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      const claimed = await claimBatch(client, column, settings(), fingerprint)
      const embedded = await embedBatch(claimed!, new InterleavingEmbedder(embedder, () => db.query(prefixChange).then(() => undefined)))
      expect(await finishBatch(client, embedded, settings())).toMatchObject({ claimed: 6, written: 0, catalogChanged: true })
      expect(await db.query('SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NOT NULL')).toEqual([{ n: 0 }])
      // The jobs stay, their leases given back, no attempt counted.
      expect(await db.query('SELECT count(*)::int AS n, max(attempts)::int AS attempts, count(leased_by)::int AS leased FROM pgml_kit.embedding_jobs')).toEqual([{ n: 6, attempts: 0, leased: 0 }])
      // A column renamed away while its batch is embedded: the same, not six failed rows. (The jobs wait a second
      // before they are taken again, as after any write that found nothing to write: made due now.)
      await db.query('UPDATE pgml_kit.embedding_jobs SET next_attempt_at = now()')
      const renamed = await claimBatch(client, column, settings(), await live())
      const away = await embedBatch(renamed!, new InterleavingEmbedder(embedder, () => db.query('ALTER TABLE documents RENAME COLUMN body_embedding TO elsewhere').then(() => undefined)))
      expect(await finishBatch(client, away, settings())).toMatchObject({ written: 0, failed: 0, catalogChanged: true })
      expect(await db.query('SELECT max(attempts)::int AS attempts FROM pgml_kit.embedding_jobs')).toEqual([{ attempts: 0 }])
      await db.query('ALTER TABLE documents RENAME COLUMN elsewhere TO body_embedding')
    } finally {
      await client.end()
    }
    // backfill stops the same way, with every batch before written, and says to run it again.
    await db.query(`UPDATE pgml_kit.embedding_columns SET document_prefix = '' WHERE column_name = 'body_embedding'`)
    const changing = new InterleavingEmbedder(embedder, () => db.query(prefixChange).then(() => undefined))
    await expect(backfill({ url: db.url, column, loadEmbedder: async () => changing })).rejects.toMatchObject({ code: 'CATALOG_CHANGED', hint: expect.stringMatching(/run pgml-kit backfill again/) })
    expect(await db.query('SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NOT NULL')).toEqual([{ n: 0 }])
  })

  // The worker never waits on an application's row lock, so it cannot deadlock with a multi-row
  // UPDATE (which failed the writers test above once, on the application's side). Server only:
  // on the embedded database every connection shares one session.
  if (tier.name === 'server') it('skips rows an application transaction holds locked instead of waiting, and writes them later', async () => {
    const { column, embedder } = await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 10) AS i`)
    const app = new pg.Client({ connectionString: db.url })
    const worker = new pg.Client({ connectionString: db.url })
    await app.connect()
    await worker.connect()
    try {
      await app.query('BEGIN')
      await app.query(`UPDATE documents SET department = 'held' WHERE id IN (3, 7)`)
      // Were the worker to wait for those locks, lock_timeout would fail its write.
      await worker.query(`SET lock_timeout = '2s'`)
      expect(await processBatch(worker, column, embedder, settings())).toMatchObject({ claimed: 10, written: 8, completed: 8, failed: 0 })
      expect(await jobs()).toBe(2)
      // Their jobs wait a moment (not taken again at once while the transaction goes on).
      expect(await db.query(`SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs WHERE next_attempt_at > now() AND leased_by IS NULL`)).toEqual([{ n: 2 }])
      expect(await processBatch(worker, column, embedder, settings())).toMatchObject({ claimed: 0 })
      await app.query('COMMIT')
      let after = await processBatch(worker, column, embedder, settings())
      for (let i = 0; i < 100 && after.claimed === 0; i++) {
        await new Promise((r) => setTimeout(r, 50))
        after = await processBatch(worker, column, embedder, settings())
      }
      expect(after).toMatchObject({ claimed: 2, written: 2, completed: 2 })
    } finally {
      await app.end()
      await worker.end()
    }
    expect(await jobs()).toBe(0)
    await expectVectorsMatchLatestText(embedder)
  })

  // On the embedded database every connection shares one session, so SKIP LOCKED is never
  // contended there: this only proves something against a server.
  if (tier.name === 'server') it('two workers never write the same job twice', async () => {
    const { column, embedder } = await setup()
    await db.query(`CREATE TABLE vector_writes (id bigint, at timestamptz DEFAULT clock_timestamp());
      CREATE FUNCTION log_vector_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO vector_writes (id) VALUES (NEW.id); RETURN NEW; END $$;
      CREATE TRIGGER log_vector_write AFTER UPDATE OF body_embedding ON documents FOR EACH ROW EXECUTE FUNCTION log_vector_write();`)
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 300) AS i`)
    const run = (workerId: string) => runWorker({ url: db.url, columns: [column], loadEmbedder: async () => embedder, batchSize: 7, once: true, workerId })
    const [a, b] = await Promise.all([run('worker-a'), run('worker-b')])
    expect(a.written + b.written).toBe(300)
    expect(await jobs()).toBe(0)
    expect(await db.query('SELECT count(*)::int AS rows, count(DISTINCT id)::int AS distinct_rows FROM vector_writes')).toEqual([{ rows: 300, distinct_rows: 300 }])
    await expectVectorsMatchLatestText(embedder)
  })

  it('a poison row reaches the dead-letter table after N attempts while the others flow; retry requeues it', async () => {
    const { column, embedder } = await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, CASE WHEN i = 5 THEN 'POISON' ELSE 'body ' || i END FROM generate_series(1, 20) AS i`)
    const poison = new PoisonEmbedder(embedder)
    const totals = await runWorker({ url: db.url, columns: [column], loadEmbedder: async () => poison, batchSize: 8, maxAttempts: 3, backoffBaseSeconds: 0, backoffMaxSeconds: 0, once: true })
    expect(totals).toMatchObject({ written: 19, failed: 3, deadLettered: 1 })
    expect(await jobs()).toBe(0)
    expect(await db.query(`SELECT row_key, attempts, last_error FROM pgml_kit.embedding_dead_letters`)).toEqual([
      { row_key: { id: 5 }, attempts: 3, last_error: expect.stringMatching(/cannot embed "passage: title 5\\n\\nPOISON"|cannot embed/) },
    ])
    expect(await db.query(`SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NULL`)).toEqual([{ n: 1 }])
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      expect(await readQueueStats(client)).toEqual([{ column: 'public.documents.body_embedding', depth: 0, leased: 0, retrying: 0, oldestSeconds: null, deadLetters: 1 }])
      expect(await retryDeadLetters(client)).toBe(1)
      expect(await readQueueStats(client)).toEqual([expect.objectContaining({ depth: 1, deadLetters: 0 })])
    } finally {
      await client.end()
    }
    // Fixed at the source: the requeued job now succeeds.
    await db.query(`UPDATE documents SET body = 'cured' WHERE id = 5`)
    await runWorker({ url: db.url, columns: [column], loadEmbedder: async () => embedder, once: true })
    await expectVectorsMatchLatestText(embedder)
  })

  it('refuses a model of the wrong dimension before claiming or writing anything', async () => {
    const { column } = await setup(queueConfig(32))
    await db.query(`INSERT INTO documents (title, body) VALUES ('a', 'b')`)
    const config = await loadConfig('pgml-kit.config.ts', db.cwd)
    const { localEmbedderLoader } = await import('../../src/embed/embedder-for-config.js')
    const error = await runWorker({ url: db.url, columns: [column], loadEmbedder: localEmbedderLoader(config.embedder), once: true }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'MODEL_DIMENSIONS_MISMATCH' })
    expect(await db.query('SELECT attempts, leased_by FROM pgml_kit.embedding_jobs')).toEqual([{ attempts: 0, leased_by: null }])
    expect(await db.query('SELECT body_embedding FROM documents')).toEqual([{ body_embedding: null }])
  })

  it('serves only columns in mode "queue": a trigger column\'s model is never loaded, and with none the worker says it has nothing to do', async () => {
    // No migration yet: no catalog, so the worker goes by the config's columns.
    db = await tier.create()
    const column = resolveConfig(queueConfig()).state.embeddingColumns[0]!
    const trigger: EmbeddingColumnNode = { ...column, column: 'title_embedding', mode: 'trigger', model: { ...column.model, id: 'no/such-local-model' } }
    const loaded: string[] = []
    const loadEmbedder = async (c: EmbeddingColumnNode) => {
      loaded.push(c.column)
      return loadTiny()
    }
    await expect(runWorker({ url: db.url, columns: [trigger], loadEmbedder, once: true })).rejects.toMatchObject({ code: 'NO_QUEUE_COLUMNS' })
    await expect(runWorker({ url: db.url, columns: [], loadEmbedder, once: true })).rejects.toMatchObject({ code: 'NO_QUEUE_COLUMNS' })
    // The queue column is served (here it stops at the missing pgvector), the trigger column is not.
    await expect(runWorker({ url: db.url, columns: [column, trigger], loadEmbedder, once: true })).rejects.toMatchObject({ code: 'PGVECTOR_MISSING' })
    expect(loaded).toEqual(['body_embedding'])
  })

  it('a worker process killed with SIGKILL mid-batch loses no job', async () => {
    await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, repeat('word ', 60) || i FROM generate_series(1, 1500) AS i`)
    const worker = startCli(['worker', '--batch-size', '4', '--lease', '2', '--poll', '50'], { cwd: db.cwd, databaseUrl: db.databaseUrl || undefined })
    await new Promise<void>((resolve, reject) => {
      worker.stderr?.on('data', (d: Buffer) => { if (/written/.test(d.toString())) resolve() })
      worker.on('close', (code) => reject(new Error(`worker exited early with ${code}`)))
    })
    const closed = new Promise((resolve) => worker.on('close', resolve))
    worker.kill('SIGKILL')
    await closed
    const left = await jobs()
    expect(left).toBeGreaterThan(0)
    // Its leases expire; another worker finishes everything.
    await new Promise((r) => setTimeout(r, 2500))
    const finish = await runCli(['worker', '--once', '--json'], { cwd: db.cwd, databaseUrl: db.databaseUrl || undefined })
    expect(finish.code, finish.stderr).toBe(0)
    expect(await jobs()).toBe(0)
    expect(await db.query(`SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NULL`)).toEqual([{ n: 0 }])
    expect(await db.query(`SELECT count(*)::int AS n FROM pgml_kit.embedding_dead_letters`)).toEqual([{ n: 0 }])
  })

  it('a worker process stops gracefully on SIGTERM, leaving no lease behind', async () => {
    await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 2000) AS i`)
    const worker = startCli(['worker', '--batch-size', '8', '--lease', '600'], { cwd: db.cwd, databaseUrl: db.databaseUrl || undefined })
    await new Promise<void>((resolve, reject) => {
      worker.stderr?.on('data', (d: Buffer) => { if (/written/.test(d.toString())) resolve() })
      worker.on('close', (code) => reject(new Error(`worker exited early with ${code}`)))
    })
    const closed = new Promise<number | null>((resolve) => worker.on('close', resolve))
    worker.kill('SIGTERM')
    expect(await closed).toBe(0)
    expect(await db.query(`SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs WHERE leased_by IS NOT NULL`)).toEqual([{ n: 0 }])
  })

  it('backfill stops on SIGTERM as on Ctrl-C: what it wrote stays, and it says to run it again', async () => {
    await setup()
    await db.query(`ALTER TABLE documents DISABLE TRIGGER USER`)
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 3000) AS i`)
    await db.query(`ALTER TABLE documents ENABLE TRIGGER USER`)
    const run = startCli(['backfill', 'documents.body_embedding', '--batch-size', '8'], { cwd: db.cwd, databaseUrl: db.databaseUrl || undefined })
    let out = ''
    run.stdout?.on('data', (d: Buffer) => { out += d.toString() })
    const closed = new Promise<number | null>((resolve) => run.on('close', resolve))
    const written = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NOT NULL'))[0]!.n
    for (let i = 0; i < 300 && (await written()) === 0; i++) await new Promise((r) => setTimeout(r, 50))
    run.kill('SIGTERM')
    expect(await closed).toBe(1)
    expect(out).toMatch(/vectors written .* interrupted: run it again to continue/)
    const kept = await written()
    expect(kept).toBeGreaterThan(0)
    expect(kept).toBeLessThan(3000)
  })

  it('backfill fills missing vectors in batches, and resumes an interrupted --all run', async () => {
    const { column, embedder } = await setup()
    await db.query(`ALTER TABLE documents DISABLE TRIGGER USER`)
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 130) AS i`)
    await db.query(`INSERT INTO documents (department) VALUES ('no text')`)
    await db.query(`ALTER TABLE documents ENABLE TRIGGER USER`)
    // status counts what is left: 130 rows with text, none embedded (the row without text needs nothing).
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const vectors = async () => (await readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state })).embeddingColumns[0]?.progress
    expect(await vectors()).toEqual({ withText: 130, missing: 130 })
    const progress: number[] = []
    const result = await backfill({ url: db.url, column, loadEmbedder: async () => embedder, batchSize: 50, onProgress: (p) => progress.push(p.done) })
    expect(result).toMatchObject({ how: 'local', total: 130, done: 130, written: 130, skipped: 0, failedCount: 0, interrupted: false })
    expect(progress).toEqual([0, 50, 100, 130])
    expect(await vectors()).toEqual({ withText: 130, missing: 0 })
    await expectVectorsMatchLatestText(embedder)
    expect((await backfill({ url: db.url, column, loadEmbedder: async () => embedder })).total).toBe(0)

    // --all, interrupted after its first batch, then resumed from its checkpoint.
    const controller = new AbortController()
    const first = await backfill({ url: db.url, column, loadEmbedder: async () => embedder, all: true, batchSize: 40, signal: controller.signal, onProgress: (p) => { if (p.done >= 40) controller.abort() } })
    expect(first).toMatchObject({ total: 131, done: 40, interrupted: true })
    expect(await db.query(`SELECT rows_done::int AS n FROM pgml_kit.backfill_checkpoints`)).toEqual([{ n: 40 }])
    const resumed = await backfill({ url: db.url, column, loadEmbedder: async () => embedder, all: true, batchSize: 40 })
    expect(resumed).toMatchObject({ total: 131, done: 131, interrupted: false })
    expect(await db.query(`SELECT count(*)::int AS n FROM pgml_kit.backfill_checkpoints`)).toEqual([{ n: 0 }])
    await expectVectorsMatchLatestText(embedder)
  })

  it('backfill ends at the last row present when it started: rows inserted while it runs are left to their queue, not chased', async () => {
    const { column, embedder } = await setup()
    await db.query(`ALTER TABLE documents DISABLE TRIGGER USER; INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 60) AS i; ALTER TABLE documents ENABLE TRIGGER USER`)
    // A TEST DOUBLE embedder that, while it embeds each batch, has a writer insert ten more rows
    // (queued, no vector yet): without an end, the backfill would follow them for as long as they come.
    let inserted = 0
    const writing: Embedder = {
      modelId: embedder.modelId, dimensions: embedder.dimensions,
      async embed(texts, options) {
        if (inserted < 200) {
          inserted += 10
          await db.query(`INSERT INTO documents (title, body) SELECT 'late ' || i, 'body' FROM generate_series(1, 10) AS i`)
        }
        return embedder.embed(texts, options)
      },
    }
    const result = await backfill({ url: db.url, column, loadEmbedder: async () => writing, batchSize: 10 })
    expect(result).toMatchObject({ total: 60, done: 60, written: 60, interrupted: false })
    expect(inserted).toBe(60)
    const late = await db.query<{ n: number; queued: number }>(`SELECT count(*)::int AS n, (SELECT count(*)::int FROM pgml_kit.embedding_jobs) AS queued FROM documents WHERE title LIKE 'late %' AND body_embedding IS NULL`)
    expect(late[0]!.n).toBeGreaterThan(0)
    // Each has its job: the worker embeds them (a later backfill would too).
    expect(late[0]!.queued).toBeGreaterThanOrEqual(late[0]!.n)
  })
})
