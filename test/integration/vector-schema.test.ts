import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { readSnapshot } from '../../src/migrations/snapshot.js'
import { createKit } from '../../src/query/create-kit.js'
import { createEmbeddingWriter } from '../../src/app/embedding-writer.js'
import { quoteIdent } from '../../src/sql/quote.js'
import { readStatus } from '../../src/status.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { backfill } from '../../src/worker/backfill.js'
import { checkIndex } from '../../src/indexes/check.js'
import { repairIndexes } from '../../src/indexes/health.js'
import { checkParity } from '../../src/parity/check-parity.js'
import { localEmbedderLoader } from '../../src/embed/embedder-for-config.js'
import { MODELS_DIR, loadTiny } from '../helpers/embedders.js'
import { DOUBLE_DIMENSIONS, PGML_EMBED_TEST_DOUBLE } from '../helpers/fixtures.js'
import { TestProject } from '../helpers/project.js'
import { requireServerTier, tiers, withClient, type TestDatabase } from '../helpers/targets.js'

const TINY = { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }
const DOUBLE = { id: 'test/double', dimensions: DOUBLE_DIMENSIONS }

/**
 * pgvector installed by someone else, before pgml-kit's migrations, in a schema of its own that no
 * role's search_path names (as Supabase's `extensions`): a plain name, and a legal but hostile one.
 */
const SCHEMAS = ['vec', 'Vec Ext "x"']

function config(roles: { app: string; worker: string } | null): PgmlKitConfig {
  return {
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    ...(roles ? { roles: { app: roles.app, worker: roles.worker } } : {}),
    tables: {
      documents: {
        fullText: { source: ['title', 'body'] },
        embeddings: {
          // pgml.embed in the writing transaction (the test double), halfvec, L2.
          trigger_embedding: { source: ['title', 'body'], model: DOUBLE, mode: 'trigger', type: 'halfvec', indexes: [{ method: 'hnsw', distance: 'l2' }] },
          queue_embedding: { source: ['body'], model: TINY, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'cosine' }] },
          app_embedding: { source: ['title'], model: TINY, mode: 'app', indexes: [{ method: 'hnsw', distance: 'inner_product' }] },
          // The database computes it as rows are written: the cast in its expression was resolved when it was added.
          generated_embedding: { source: ['body'], model: DOUBLE, mode: 'generated' },
        },
      },
    },
  }
}

/** Login roles for the server tier, with nothing granted and the default search_path ("$user", public). */
async function createRoles(admin: string): Promise<{ app: string; worker: string; drop(): Promise<void> }> {
  const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const app = `vs_app_${suffix}`
  const worker = `vs_worker_${suffix}`
  await withClient(admin, (c) => c.query(`CREATE ROLE ${app} LOGIN PASSWORD 'app'; CREATE ROLE ${worker} LOGIN PASSWORD 'worker'`))
  return { app, worker, drop: () => withClient(admin, (c) => c.query(`DROP ROLE IF EXISTS ${app}; DROP ROLE IF EXISTS ${worker}`)).then(() => undefined) }
}

function urlAs(url: string, role: string, password: string): string {
  const u = new URL(url)
  u.username = role
  u.password = password
  return u.toString()
}

const unit = (n: number, i = 0) => Array.from({ length: n }, (_, j) => (j === i ? 1 : 0))

