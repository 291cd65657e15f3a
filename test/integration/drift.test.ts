import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { readSnapshot } from '../../src/migrations/snapshot.js'
import { readStatus } from '../../src/status.js'
import { repairIndexes } from '../../src/indexes/health.js'
import { DOUBLE_DIMENSIONS, PGML_EMBED_TEST_DOUBLE } from '../helpers/fixtures.js'
import { TestProject } from '../helpers/project.js'
import { runCli } from '../helpers/cli.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'
import { splitStatements } from '../helpers/sql.js'

/** `status --drift` (pgml.embed is the named TEST DOUBLE; what is checked is the comparison, not embeddings). */
const model = { id: 'test/double', dimensions: DOUBLE_DIMENSIONS }
const config: PgmlKitConfig = {
  roles: { app: 'drift_app' },
  tables: {
    documents: {
      embeddings: {
        body_embedding: { source: ['title', 'body'], model, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine' }] },
        title_embedding: { source: 'title', model, mode: 'queue' },
      },
    },
  },
}

describe.each(tiers)('status --drift on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  it('finds each kind of drift with its fix, exits 1, and is clean again once the fixes run', async () => {
    db = await tier.create()
    await db.query(PGML_EMBED_TEST_DOUBLE)
    await db.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'drift_app') THEN CREATE ROLE drift_app; END IF; END $$`)
    const p = await new TestProject(db).withDocumentsTable(config)
    await p.generate('add-embeddings')
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const drift = async () => {
      const snapshot = await readSnapshot(loaded.migrationsDir)
      return (await readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state, drift: snapshot.state })).drift!
    }
    // Migrations not applied yet: that is the drift.
    expect(await drift()).toEqual([expect.objectContaining({ kind: 'migrations', fix: 'pgml-kit migrate' })])
    await p.migrate()
    expect(await drift()).toEqual([])
    const clean = await runCli(['status', '--drift'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(clean.code, clean.stderr).toBe(0)
    expect(clean.stdout).toContain('no drift')

    // Hands on the database, each behind pgml-kit's back.
    await db.query(`
      DROP TRIGGER pgml_kit_embed_body_embedding ON documents;
      ALTER TABLE documents DISABLE TRIGGER pgml_kit_enqueue_title_embedding_write;
      CREATE TRIGGER pgml_kit_embed_old AFTER UPDATE ON documents FOR EACH ROW EXECUTE FUNCTION pgml_kit."${(await db.query<{ f: string }>("SELECT proname AS f FROM pg_proc WHERE proname LIKE 'enqueue%'"))[0]!.f}"();
      DROP INDEX documents_body_embedding_hnsw_cosine_idx;
      CREATE INDEX documents_body_embedding_hnsw_cosine_idx ON documents USING hnsw (body_embedding vector_l2_ops) WITH (m = 8);
      UPDATE pgml_kit.embedding_columns SET query_prefix = 'query: ' WHERE column_name = 'body_embedding';
      INSERT INTO pgml_kit.embedding_columns (table_schema, table_name, column_name, model_id, dimensions, vector_type, mode, source_columns, source_separator, source_expression, document_prefix, query_prefix, normalize, key_columns)
        VALUES ('public', 'documents', 'ghost', 'm', 8, 'vector', 'app', '{body}', ' ', 'body', '', '', true, '{id}');
      ALTER TABLE documents DROP COLUMN title_embedding;
      ALTER TABLE documents ADD COLUMN title_embedding vector(4);
      REVOKE USAGE ON SCHEMA pgml_kit FROM drift_app;
    `)
    const found = await drift()
    const summary = found.map((d) => `${d.kind} ${d.object}: ${d.problem}`)
    expect(summary).toEqual(expect.arrayContaining([
      'column public.documents.title_embedding: type is vector(4), the snapshot says vector(8)',
      'trigger pgml_kit_embed_body_embedding on public.documents: missing: public.documents.body_embedding (mode trigger) is not kept in sync',
      'trigger pgml_kit_enqueue_title_embedding_write on public.documents: disabled: writes are not embedded or queued',
      'trigger pgml_kit_embed_old on public.documents: extra: a pgml-kit trigger the snapshot does not declare',
      expect.stringMatching(/^index public\.documents_body_embedding_hnsw_cosine_idx: differs: operator class vector_l2_ops, the config says vector_cosine_ops; parameters \(m=8\)/),
      'catalog public.documents.body_embedding: out of date: query prefix "query: ", the snapshot says ""',
      'catalog public.documents.ghost: recorded in pgml_kit.embedding_columns, but the snapshot has no such column',
      'grant drift_app (app): lacks USAGE on schema pgml_kit',
    ]))
    expect(found).toHaveLength(8)
    const cli = await runCli(['status', '--drift'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(cli.code).toBe(1)
    expect(cli.stdout).toContain('drift: 8 difference(s)')
    expect(cli.stdout).toContain('fix: ALTER TABLE "public"."documents" ENABLE TRIGGER "pgml_kit_enqueue_title_embedding_write";')
    expect(JSON.parse((await runCli(['status', '--drift', '--json'], { cwd: db.cwd, databaseUrl: db.databaseUrl })).stdout).drift).toHaveLength(8)

    // The printed fixes put it right: the SQL ones as printed, the index with index repair.
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      for (const d of found.filter((f) => f.kind !== 'index')) await client.query(d.fix)
      await repairIndexes(client, loaded.state)
    } finally {
      await client.end()
    }
    expect(await drift()).toEqual([])
  })

  it('finds what breaks every write or silently stops vectors — the queue table, pgml.embed, a trigger function\'s body, a default — and rows without vectors, fixed in one round', async () => {
    db = await tier.create()
    await db.query(PGML_EMBED_TEST_DOUBLE)
    await db.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'drift_app') THEN CREATE ROLE drift_app; END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'drift_worker') THEN CREATE ROLE drift_worker; END IF; END $$`)
    const p = await new TestProject(db).withDocumentsTable({ ...config, roles: { app: 'drift_app', worker: 'drift_worker' } })
    await p.generate('add-embeddings')
    await p.migrate()
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const drift = async () => {
      const snapshot = await readSnapshot(loaded.migrationsDir)
      return (await readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state, drift: snapshot.state })).drift!
    }
    // Rows written: body_embedding is computed in the transaction, title_embedding queued for a worker.
    await db.query(`INSERT INTO documents (title, body) VALUES ('a', 'b'), ('c', 'd'), ('e', NULL)`)
    expect(await drift()).toEqual([{ kind: 'column', object: 'public.documents.title_embedding', severity: 'warning', problem: '3 of 3 rows with text have no vector (3 queued for the worker): searches do not find them', fix: 'pgml-kit worker  (drains the queue)' }])
    const waiting = await runCli(['status', '--drift'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(waiting.code, waiting.stdout).toBe(0)
    expect(waiting.stdout).toContain('no drift')
    expect(waiting.stdout).toContain('1 warning(s): nothing is broken, but searches miss rows')

    const fn = (await db.query<{ f: string }>("SELECT proname AS f FROM pg_proc WHERE proname LIKE 'embed%' AND pronamespace = 'pgml_kit'::regnamespace"))[0]!.f
    await db.query(`
      DROP TABLE pgml_kit.embedding_jobs CASCADE;
      DROP FUNCTION pgml.embed(text, text, jsonb);
      CREATE OR REPLACE FUNCTION pgml_kit."${fn}"() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ BEGIN RETURN NEW; END $$;
      ALTER TABLE documents ALTER COLUMN title_embedding SET DEFAULT '[1,1,1,1,1,1,1,1]';
      ALTER TABLE documents DROP COLUMN body_embedding;
      ALTER TABLE documents ADD COLUMN body_embedding vector(4);
    `)
    const found = await drift()
    const summary = found.map((d) => `${d.severity ?? 'error'} ${d.kind} ${d.object}: ${d.problem}`)
    expect(summary).toEqual(expect.arrayContaining([
      'error runtime pgml_kit: missing: pgml_kit.embedding_jobs, pgml_kit.embedding_jobs_due_idx (every write to a queue-mode column fails)',
      'error runtime pgml.embed(text, text, jsonb): missing: every write to public.documents.body_embedding (mode trigger) fails',
      `error trigger pgml_kit.${fn}(): its body is not the one pgml-kit generated for it (of public.documents.body_embedding, mode trigger): writes may not be embedded or queued`,
      'error column public.documents.title_embedding: has a default (\'[1,1,1,1,1,1,1,1]\'::vector): new rows start with a vector that is not their text\'s',
      'error column public.documents.body_embedding: type is vector(4), the snapshot says vector(8)',
      // The queue is gone with its jobs: what was queued is now simply missing.
      'warning column public.documents.title_embedding: 3 of 3 rows with text have no vector: searches do not find them',
    ]))
    // The index of the column being added again is in that column's fix, not a finding of its own.
    expect(summary.filter((l) => l.includes(' index '))).toEqual([])
    // The worker's column grants went with the column: said as grants too (the column's fix gives them as well).
    expect(summary.filter((l) => l.startsWith('error grant')).sort()).toEqual([
      'error grant drift_worker (worker): lacks SELECT (body_embedding) on public.documents',
      'error grant drift_worker (worker): lacks UPDATE (body_embedding) on public.documents',
    ])
    expect(summary).toHaveLength(8)
    // The column's fix brings back its index and the worker's grants in the same round.
    const column = found.find((d) => d.object === 'public.documents.body_embedding' && d.kind === 'column')!
    expect(column.fix).toMatch(/GRANT SELECT \("body_embedding"\), UPDATE \("body_embedding"\) ON "public"\."documents" TO "drift_worker";|GRANT .*"body_embedding".* TO "drift_worker";/)
    expect(column.fix).toContain('CREATE INDEX CONCURRENTLY')
    const cli = await runCli(['status', '--drift'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(cli.code).toBe(1)
    expect(cli.stdout, cli.stdout.slice(cli.stdout.indexOf('drift:'))).toContain('drift: 7 difference(s)')

    // The fixes, statement by statement as psql runs them; pgml.embed is put back as a superuser would.
    await db.query(PGML_EMBED_TEST_DOUBLE.replace('CREATE FUNCTION', 'CREATE OR REPLACE FUNCTION'))
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      for (const d of found.filter((f) => f.fix.match(/^(ALTER|CREATE|DROP|GRANT|--)/m) && !f.fix.startsWith('pgml-kit') && !f.fix.startsWith('a superuser'))) {
        for (const statement of splitStatements(d.fix)) await client.query(statement)
      }
    } finally {
      await client.end()
    }
    // What is left: the rows the new columns have no vectors for, each with the command that fills them.
    const after = await drift()
    expect(after.map((d) => `${d.severity} ${d.object}: ${d.fix}`).sort()).toEqual([
      'warning public.documents.body_embedding: pgml-kit backfill documents.body_embedding',
      'warning public.documents.title_embedding: pgml-kit backfill documents.title_embedding',
    ])
    // A write goes through every path again: embedded in the transaction, queued.
    await db.query(`INSERT INTO documents (title, body) VALUES ('f', 'g')`)
    expect(await db.query(`SELECT body_embedding IS NOT NULL AS embedded, title_embedding IS NULL AS waiting FROM documents WHERE title = 'f'`)).toEqual([{ embedded: true, waiting: true }])
    expect(await db.query(`SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs`)).toEqual([{ n: 1 }])
    // The backfill, done here by the stand-in model as the worker would: nothing is left.
    await db.query(`UPDATE documents SET body_embedding = pgml.embed('test/double', coalesce(title, '') || ' ' || coalesce(body, ''))::vector, title_embedding = pgml.embed('test/double', title)::vector; DELETE FROM pgml_kit.embedding_jobs`)
    expect(await drift()).toEqual([])
  })

  it('leaves alone another project\'s catalog row whose names read like its own ("a"."b.c" beside "a.b"."c")', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_base.sql', `-- Up Migration
CREATE SCHEMA "a.b";
CREATE TABLE "a.b".c (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);
-- Down Migration
SELECT 1;
`)
    await p.writeConfig({ tables: { c: { schema: 'a.b', embeddings: { emb: { source: 'body', model, mode: 'app' } } } } })
    await p.generate()
    await p.migrate()
    // Another project registers column emb of table "b.c" in schema "a": not this project's to judge.
    await db.query(`INSERT INTO pgml_kit.embedding_columns (table_schema, table_name, column_name, model_id, dimensions, vector_type, mode, source_columns, source_separator, source_expression, document_prefix, query_prefix, normalize, key_columns)
      VALUES ('a', 'b.c', 'other', 'm', 8, 'vector', 'app', '{body}', ' ', 'body', '', '', true, '{id}')`)
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const snapshot = await readSnapshot(loaded.migrationsDir)
    expect((await readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state, drift: snapshot.state })).drift).toEqual([])
  })
})
