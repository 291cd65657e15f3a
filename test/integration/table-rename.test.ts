import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { PlanError } from '../../src/errors.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { readSnapshot } from '../../src/migrations/snapshot.js'
import { createKit } from '../../src/query/create-kit.js'
import { quoteIdent, quoteLiteral, quoteQualified } from '../../src/sql/quote.js'
import { readStatus } from '../../src/status.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { claimBatch } from '../../src/worker/process-batch.js'
import { readLiveColumns } from '../../src/db/live-catalog.js'
import { InterleavingEmbedder, MODELS_DIR, loadTiny } from '../helpers/embedders.js'
import { DOUBLE_DIMENSIONS, PGML_EMBED_TEST_DOUBLE } from '../helpers/fixtures.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * `tables.<table>.renamedFrom`: a rename, not a drop and re-add. pgml.embed is the named TEST DOUBLE
 * from fixtures.ts (trigger mode); the queue mode's worker runs the tiny local model. What is
 * checked is that the stored vectors, indexes, full-text column, triggers, queued jobs, dead
 * letters, checkpoints and privileges survive the rename and its down, and that everything keeps
 * working under each name.
 */
const SCHEMA = 'App "Data" x'
const OLD = 'Docu "ments" it\'s'
const NEW = 'Art \'icles\' "y" z'
const DOUBLE = { id: 'test/double', dimensions: DOUBLE_DIMENSIONS }
const TINY = { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }
const WORKER_ROLE = 'rename worker "r"'
const BODY = 'body_embedding'
const TITLE = 'title vec'

function config(name: string, renamed: boolean): PgmlKitConfig {
  return {
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    roles: { worker: WORKER_ROLE },
    tables: {
      [name]: {
        schema: SCHEMA,
        ...(renamed ? { renamedFrom: OLD } : {}),
        embeddings: {
          [BODY]: { source: ['body'], model: DOUBLE, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine' }] },
          [TITLE]: { source: ['title'], model: TINY, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'l2' }] },
        },
        fullText: { source: ['title', { column: 'body', weight: 'B' }] },
      },
    },
  }
}

