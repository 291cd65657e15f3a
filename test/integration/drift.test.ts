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