describe.each(tiers)('pgvector installed in another schema on the $name tier', (tier) => {
  let db: TestDatabase
  let dropRoles: (() => Promise<void>) | undefined
  afterEach(async () => {
    await db?.close()
    await dropRoles?.()
    dropRoles = undefined
  })

  it.each(SCHEMAS)('schema %j: migrates, writes in every mode, searches as a role whose search_path lacks it, no drift, migrates down', async (schema) => {
    db = await tier.create()
    // The administrator's doing, before any pgml-kit migration.
    await db.query(`CREATE SCHEMA ${quoteIdent(schema)}; CREATE EXTENSION vector SCHEMA ${quoteIdent(schema)}`)
    const roles = tier.name === 'server' ? await createRoles(requireServerTier().url) : null
    dropRoles = roles?.drop
    // On the embedded database every connection is one session with the default search_path.
    const appUrl = roles ? urlAs(db.url, roles.app, 'app') : db.url
    const workerUrl = roles ? urlAs(db.url, roles.worker, 'worker') : db.url
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_base.sql', `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text);
${roles ? `GRANT SELECT, INSERT, UPDATE, DELETE ON documents TO ${roles.app};` : ''}
${PGML_EMBED_TEST_DOUBLE}
-- Down Migration
DROP TABLE documents;
DROP SCHEMA pgml CASCADE;
`)
    await p.writeConfig({ tables: {} })
    await p.migrate()
    await p.writeConfig(config(roles))
    const written = await p.generate()
    const migrated = await p.migrate()
    expect(migrated.ran).toHaveLength(written.length)
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const columns = loaded.state.embeddingColumns
    const columnOf = (name: string) => columns.find((c) => c.column === name)!

    // The columns are pgvector's types from that schema.
    expect(await db.query(`SELECT a.attname::text AS name, n.nspname::text AS schema, t.typname::text AS type
      FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE a.attrelid = 'documents'::regclass AND a.attname LIKE '%embedding' ORDER BY 1`)).toEqual([
      { name: 'app_embedding', schema, type: 'vector' },
      { name: 'generated_embedding', schema, type: 'vector' },
      { name: 'queue_embedding', schema, type: 'vector' },
      { name: 'trigger_embedding', schema, type: 'halfvec' },
    ])

    // status names what the roles lack on that schema (pgml-kit never grants on schemas it does not own); the DBA runs it.
    const before = await readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state })
    if (roles) {
      const onSchema = before.missingPrivileges.filter((m) => m.missing === `USAGE on schema ${schema}`)
      expect(onSchema.map((m) => [m.role, m.grantedBy, m.fix]).sort()).toEqual([
        [roles.app, 'you', `GRANT USAGE ON SCHEMA ${quoteIdent(schema)} TO ${quoteIdent(roles.app)};`],
        [roles.worker, 'you', `GRANT USAGE ON SCHEMA ${quoteIdent(schema)} TO ${quoteIdent(roles.worker)};`],
      ])
      for (const m of onSchema) await db.query(m.fix)
      const after = await readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state })
      expect(after.missingPrivileges).toEqual([])
    } else {
      expect(before.missingPrivileges).toEqual([])
    }

    // The application's role: its search_path does not name the schema.
    const appPool = new pg.Pool({ connectionString: appUrl, max: 2 })
    try {
      const { rows: path } = await appPool.query<{ schemas: string[] }>('SELECT current_schemas(true)::text[] AS schemas')
      expect(path[0]!.schemas).not.toContain(schema)
      // Plain writes: the trigger mode embeds in the transaction, the queue mode queues.
      await appPool.query(`INSERT INTO documents (title, body) VALUES ('Parks', 'Opening hours of the city parks'), ('Libraries', 'Borrow books and films'),
        ('Housing', 'Affordable homes for families'), ('Waste', 'Bin collection days')`)
      await appPool.query(`UPDATE documents SET body = 'Borrow books, films and games' WHERE title = 'Libraries'`)
      // The app mode: the writer computes its column locally.
      const writer = createEmbeddingWriter(loaded.source, { db: appPool, cwd: db.cwd })
      await writer.insert('documents', [{ title: 'Swimming', body: 'Pool opening times' }, { title: 'Parking', body: 'Permits for residents' }])
      await writer.update('documents', { id: 1 }, { title: 'City parks' })
    } finally {
      await appPool.end()
    }
    expect(await db.query('SELECT count(*)::int AS n FROM documents WHERE trigger_embedding IS NULL OR generated_embedding IS NULL')).toEqual([{ n: 0 }])

    // The worker's role embeds the queue; backfill fills the app column of the rows written in plain SQL.
    const loadEmbedder = localEmbedderLoader(loaded.embedder)
    const totals = await runWorker({ url: workerUrl, columns, loadEmbedder, once: true })
    expect(totals.written).toBe(6)
    const filled = await backfill({ url: workerUrl, column: columnOf('app_embedding'), loadEmbedder })
    expect(filled.failedCount).toBe(0)
    expect(filled.written).toBe(3)
    expect(await db.query('SELECT count(*)::int AS n FROM documents WHERE trigger_embedding IS NULL OR queue_embedding IS NULL OR app_embedding IS NULL')).toEqual([{ n: 0 }])

    // Searches through createKit, as the application's role.
    const searchPool = new pg.Pool({ connectionString: appUrl, max: 2 })
    try {
      const kit = createKit(config(roles), { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool: searchPool }) }), cwd: db.cwd, embedIn: 'local' }) as unknown as {
        search(r: string, q: string | number[], o?: Record<string, unknown>): { select(c: string[]): { where(a: string, op: string, v: unknown): { execute(): Promise<Record<string, unknown>[]> }; execute(): Promise<Record<string, unknown>[]> } }
        hybridSearch(r: string, q: string, o?: Record<string, unknown>): { select(c: string[]): { execute(): Promise<Record<string, unknown>[]> } }
      }
      for (const [column, dimensions] of [['trigger_embedding', DOUBLE.dimensions], ['queue_embedding', TINY.dimensions], ['app_embedding', TINY.dimensions]] as const) {
        const hits = await kit.search(`documents.${column}`, unit(dimensions), { k: 6 }).select(['id']).execute()
        expect(hits, column).toHaveLength(6)
        expect(hits.map((h) => h.distance as number)).toEqual([...hits.map((h) => h.distance as number)].sort((a, b) => a - b))
      }
      // A text query (embedded locally with the column's model), with index settings (a transaction of its own) and a filter.
      const byText = await kit.search('documents.queue_embedding', 'homes for families', { k: 3, efSearch: 64 }).select(['title']).where('title', '<>', 'Waste').execute()
      expect(byText).toHaveLength(3)
      const hybrid = await kit.hybridSearch('documents.queue_embedding', 'books', { k: 2 }).select(['title']).execute()
      expect(hybrid[0]?.title).toBe('Libraries')
    } finally {
      await searchPool.end()
    }

    // Index check, parity, repair and drift: none of them may depend on the schema being on a search_path.
    await withClient(db.url, async (client) => {
      const recall = await checkIndex(client, loaded.state, { column: 'documents.queue_embedding', k: 2, queries: 3, grid: [40] })
      expect(recall.rows[0]!.recall).toBe(1)
      await client.query(`DROP INDEX ${quoteIdent(loaded.state.indexes.find((i) => i.column === 'app_embedding')!.name)}`)
      const repaired = await repairIndexes(client, (await readSnapshot(loaded.migrationsDir)).state)
      expect(repaired.repaired.map((r) => r.column)).toEqual(['public.documents.app_embedding'])
    })
    const parity = await checkParity({ url: db.url, column: columnOf('queue_embedding'), embedder: await loadTiny({ ...TINY, revision: null, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null }) })
    expect(parity.ok).toBe(true)
    const status = await readStatus({
      databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state,
      drift: (await readSnapshot(loaded.migrationsDir)).state,
    })
    expect(status.drift).toEqual([])
    expect(status.indexes.map((i) => i.state)).toEqual(['ok', 'ok', 'ok'])

    // And down again: pgml-kit's objects go, the extension stays where its owner put it.
    await p.migrate('down', written.length)
    expect(await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgml_kit'`)).toEqual([{ n: 0 }])
    expect(await db.query(`SELECT n.nspname::text AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'`)).toEqual([{ schema }])
    expect(await db.query(`SELECT count(*)::int AS n FROM documents`)).toEqual([{ n: 6 }])
    await p.migrate('up')
  })
})