describe.each(tiers)('a table declared renamedFrom on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  const table = (name: string) => quoteQualified(SCHEMA, name)
  const embedder = () => loadTiny({ ...TINY, revision: null, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null })
  const columnsOf = (name: string) => resolveConfig(config(name, false)).state.embeddingColumns

  /** What a rename must carry, read from the live database. */
  const state = async (name: string) => ({
    vectors: await db.query(`SELECT id, ${quoteIdent(BODY)}::text AS body, ${quoteIdent(TITLE)}::text AS title, search_tsv::text AS tsv FROM ${table(name)} ORDER BY id`),
    indexes: await db.query<{ name: string; oid: number }>(`SELECT c.relname::text AS name, c.oid::int AS oid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = ${quoteLiteral(table(name))}::regclass AND NOT i.indisprimary ORDER BY 1`),
    triggers: (await db.query<{ t: string }>(`SELECT tgname::text AS t FROM pg_trigger WHERE tgrelid = ${quoteLiteral(table(name))}::regclass AND NOT tgisinternal ORDER BY 1`)).map((r) => r.t),
    catalog: await db.query(`SELECT table_name::text AS t, column_name::text AS c FROM pgml_kit.embedding_columns ORDER BY 2`),
    jobs: await db.query(`SELECT table_name::text AS t, count(*)::int AS n FROM pgml_kit.embedding_jobs GROUP BY 1`),
    deadLetters: await db.query(`SELECT table_name::text AS t, count(*)::int AS n FROM pgml_kit.embedding_dead_letters GROUP BY 1`),
    checkpoints: await db.query(`SELECT table_name::text AS t, column_name::text AS c FROM pgml_kit.backfill_checkpoints`),
    privileges: await db.query(`SELECT has_column_privilege(${quoteLiteral(WORKER_ROLE)}, ${quoteLiteral(table(name))}, ${quoteLiteral(TITLE)}, 'UPDATE') AS update_title,
      has_column_privilege(${quoteLiteral(WORKER_ROLE)}, ${quoteLiteral(table(name))}, 'title', 'SELECT') AS select_source`),
  })

  /** A search of each kind under `name`: vectors (trigger column), hybrid (queue column + full text). */
  const search = async (name: string) => {
    const loaded = resolveConfig(config(name, false))
    const pool = new pg.Pool({ connectionString: db.url, max: 1 })
    try {
      const kit = createKit(config(name, false), { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool }) }), cwd: db.cwd, embedIn: 'local' }) as unknown as {
        search(r: string, q: number[]): { select(c: string[]): { execute(): Promise<{ id: number }[]> } }
        hybridSearch(r: string, q: string, o: { k: number }): { select(c: string[]): { execute(): Promise<{ title: string }[]> } }
      }
      const [body, title] = [loaded.state.embeddingColumns.find((c) => c.column === BODY)!, loaded.state.embeddingColumns.find((c) => c.column === TITLE)!]
      const byVector = await kit.search(`${body.table}.${body.column}`, Array.from({ length: DOUBLE_DIMENSIONS }, (_, i) => (i === 0 ? 1 : 0))).select(['id']).execute()
      const hybrid = await kit.hybridSearch(`${title.table}.${title.column}`, 'title 7', { k: 3 }).select(['title']).execute()
      return { byVector: byVector.length, hybridFirst: hybrid[0]?.title }
    } finally {
      await pool.end()
    }
  }

  const drift = async (p: TestProject) => {
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const snapshot = await readSnapshot(loaded.migrationsDir)
    return (await readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state, drift: snapshot.state })).drift
  }

  it('renames the table and carries every vector, index, trigger, job, dead letter, checkpoint and privilege; a worker mid-batch loses nothing; down renames back', async () => {
    db = await tier.create()
    await db.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${quoteLiteral(WORKER_ROLE)}) THEN CREATE ROLE ${quoteIdent(WORKER_ROLE)}; END IF; END $$`)
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_base.sql', `-- Up Migration
CREATE SCHEMA ${quoteIdent(SCHEMA)};
CREATE TABLE ${table(OLD)} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text);
${PGML_EMBED_TEST_DOUBLE}
-- Down Migration
SELECT 1;
`)
    // The base migration first: it installs the pgml.embed test double that later files need.
    await p.writeConfig({ tables: {} })
    await p.migrate()
    await p.writeConfig(config(OLD, false))
    const created = await p.generate('add-embeddings')
    await p.migrate()
    await db.query(`INSERT INTO ${table(OLD)} (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 12) AS i`)
    const tiny = await embedder()
    // Rows 1–12 embedded; then 6 more rows queued, a dead letter and a backfill checkpoint recorded under the old name.
    expect((await runWorker({ url: db.url, columns: columnsOf(OLD), loadEmbedder: async () => tiny, once: true })).written).toBe(12)
    await db.query(`INSERT INTO ${table(OLD)} (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(13, 18) AS i`)
    await db.query(`INSERT INTO pgml_kit.embedding_dead_letters (table_schema, table_name, column_name, row_key, attempts, first_enqueued_at) VALUES (${quoteLiteral(SCHEMA)}, ${quoteLiteral(OLD)}, ${quoteLiteral(TITLE)}, '{"id": 999}', 5, now())`)
    await db.query(`INSERT INTO pgml_kit.backfill_checkpoints (table_schema, table_name, column_name, last_key, rows_done) VALUES (${quoteLiteral(SCHEMA)}, ${quoteLiteral(OLD)}, ${quoteLiteral(TITLE)}, '{"id": 3}', 3)`)
    const before = await state(OLD)
    expect(before.jobs).toEqual([{ t: OLD, n: 6 }])
    expect(await search(OLD)).toEqual({ byVector: 10, hybridFirst: 'title 7' })

    await p.writeConfig(config(NEW, true))
    const renamed = await p.generate('rename-table', { allowDestructive: false })
    // One transactional file: nothing dropped, built or backfilled.
    expect(renamed).toHaveLength(1)

    // A worker still on the old name is embedding a batch of queued jobs when the migration commits:
    // its write finds the table renamed away, writes nothing, and gives its jobs back — none lost.
    const midBatch = new InterleavingEmbedder(tiny, async () => {
      await p.migrate()
    })
    const old = await runWorker({ url: db.url, columns: columnsOf(OLD), loadEmbedder: async () => midBatch, batchSize: 4, once: true })
    expect(old).toMatchObject({ written: 0, failed: 0, deadLettered: 0 })
    expect(old.catalogChanges).toBeGreaterThan(0)

    const after = await state(NEW)
    expect(after.vectors).toEqual(before.vectors)
    // The same index objects (no rebuild).
    expect(new Set(after.indexes.map((i) => i.oid))).toEqual(new Set(before.indexes.map((i) => i.oid)))
    // Index names derived from the table's follow it.
    expect(after.indexes.map((i) => i.name).sort()).toEqual([
      `${NEW}_${BODY}_hnsw_cosine_idx`, `${NEW}_search_tsv_gin_idx`, `${NEW}_${TITLE}_hnsw_l2_idx`,
    ].sort())
    expect(after.triggers).toEqual(before.triggers)
    expect(after.catalog).toEqual([{ t: NEW, c: BODY }, { t: NEW, c: TITLE }])
    expect(after.jobs).toEqual([{ t: NEW, n: 6 }])
    expect(after.deadLetters).toEqual([{ t: NEW, n: 1 }])
    expect(after.checkpoints).toEqual([{ t: NEW, c: TITLE }])
    expect(after.privileges).toEqual(before.privileges)
    expect(after.privileges).toEqual([{ update_title: true, select_source: true }])
    expect(await db.query(`SELECT to_regclass(${quoteLiteral(table(OLD))}) AS old`)).toEqual([{ old: null }])

    // The queued jobs are embedded under the new name; the trigger embeds and the queue queues new writes.
    expect((await p.work()).written).toBe(6)
    expect(await db.query(`SELECT count(*)::int AS n FROM ${table(NEW)} WHERE ${quoteIdent(TITLE)} IS NULL OR ${quoteIdent(BODY)} IS NULL`)).toEqual([{ n: 0 }])
    expect(await drift(p)).toEqual([])
    const [expected] = await tiny.embed(['title 15'])
    const [stored] = await db.query<{ v: string }>(`SELECT ${quoteIdent(TITLE)}::text AS v FROM ${table(NEW)} WHERE title = 'title 15'`)
    expect(JSON.parse(stored!.v) as number[]).toEqual([...expected!].map((x) => expect.closeTo(x, 5)))
    await db.query(`INSERT INTO ${table(NEW)} (title, body) VALUES ('new title', 'new body')`)
    expect(await db.query(`SELECT ${quoteIdent(BODY)} = pgml.embed('test/double', 'new body', '{"normalize_embeddings":true}'::jsonb)::vector AS ok, search_tsv IS NOT NULL AS tsv FROM ${table(NEW)} WHERE title = 'new title'`)).toEqual([{ ok: true, tsv: true }])
    expect((await state(NEW)).jobs).toEqual([{ t: NEW, n: 1 }])
    expect(await search(NEW)).toEqual({ byVector: 10, hybridFirst: 'title 7' })
    // Generating again with renamedFrom still in the config plans nothing.
    expect(await p.generate('again')).toEqual([])

    // Down renames everything back; everything works under the old name again.
    await p.migrate('down', 1)
    const reverted = await state(OLD)
    expect(reverted.indexes).toEqual(before.indexes)
    expect(reverted.triggers).toEqual(before.triggers)
    expect(reverted.catalog).toEqual(before.catalog)
    expect(reverted.jobs).toEqual([{ t: OLD, n: 1 }])
    expect(reverted.deadLetters).toEqual(before.deadLetters)
    expect(reverted.checkpoints).toEqual(before.checkpoints)
    expect(reverted.privileges).toEqual(before.privileges)
    expect(reverted.vectors.slice(0, 12)).toEqual(before.vectors.slice(0, 12))
    expect((await runWorker({ url: db.url, columns: columnsOf(OLD), loadEmbedder: async () => tiny, once: true })).written).toBe(1)
    await db.query(`INSERT INTO ${table(OLD)} (title, body) VALUES ('after down', 'after down')`)
    expect(await db.query(`SELECT ${quoteIdent(BODY)} IS NOT NULL AS ok FROM ${table(OLD)} WHERE title = 'after down'`)).toEqual([{ ok: true }])
    expect(await search(OLD)).toEqual({ byVector: 10, hybridFirst: 'title 7' })
    // The trigger functions are back under the names the old table's columns had.
    expect((await db.query<{ f: string }>(`SELECT proname::text AS f FROM pg_proc WHERE pronamespace = 'pgml_kit'::regnamespace AND prorettype = 'trigger'::regtype AND proname NOT IN ('registry_guard', 'registry_record', 'route_guard') ORDER BY 1`)).map((r) => r.f))
      .toEqual(resolveConfig(config(OLD, false)).state.embeddingColumns.map((c) => c.triggerFunction).sort())
    expect(created.length).toBeGreaterThan(1)
  })

  it('a worker whose claimed jobs\' table is renamed before it reads their rows gives them back and goes on', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_base.sql', `-- Up Migration
CREATE SCHEMA ${quoteIdent(SCHEMA)};
CREATE TABLE ${table(OLD)} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text);
-- Down Migration
SELECT 1;
`)
    const queueOnly = (name: string, renamed: boolean): PgmlKitConfig => {
      const { roles: _, ...c } = config(name, renamed)
      delete c.tables[name]!.embeddings[BODY]
      return c
    }
    await p.writeConfig(queueOnly(OLD, false))
    await p.generate('add-embeddings')
    await p.migrate()
    await db.query(`INSERT INTO ${table(OLD)} (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 5) AS i`)
    await p.writeConfig(queueOnly(NEW, true))
    await p.generate('rename-table')
    const column = resolveConfig(queueOnly(OLD, false)).state.embeddingColumns[0]!
    const [live] = (await readLiveColumns((sql, params) => db.query(sql, [...params]).then((rows) => ({ rows })), [column]))!
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      // The migration commits between the claim and the read of the claimed rows.
      let migrated = false
      const between = {
        query: async (sql: string, params?: unknown[]) => {
          if (!migrated && sql.includes('AS source_text')) {
            migrated = true
            await p.migrate()
          }
          return client.query(sql, params)
        },
      } as unknown as pg.ClientBase
      const settings = { workerId: 'old-worker', batchSize: 10, leaseSeconds: 30, maxAttempts: 5, backoffBaseSeconds: 0, backoffMaxSeconds: 0, vectorSchema: 'public' }
      expect(await claimBatch(between, live!.node, settings, live!.fingerprint)).toBeNull()
      expect(migrated).toBe(true)
    } finally {
      await client.end()
    }
    // Nothing lost, nothing leased: the jobs wait under the new name, and a worker on it embeds them.
    expect(await db.query(`SELECT table_name::text AS t, count(*)::int AS n, count(leased_by)::int AS leased, max(attempts)::int AS attempts FROM pgml_kit.embedding_jobs GROUP BY 1`)).toEqual([{ t: NEW, n: 5, leased: 0, attempts: 0 }])
    expect((await p.work()).written).toBe(5)
  })

  it('refuses a renamedFrom the snapshot does not have, naming the config path and what it has', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeConfig(config(OLD, false))
    await p.generate('add-embeddings')
    const wrong = config(NEW, true)
    wrong.tables[NEW]!.renamedFrom = 'Docu "ments"'
    await p.writeConfig(wrong)
    const error = await p.generate('rename').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PlanError)
    expect(error).toMatchObject({
      code: 'RENAME_SOURCE_MISSING', where: `tables.${NEW}.renamedFrom`,
      message: `tables.${NEW} is declared as renamed from ${SCHEMA}.Docu "ments", but the last generated state has no table ${SCHEMA}.Docu "ments"; it has ${SCHEMA}.${OLD}`,
    })
  })
})
