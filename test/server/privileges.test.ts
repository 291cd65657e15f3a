import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import { createEmbeddingWriter } from '../../src/app/embedding-writer.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { createKit } from '../../src/query/create-kit.js'
import { readStatus } from '../../src/status.js'
import { migrate } from '../../src/migrations/run.js'
import type { PgmlKitError } from '../../src/errors.js'
import { backfill } from '../../src/worker/backfill.js'
import { retryDeadLetters } from '../../src/worker/queue.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { MODELS_DIR, loadTiny } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { server, type TestDatabase } from '../helpers/targets.js'
import { leastPrivilegeRoles } from '../helpers/roles.js'

const MODEL = { id: 'pgml-kit/tiny-bert-16', dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ' }

/**
 * Production apps never run as the role that migrates. Here the application role has only
 * SELECT/INSERT/UPDATE/DELETE on its table, and the worker role only what pgml-kit grants it.
 */
describe('least-privilege roles on PostgreSQL', () => {
  const roles = leastPrivilegeRoles()
  const APP = roles.app
  const WORKER = roles.worker
  const suffix = APP.slice('pgml_kit_app_'.length)

  let db: TestDatabase
  const pools: pg.Pool[] = []
  afterEach(async () => {
    for (const pool of pools.splice(0)) await pool.end()
    await db?.close()
  })

  const asApp = () => roles.as(db.url, 'app')
  const asWorker = () => roles.as(db.url, 'worker')
  async function query<R extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    try { return (await c.query<R>(sql, params)).rows } finally { await c.end() }
  }

  async function setup(config: PgmlKitConfig, extra = ''): Promise<TestProject> {
    db = await server.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-documents.sql', `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text, department text);
GRANT SELECT, INSERT, UPDATE, DELETE ON documents TO ${APP};
${extra}
-- Down Migration
DROP TABLE documents;
`)
    await p.writeConfig(config)
    await p.generate()
    await p.migrate()
    return p
  }

  const config = (embeddings: PgmlKitConfig['tables'][string]['embeddings']): PgmlKitConfig => ({
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    roles: { app: APP, worker: WORKER },
    tables: { documents: { embeddings } },
  })

  it('queue mode: the app role writes, the worker role embeds, backfills and retries, status checks the grants', async () => {
    await setup(config({ body_embedding: { source: ['title', 'body'], model: MODEL, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'cosine' }] } }))
    await query(asApp(), `INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 30) AS i`)
    await query(asApp(), `UPDATE documents SET body = 'changed' WHERE id = 3`)
    await query(asApp(), `DELETE FROM documents WHERE id = 4`)
    expect(await db.query('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs')).toEqual([{ n: 29 }])
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const column = loaded.state.embeddingColumns[0]!
    const embedder = await loadTiny()
    const totals = await runWorker({ url: asWorker(), columns: [column], loadEmbedder: async () => embedder, once: true })
    expect(totals).toMatchObject({ written: 29, failed: 0 })

    // Rows written with the triggers off reach their vectors through backfill, as the worker role.
    await db.query(`ALTER TABLE documents DISABLE TRIGGER USER; INSERT INTO documents (title, body) VALUES ('quiet', 'row'); ALTER TABLE documents ENABLE TRIGGER USER`)
    expect(await backfill({ url: asWorker(), column, loadEmbedder: async () => embedder })).toMatchObject({ written: 1 })
    expect(await db.query('SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NULL')).toEqual([{ n: 0 }])
    await db.query(`INSERT INTO pgml_kit.embedding_dead_letters (table_schema, table_name, column_name, row_key, attempts, first_enqueued_at) VALUES ('public', 'documents', 'body_embedding', '{"id": 1}', 5, now())`)
    const c = new pg.Client({ connectionString: asWorker() })
    await c.connect()
    try { expect(await retryDeadLetters(c)).toBe(1) } finally { await c.end() }

    // The app role searches (the vector is computed locally: no pgml in this database).
    const pool = new pg.Pool({ connectionString: asApp(), max: 1 })
    pools.push(pool)
    const kit = createKit(loaded.source, { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool }) }), cwd: db.cwd }) as unknown as { search(r: string, q: string, o: object): { select(c: string[]): { execute(): Promise<{ title: string }[]> } } }
    expect(await kit.search('documents.body_embedding', 'title 7', { k: 3 }).select(['title']).execute()).toHaveLength(3)

    const status = () => readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state })
    expect((await status()).missingPrivileges).toEqual([])
    await db.query(`REVOKE DELETE ON pgml_kit.embedding_jobs FROM ${WORKER}; REVOKE SELECT ON documents FROM ${APP}`)
    expect((await status()).missingPrivileges).toEqual([
      { role: APP, purpose: 'app', missing: 'SELECT on public.documents', grantedBy: 'you', fix: `GRANT SELECT ON TABLE "public"."documents" TO "${APP}";` },
      { role: WORKER, purpose: 'worker', missing: 'DELETE on pgml_kit.embedding_jobs', grantedBy: 'pgml-kit', fix: `GRANT DELETE ON TABLE "pgml_kit"."embedding_jobs" TO "${WORKER}";` },
    ])
  })

  it('trigger and generated modes with pgml_compat: the app role writes and searches in the database, the worker role backfills', async () => {
    await setup(config({
      body_embedding: { source: ['title', 'body'], model: MODEL, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine' }] },
      title_embedding: { source: 'title', model: MODEL, mode: 'generated' },
    }))
    await query(asApp(), `INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 10) AS i`)
    await query(asApp(), `UPDATE documents SET title = 'renamed' WHERE id = 2`)
    expect(await db.query('SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NULL OR title_embedding IS NULL')).toEqual([{ n: 0 }])
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)

    // The app role embeds its query with pgml.embed (USAGE on schema pgml was granted) and predicts.
    await db.query(`CREATE TABLE houses (size real, rooms real, price real); INSERT INTO houses SELECT s, s / 40, s * 3 + 10 FROM generate_series(40, 200, 4) AS s;
      SELECT * FROM pgml.train('prices', 'regression', 'houses', 'price')`)
    const pool = new pg.Pool({ connectionString: asApp(), max: 1 })
    pools.push(pool)
    const kit = createKit(loaded.source, { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool }) }), cwd: db.cwd, embedIn: 'database' }) as unknown as {
      search(r: string, q: string, o: object): { select(c: string[]): { execute(): Promise<{ title: string }[]> } }
      predict(p: string, f: number[]): Promise<number>
    }
    expect((await kit.search('documents.body_embedding', 'title 3', { k: 2 }).select(['title']).execute())).toHaveLength(2)
    expect(await kit.predict('prices', [100, 2.5])).toBeCloseTo(310, -1)

    // The worker role fills rows written with the triggers off, with pgml.embed in the database.
    await db.query(`ALTER TABLE documents DISABLE TRIGGER USER; INSERT INTO documents (title, body) VALUES ('quiet', 'row'); ALTER TABLE documents ENABLE TRIGGER USER`)
    const column = loaded.state.embeddingColumns.find((c) => c.column === 'body_embedding')!
    expect(await backfill({ url: asWorker(), column })).toMatchObject({ how: 'database', written: 1 })
    expect(await db.query('SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NULL')).toEqual([{ n: 0 }])
  })

  it('app mode: the app role writes rows and their vectors through the writer', async () => {
    const cfg = config({ body_embedding: { source: ['title', 'body'], model: MODEL, mode: 'app' } })
    await setup(cfg)
    const pool = new pg.Pool({ connectionString: asApp(), max: 1 })
    pools.push(pool)
    const writer = createEmbeddingWriter(cfg, { db: pool, cwd: db.cwd })
    await writer.insert('documents', [{ title: 'a', body: 'b' }])
    expect(await writer.update('documents', { id: 1 }, { body: 'c' })).toBe(1)
    expect(await db.query('SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NOT NULL')).toEqual([{ n: 1 }])
  })

  it('a role that does not exist stops the migration before anything changes', async () => {
    db = await server.create()
    const p = await new TestProject(db).withDocumentsTable({ ...config({ body_embedding: { source: ['title', 'body'], model: MODEL, mode: 'queue' } }), roles: { worker: `no_such_role_${suffix}` } })
    await p.generate()
    await expect(p.migrate()).rejects.toThrow(new RegExp(`role no_such_role_${suffix} does not exist`))
    expect(await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgml_kit'`)).toEqual([{ n: 0 }])
    expect(await db.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'documents' AND column_name = 'body_embedding'`)).toEqual([{ n: 0 }])
  })

  it('a migrating role that may not use pgvector\'s schema is refused before anything changes, told the GRANT', async () => {
    db = await server.create()
    await db.query('CREATE SCHEMA "Vec Ext"; CREATE EXTENSION vector SCHEMA "Vec Ext"')
    const p = await new TestProject(db).withDocumentsTable(config({ body_embedding: { source: ['title', 'body'], model: MODEL, mode: 'queue' } }))
    await p.generate()
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const run = () => migrate({ databaseUrl: asWorker(), cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations })
    const error = await run().then(() => null, (e: unknown) => e as PgmlKitError)
    expect(error?.code).toBe('PGVECTOR_SCHEMA_UNUSABLE')
    expect(error?.message).toMatch(new RegExp(`pgvector is installed in schema Vec Ext of .*, and role ${WORKER} may not use that schema`))
    expect(error?.hint).toContain(`GRANT USAGE ON SCHEMA "Vec Ext" TO "${WORKER}";`)
    expect(await db.query(`SELECT to_regclass('public.pgmigrations') AS t`)).toEqual([{ t: null }])
  })

  it('chunked columns: the worker role syncs chunks with only what pgml-kit grants; the app role searches them and cannot write them (queue) or writes them through the writer (app)', async () => {
    const chunked = (mode: 'queue' | 'app') => ({ source: 'body', model: MODEL, mode, chunking: { size: 60, template: '{title}: {chunk}', fullText: 'simple' }, indexes: [{ method: 'hnsw' as const, distance: 'cosine' as const }] })
    const p = await setup(config({ body_chunks: chunked('queue'), title_chunks: { ...chunked('app'), source: 'title', chunking: { size: 60 } } }))
    const body = Array.from({ length: 6 }, (_, i) => `paragraph ${i} about parks and libraries and the river`).join('\n\n')
    await query(asApp(), `INSERT INTO documents (title, body) SELECT 'title ' || i, $1 FROM generate_series(1, 5) AS i`, [body])
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const embedder = await loadTiny()
    const totals = await runWorker({ url: asWorker(), columns: [], chunked: loaded.state.chunkedColumns, loadEmbedder: async () => embedder, loadChunkEmbedder: async () => embedder, once: true })
    expect(totals).toMatchObject({ failed: 0, completed: 5 })
    expect(await db.query('SELECT count(DISTINCT id)::int AS n FROM documents_body_chunks')).toEqual([{ n: 5 }])
    // The app role reads chunks but cannot write or delete them in mode queue, nor read the view.
    await expect(query(asApp(), `INSERT INTO documents_body_chunks (id, chunk_seq, chunk, content_hash) VALUES (1, 99, 'planted', 'x')`)).rejects.toThrow(/permission denied/)
    await expect(query(asApp(), 'DELETE FROM documents_body_chunks')).rejects.toThrow(/permission denied/)
    await expect(query(asApp(), 'SELECT * FROM documents_body_chunks_view')).rejects.toThrow(/permission denied/)
    // The worker role cannot write the table it reads.
    await expect(query(asWorker(), `UPDATE documents SET body = 'x'`)).rejects.toThrow(/permission denied/)
    // The app role deletes and re-keys its rows: the chunks follow (the foreign key acts as the chunk table's owner).
    await query(asApp(), 'DELETE FROM documents WHERE id = 5')
    expect(await db.query('SELECT count(*)::int AS n FROM documents_body_chunks WHERE id = 5')).toEqual([{ n: 0 }])
    // Search as the app role.
    const pool = new pg.Pool({ connectionString: asApp(), max: 1 })
    pools.push(pool)
    const kit = createKit(loaded, { db: new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) }), loadEmbedder: async () => embedder })
    const hits = await kit.searchChunks('documents.body_chunks' as never, 'parks', { k: 3, columns: ['id', 'title'] })
    expect(hits).toHaveLength(3)
    const hybrid = await kit.hybridSearchChunks('documents.body_chunks' as never, 'river', { k: 2 })
    expect(hybrid[0]!.chunk.text).toContain('river')
    // Mode app: the app role writes rows and their chunks through the writer.
    const writer = createEmbeddingWriter(config({ body_chunks: chunked('queue'), title_chunks: { ...chunked('app'), source: 'title', chunking: { size: 60 } } }), { db: pool, loadChunkEmbedder: async () => embedder })
    await writer.insert('documents', [{ title: 'a written title', body: 'a body' }])
    expect(await db.query(`SELECT count(*)::int AS n FROM documents_title_chunks c JOIN documents d USING (id) WHERE d.title = 'a written title'`)).toEqual([{ n: 1 }])
    void p
  })
})
