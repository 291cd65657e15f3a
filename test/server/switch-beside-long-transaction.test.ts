import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { MODELS_DIR } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { server, type TestDatabase } from '../helpers/targets.js'

/**
 * The switch of a staged model change takes ACCESS EXCLUSIVE for an instant. Beside a long
 * transaction that holds any lock on the table (here a report that read it and stays open), it
 * must not queue every writer behind it for as long as that transaction lasts: it gives up after
 * the file's lock_timeout, changes nothing, and writers that queued behind it go on. Once the long
 * transaction ends the same migration runs. (Server tier: the embedded database serves one
 * transaction at a time, so there another connection's open transaction holds off the migration's
 * connection altogether.)
 */
const A = { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }
const B = { id: 'pgml-kit/tiny-bert-32', dimensions: 32 }
const config = (model: typeof A | typeof B): PgmlKitConfig => ({
  embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
  tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'cosine' }] } } } },
})

describe('the switch beside a long transaction', () => {
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

  it('gives up after lock_timeout changing nothing, lets the writers queued behind it go on, and runs once the transaction ends', async () => {
    db = await server.create()
    const p = await new TestProject(db).withDocumentsTable(config(A))
    await p.generate('add-embeddings')
    await p.migrate()
    await db.query(`INSERT INTO documents (title, body) SELECT 'page ' || i, 'body ' || i FROM generate_series(1, 30) AS i`)
    await p.work()
    await p.writeConfig(config(B))
    await p.generate('shadow')
    await p.migrate()
    await p.backfill()
    const [switchFile] = await p.generate('switch', { sized: true, allowDestructive: false })
    expect(switchFile).toMatch(/switch/)
    const catalog = () => db.query('SELECT column_name, model_id, rollout_role FROM pgml_kit.embedding_columns ORDER BY 1')
    const before = await catalog()

    // A report reads the table and stays open: its ACCESS SHARE lock conflicts with the rename.
    const report = await connect()
    await report.query('BEGIN')
    await report.query('SELECT count(*) FROM documents')
    const migration = p.migrate()
    // A writer arriving while the switch waits for its lock queues behind it...
    const writer = await connect()
    const waitingForLock = async () => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`))[0]!.n
    const until = async (n: number) => {
      for (let i = 0; i < 400 && (await waitingForLock()) < n; i++) await new Promise((r) => setTimeout(r, 25))
      return waitingForLock()
    }
    expect(await until(1)).toBe(1)
    const insert = writer.query(`INSERT INTO documents (title, body) VALUES ('written during the wait', 'a park')`)
    expect(await until(2)).toBe(2)
    await expect(migration).rejects.toThrow(/lock timeout/)
    // ...and goes on once the switch gave up; nothing of the switch stayed.
    await insert
    expect(await catalog()).toEqual(before)
    expect((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'documents'::regclass AND attname = 'body_embedding__next' AND NOT attisdropped`))[0]!.n).toBe(1)
    expect(await db.query('SELECT count(*)::int AS n FROM pgmigrations WHERE name LIKE $1', ['%switch%'])).toEqual([{ n: 0 }])

    // The report ends; the same migration now runs, the row written meanwhile is embedded by the worker with the new model.
    await report.query('COMMIT')
    await p.migrate()
    expect(await catalog()).toEqual([
      { column_name: 'body_embedding', model_id: B.id, rollout_role: null },
      { column_name: 'body_embedding__previous', model_id: A.id, rollout_role: 'previous' },
    ])
    await p.work()
    expect(await db.query(`SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NULL OR vector_dims(body_embedding) <> 32`)).toEqual([{ n: 0 }])
  })
})
