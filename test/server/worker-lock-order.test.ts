import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { claimBatch, embedBatch, finishBatch, releaseBatch, type BatchSettings } from '../../src/worker/process-batch.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { EXTEND_LEASES } from '../../src/sql/render-worker.js'
import type { EmbeddingColumnNode } from '../../src/model/ir.js'
import { InterleavingEmbedder, MODELS_DIR, PoisonEmbedder, loadTiny } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { server, type TestDatabase } from '../helpers/targets.js'

/**
 * An application's multi-row write upserts the queue jobs of its rows (the queue trigger) in the
 * order it meets them. A worker statement that changed some job rows and then waited for one such
 * a write holds closes a cycle, and PostgreSQL ends one side with "deadlock detected" — as often
 * the application's write as the worker's. CI met it once (an UPDATE of every third row beside a
 * running worker). The worker's statements on job rows must never wait for a writer: they skip
 * what a writer holds, and the jobs skipped are given back once the writer is done, not when their
 * lease runs out. (Server tier: the embedded database runs one transaction at a time.)
 */
const config: PgmlKitConfig = {
  embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
  tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'cosine' }] } } } },
}

describe('the worker beside writers that hold job rows', () => {
  let db: TestDatabase
  const clients: pg.Client[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.end().catch(() => undefined)
    await db?.close()
  })
  async function connect(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: db.url })
    c.on('error', () => undefined)
    await c.connect()
    clients.push(c)
    return c
  }
  async function setup(): Promise<EmbeddingColumnNode> {
    db = await server.create()
    const p = await new TestProject(db).withDocumentsTable(config)
    await p.generate()
    await p.migrate()
    return (await loadConfig('pgml-kit.config.ts', db.cwd)).state.embeddingColumns[0]!
  }
  const settings = (over: Partial<BatchSettings> = {}): BatchSettings => ({
    workerId: 'w1', batchSize: 16, leaseSeconds: 60, maxAttempts: 1, backoffBaseSeconds: 0, backoffMaxSeconds: 0, vectorSchema: 'public', ...over,
  })
  const leases = () => db.query<{ id: number; by: string | null }>(`SELECT (row_key->>'id')::int AS id, leased_by AS by FROM pgml_kit.embedding_jobs ORDER BY 1`)

  it('gives back, extends and fails leases without waiting for a writer: a write crossing them in the other order is not a deadlock', async () => {
    const column = await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 4) AS i`)
    const worker = await connect()
    const writer = await connect()
    const claimed = (await claimBatch(worker, column, settings()))!
    expect(claimed.ids).toHaveLength(4)
    const jobOf = async (id: number): Promise<string> => (await db.query<{ job: string }>(`SELECT id::text AS job FROM pgml_kit.embedding_jobs WHERE row_key->>'id' = $1`, [String(id)]))[0]!.job

    // The writer changes row 3, so holds its job, and stays open.
    await writer.query('BEGIN')
    await writer.query(`UPDATE documents SET body = 'changed' WHERE id = 3`)
    // The worker gives its leases back while the writer goes on to row 1: the old statement had
    // freed job 1 and waited for job 3, and the writer then waited for job 1.
    const release = releaseBatch(worker, claimed.ids, settings())
    await writer.query(`UPDATE documents SET body = 'changed too' WHERE id = 1`)
    // Job 3 is held by the writer; job 1 too if the writer reached it first. Neither side waited on the other.
    const held = await release
    const [job1, job3] = [await jobOf(1), await jobOf(3)]
    expect(held).toContain(job3)
    expect(held.every((id) => id === job1 || id === job3)).toBe(true)
    await writer.query('COMMIT')
    expect((await leases()).filter((l) => l.by !== null).map((l) => l.id)).toEqual(held.length === 2 ? [1, 3] : [3])
    // Given back later, once the writer is done.
    expect(await releaseBatch(worker, held, settings())).toEqual([])
    expect((await leases()).every((l) => l.by === null)).toBe(true)

    // The heartbeat and the failure record skip a held job the same way, and what they record
    // for the rest stands. A model that fails every text (it refuses "POISON").
    await db.query(`UPDATE documents SET body = 'POISON ' || id`)
    const again = (await claimBatch(worker, column, settings()))!
    expect(again.ids).toHaveLength(4)
    await writer.query('BEGIN')
    await writer.query(`UPDATE documents SET body = 'held' WHERE id = 2`)
    expect((await worker.query(EXTEND_LEASES, [again.ids, 'w1', 600])).rowCount).toBe(3)
    const failing = await embedBatch(again, new PoisonEmbedder(await loadTiny()))
    expect(await finishBatch(worker, failing, settings())).toMatchObject({ claimed: 4, failed: 4, deadLettered: 3 })
    await writer.query('COMMIT')
    expect(await db.query(`SELECT (row_key->>'id')::int AS id FROM pgml_kit.embedding_dead_letters ORDER BY 1`)).toEqual([{ id: 1 }, { id: 3 }, { id: 4 }])
    // Job 2 is the writer's newer text, not a failure: due, no attempt counted; its lease is given back later.
    expect(await db.query(`SELECT (row_key->>'id')::int AS id, generation::int AS g, attempts, leased_by FROM pgml_kit.embedding_jobs`)).toEqual([{ id: 2, g: 3, attempts: 0, leased_by: 'w1' }])
  })

  it('a running worker embeds a row whose job a writer held at the end of its batch as soon as the writer commits, not when the lease runs out', async () => {
    const column = await setup()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 6) AS i`)
    const writer = await connect()
    const embedder = await loadTiny()
    // A TEST DOUBLE embedder: while the first batch is embedded, a writer changes row 2 and stays open.
    const during = new InterleavingEmbedder(embedder, async () => {
      await writer.query('BEGIN')
      await writer.query(`UPDATE documents SET body = 'newer' WHERE id = 2`)
      setTimeout(() => void writer.query('COMMIT'), 1_500)
    })
    const controller = new AbortController()
    const started = Date.now()
    const run = runWorker({ url: db.url, columns: [column], loadEmbedder: async () => during, batchSize: 16, leaseSeconds: 60, pollIntervalMs: 50, signal: controller.signal })
    const remaining = () => db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs').then((r) => r[0]!.n)
    while ((await remaining()) > 0 && Date.now() - started < 30_000) await new Promise((r) => setTimeout(r, 100))
    controller.abort()
    await run
    // Done long before the 60-second lease could have run out.
    expect(await remaining()).toBe(0)
    const rows = await db.query<{ body: string; v: string | null }>('SELECT body, body_embedding::text AS v FROM documents ORDER BY id')
    expect(rows.every((r) => r.v !== null)).toBe(true)
    const [want] = await embedder.embed(['title 2\n\nnewer'])
    const stored = rows[1]!.v!.slice(1, -1).split(',').map(Number)
    expect(stored.map(Math.fround)).toEqual(Array.from(want!))
  })
})
