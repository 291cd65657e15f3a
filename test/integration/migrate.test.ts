import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { MigrationError, TargetError } from '../../src/errors.js'
import { loadConfig } from '../../src/config/load.js'
import { migrate } from '../../src/migrations/run.js'
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { PGML_EMBED_TEST_DOUBLE, documentsConfig } from '../helpers/fixtures.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

describe.each(tiers)('migrate on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function project(config = documentsConfig()) {
    db = await tier.create()
    return new TestProject(db).withDocumentsTable(config)
  }

  const indexes = () => db.query<{ name: string; am: string; valid: boolean; options: string[] | null }>(
    `SELECT c.relname AS name, am.amname AS am, i.indisvalid AS valid, c.reloptions AS options
     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
     WHERE i.indrelid = 'public.documents'::regclass AND am.amname IN ('hnsw', 'ivfflat') ORDER BY 1`)
  const columnType = async () => (await db.query<{ t: string | null }>(
    `SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'public.documents'::regclass AND attname = 'body_embedding' AND NOT attisdropped`))[0]?.t ?? null
  const schemaExists = async (name: string) => (await db.query<{ ok: boolean }>('SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS ok', [name]))[0]?.ok

  it('reports what the server says during a migration: pgvector\'s warning for an IVFFlat index built on no data', async () => {
    // generate builds an IVFFlat index on an existing column when it has no database to ask whether the column has vectors.
    const p = await project(documentsConfig({ indexes: [] }))
    await p.generate('add-doc-embeddings')
    await p.migrate()
    await p.writeConfig(documentsConfig({ indexes: [{ method: 'ivfflat', distance: 'l2', lists: 2 }] }))
    // Two files: the catalog records the new search distance (l2; cosine while there was no index), and the build.
    const written = (await p.generate('add-ivfflat')).map((f) => f.split('/').pop()!.replace(/\.sql$/, ''))
    expect(written).toHaveLength(2)
    const indexFile = written.find((f) => f.endsWith('--create-vector-index'))
    const heard: string[] = []
    const config = await loadConfig('pgml-kit.config.ts', db.cwd)
    const up = await migrate({
      databaseUrl: db.databaseUrl, cwd: db.cwd, dir: config.migrationsDir, settings: config.migrations, onNotice: (n) => heard.push(n.message),
    })
    expect(up.notices).toEqual([expect.objectContaining({
      migration: indexFile, severity: 'NOTICE', message: 'ivfflat index created with little data',
      detail: 'This will cause low recall.', hint: 'Drop the index until the table has more data.',
    })])
    expect(heard).toEqual(['ivfflat index created with little data'])
    // The generated files' IF [NOT] EXISTS guards say "skipping" on every run: expected, left out.
    expect((await p.migrate('down', 2)).notices).toEqual([])
  })

  it('leaves an IVFFlat index out until its new column has vectors, then builds it', async () => {
    const p = await project(documentsConfig({ indexes: [{ method: 'ivfflat', distance: 'l2', lists: 'auto' }] }))
    const config = await loadConfig('pgml-kit.config.ts', db.cwd)
    expect((await p.generate('add-doc-embeddings')).map((f) => /--create-vector-index\.sql$/.test(f))).toEqual([false])
    const { checkGenerated } = await import('../../src/migrations/generate.js')
    const check = await checkGenerated(config)
    expect(check).toMatchObject({ ok: true, problems: [] })
    expect(check.waiting).toEqual([expect.stringMatching(/documents_body_embedding_ivfflat_l2_idx: public\.documents\.body_embedding is added by this migration and holds no vectors yet/)])
    await p.migrate()
    expect(await indexes()).toEqual([])
    await db.query(`INSERT INTO documents (title, body, body_embedding) SELECT 't' || i, 'b', ARRAY[i, 1, 0, 0, 0, 0, 0, 0]::real[]::vector FROM generate_series(1, 3000) AS i`)
    await db.query('ANALYZE documents')
    // Sized against the database: 3,000 rows → lists 3 (rows / 1000).
    const { readSizing } = await import('../../src/indexes/sizing.js')
    const { generate } = await import('../../src/migrations/generate.js')
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    const sizing = await readSizing(client, config.state, 'test database').finally(() => client.end())
    expect(sizing.tables.get('public.documents')).toEqual({ rows: 3000, filled: { body_embedding: 3000 } })
    const { written } = await generate(config, { name: 'build-ivfflat', timestamp: 2_100_000_000_000, sizing })
    expect(written).toEqual([expect.stringMatching(/--create-vector-index\.sql$/)])
    expect(await p.migrate()).toMatchObject({ notices: [] })
    expect(await indexes()).toEqual([{ name: 'documents_body_embedding_ivfflat_l2_idx', am: 'ivfflat', valid: true, options: ['lists=3'] }])
    expect((await checkGenerated(config)).waiting).toEqual([])
  })

  it('records a changed query prefix in the catalog, and puts the old one back on down', async () => {
    const p = await project(documentsConfig({ model: { id: 'test/double', dimensions: 8, queryPrefix: 'query: ' } }))
    await p.generate()
    await p.migrate()
    await p.writeConfig(documentsConfig({ model: { id: 'test/double', dimensions: 8, queryPrefix: 'search_query: ' } }))
    expect(await p.generate('query-prefix')).toHaveLength(1)
    await p.migrate()
    const prefix = () => db.query('SELECT query_prefix FROM pgml_kit.embedding_columns')
    expect(await prefix()).toEqual([{ query_prefix: 'search_query: ' }])
    await p.migrate('down', 1)
    expect(await prefix()).toEqual([{ query_prefix: 'query: ' }])
  })

  it('applies, reverts and re-applies the generated migrations (up, down, up)', async () => {
    const p = await project(documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine' }, { method: 'ivfflat', distance: 'l2', lists: 2 }] }))
    // The IVFFlat index waits for vectors: the first generate leaves it out, the next builds it.
    expect(await p.generate('add-doc-embeddings')).toHaveLength(2)
    expect((await p.migrate()).ran).toHaveLength(3)
    await db.query(`INSERT INTO documents (title, body, body_embedding) VALUES ('a', 'b', '[1,0,0,0,0,0,0,0]'), ('c', 'd', '[0,1,0,0,0,0,0,0]')`)
    expect(await p.generate('add-ivfflat')).toHaveLength(1)
    expect((await p.migrate()).ran).toHaveLength(1)
    expect(await columnType()).toBe('vector(8)')
    expect(await indexes()).toEqual([
      { name: 'documents_body_embedding_hnsw_cosine_idx', am: 'hnsw', valid: true, options: ['m=16', 'ef_construction=64'] },
      { name: 'documents_body_embedding_ivfflat_l2_idx', am: 'ivfflat', valid: true, options: ['lists=2'] },
    ])
    expect(await db.query('SELECT table_name, column_name, model_id, dimensions, mode, source_columns FROM pgml_kit.embedding_columns')).toEqual([
      { table_name: 'documents', column_name: 'body_embedding', model_id: 'test/double', dimensions: 8, mode: 'app', source_columns: ['title', 'body'] },
    ])
    expect(await db.query(`SELECT title FROM documents ORDER BY body_embedding <=> '[0.9,0.1,0,0,0,0,0,0]' LIMIT 1`)).toEqual([{ title: 'a' }])

    const down = await p.migrate('down', 3)
    expect(down.ran).toHaveLength(3)
    expect(await columnType()).toBeNull()
    expect(await indexes()).toEqual([])
    expect(await schemaExists('pgml_kit')).toBe(false)
    expect(await db.query('SELECT count(*)::int AS n FROM documents')).toEqual([{ n: 2 }])

    const again = await p.migrate()
    expect(again.ran).toHaveLength(3)
    expect(await columnType()).toBe('vector(8)')
    expect((await indexes()).map((i) => i.valid)).toEqual([true, true])
    expect((await p.migrate()).ran).toEqual([])
  })

  it('re-runs a concurrent index step that failed and left an INVALID index behind', async () => {
    const p = await project()
    await p.generate()
    await p.migrate('up', 2)
    // Simulate a failed CREATE INDEX CONCURRENTLY under the index's name: it leaves an INVALID index.
    await db.query(`INSERT INTO documents (title, body, department) VALUES ('a', 'b', 'same'), ('c', 'd', 'same')`)
    await expect(db.query('CREATE UNIQUE INDEX CONCURRENTLY documents_body_embedding_hnsw_cosine_idx ON documents (department)')).rejects.toThrow(/could not create unique index/)
    expect(await db.query(`SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'documents_body_embedding_hnsw_cosine_idx'::regclass`)).toEqual([{ valid: false }])

    const result = await p.migrate()
    expect(result.ran).toEqual([expect.stringMatching(/--create-vector-index$/)])
    expect(await indexes()).toEqual([{ name: 'documents_body_embedding_hnsw_cosine_idx', am: 'hnsw', valid: true, options: ['m=16', 'ef_construction=64'] }])
  })

  it('checks the database before changing anything: a table the config names but no migration creates', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeConfig({ tables: { missing_table: documentsConfig().tables.documents! } })
    await p.generate()
    const error = await p.migrate().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(MigrationError)
    expect((error as MigrationError).message).toMatch(/pgml-kit: table public\.missing_table does not exist/)
    expect(await schemaExists('pgml_kit')).toBe(false)
    expect(await db.query('SELECT name FROM pgmigrations')).toEqual([])
  })

  it('leaves the database as it was when a statement fails halfway through a migration', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    // A pgml.embed that fails (a model that is not there): the generated column's rewrite fails
    // after the runtime schema and pgvector were already installed in the same transaction.
    await p.writeMigration('1000000000000_create-documents.sql', `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text);
INSERT INTO documents (title, body) VALUES ('a', 'b');
CREATE SCHEMA pgml;
CREATE FUNCTION pgml.embed(transformer text, "text" text, kwargs jsonb DEFAULT '{}') RETURNS real[] LANGUAGE plpgsql IMMUTABLE STRICT AS $$ BEGIN RAISE EXCEPTION 'no model %', transformer; END $$;
-- Down Migration
DROP TABLE documents; DROP SCHEMA pgml CASCADE;
`)
    await p.writeConfig({ tables: {} })
    await p.migrate()
    await p.writeConfig(documentsConfig({ mode: 'generated' }))
    await p.generate()
    const error = await p.migrate().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(MigrationError)
    expect((error as MigrationError).message).toMatch(/no model test\/double/)
    expect(await schemaExists('pgml_kit')).toBe(false)
    expect(await db.query(`SELECT extname FROM pg_extension WHERE extname = 'vector'`)).toEqual([])
    expect(await db.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'documents' AND column_name = 'body_embedding'`)).toEqual([{ n: 0 }])
    expect((await db.query<{ name: string }>('SELECT name FROM pgmigrations')).map((r) => r.name)).toEqual(['1000000000000_create-documents'])
  })

  if (tier.name === 'embedded') {
    it('refuses migrations that call pgml.embed on a target without pgml, before touching anything', async () => {
      const p = await project(documentsConfig({ mode: 'trigger' }))
      await p.generate()
      const error = await p.migrate().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(TargetError)
      expect((error as TargetError).code).toBe('PGML_MISSING')
      expect((error as TargetError).message).toMatch(/calls pgml\.embed, and .* has neither PostgresML \(pgml\) nor pgml_compat; nothing was changed/)
      expect((error as TargetError).hint).toMatch(/mode "queue" \(pgml-kit worker embeds locally\) or "app"/)
      expect(await db.query(`SELECT to_regclass('public.pgmigrations') AS t, to_regclass('public.documents') AS d`)).toEqual([{ t: null, d: null }])
    })
  } else {
    it('installs pgml_compat through the generated ensure-pgml step when the server has it available', async () => {
      const p = await project(documentsConfig({ mode: 'trigger' }))
      await p.generate()
      expect((await p.migrate()).ran).toHaveLength(3)
      expect(await db.query(`SELECT extname FROM pg_extension WHERE extname IN ('pgml', 'pgml_compat')`)).toEqual([{ extname: 'pgml_compat' }])
      // Its down leaves pgml installed (it owns trained models).
      await p.migrate('down', 2)
      expect(await db.query(`SELECT extname FROM pg_extension WHERE extname = 'pgml_compat'`)).toEqual([{ extname: 'pgml_compat' }])
    })
  }

  it('runs hand-written JavaScript migrations alongside the generated SQL', async () => {
    const p = await project()
    await p.writeMigration('1500000000000_seed.js', `export async function up(pgm) {
  pgm.sql("INSERT INTO documents (title, body) VALUES ('seeded', 'by a hand-written migration')")
}
export async function down(pgm) {
  pgm.sql("DELETE FROM documents WHERE title = 'seeded'")
}
`)
    await p.generate()
    const result = await p.migrate()
    expect(result.ran).toEqual(['1000000000000_create-documents', '1500000000000_seed', expect.stringMatching(/_change$/), expect.stringMatching(/--create-vector-index$/)])
    expect(await db.query('SELECT title FROM documents')).toEqual([{ title: 'seeded' }])
    await p.migrate('down', 3)
    expect(await db.query('SELECT count(*)::int AS n FROM documents')).toEqual([{ n: 0 }])
  })

  it('applies changes: a new index parameter, a second column, a removed column, and reverts them all', async () => {
    const p = await project()
    await p.generate('first')
    await p.migrate()

    await p.writeConfig(documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine', m: 24, efConstruction: 100 }] }))
    await p.generate('tune-index')
    await p.migrate()
    expect(await indexes()).toEqual([{ name: 'documents_body_embedding_hnsw_cosine_idx', am: 'hnsw', valid: true, options: ['m=24', 'ef_construction=100'] }])

    const two = documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine', m: 24, efConstruction: 100 }] })
    two.tables.documents!.embeddings.title_embedding = { source: 'title', model: { id: 'test/double', dimensions: 8 }, mode: 'app', type: 'halfvec', indexes: [{ method: 'hnsw', distance: 'l2' }] }
    await p.writeConfig(two)
    await p.generate('add-title-embedding')
    await p.migrate()
    expect(await db.query(`SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'documents'::regclass AND attname = 'title_embedding'`)).toEqual([{ t: 'halfvec(8)' }])
    expect((await db.query('SELECT column_name FROM pgml_kit.embedding_columns ORDER BY 1')).map((r) => r.column_name)).toEqual(['body_embedding', 'title_embedding'])

    await p.writeConfig({ tables: { documents: { embeddings: { title_embedding: two.tables.documents!.embeddings.title_embedding! } } } })
    await p.generate('drop-body-embedding')
    await p.migrate()
    expect(await columnType()).toBeNull()
    expect((await indexes()).map((i) => i.name)).toEqual(['documents_title_embedding_hnsw_l2_idx'])

    // Revert everything pgml-kit generated, newest first, back to the hand-written base.
    const files = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgmigrations'))[0]!.n
    await p.migrate('down', files - 1)
    expect(await schemaExists('pgml_kit')).toBe(false)
    expect(await columnType()).toBeNull()
    expect(await db.query('SELECT name FROM pgmigrations')).toEqual([{ name: '1000000000000_create-documents' }])
    await p.migrate()
    expect((await indexes()).map((i) => i.name)).toEqual(['documents_title_embedding_hnsw_l2_idx'])
  })

  it('resumes a rebuild that stopped between dropping the old index and renaming the new one, without rebuilding it', async () => {
    const p = await project()
    await p.generate()
    await p.migrate()
    // The state a rebuild leaves when it fails at the rename: the old index gone, the new one built under its temporary name.
    await db.query(`CREATE INDEX documents_body_embedding_hnsw_cosine_idx_pgml_kit_new ON documents USING hnsw (body_embedding vector_cosine_ops) WITH (m = 24, ef_construction = 100)`)
    await db.query(`DROP INDEX documents_body_embedding_hnsw_cosine_idx`)
    const built = await db.query<{ oid: number }>(`SELECT 'documents_body_embedding_hnsw_cosine_idx_pgml_kit_new'::regclass::oid::int AS oid`)
    await p.writeConfig(documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine', m: 24, efConstruction: 100 }] }))
    await p.generate()
    expect((await p.migrate()).ran).toHaveLength(1)
    // The replacement that was there is the index now (same object: it was kept, not dropped and rebuilt).
    expect(await db.query<{ oid: number }>(`SELECT 'documents_body_embedding_hnsw_cosine_idx'::regclass::oid::int AS oid`)).toEqual(built)
    expect(await indexes()).toEqual([{ name: 'documents_body_embedding_hnsw_cosine_idx', am: 'hnsw', valid: true, options: ['m=24', 'ef_construction=100'] }])
  })

  it('refuses to take an index someone else created under the configured name for its own', async () => {
    const p = await project()
    await p.generate()
    await p.migrate('up', 2)
    await db.query(`CREATE INDEX documents_body_embedding_hnsw_cosine_idx ON documents (title)`)
    // A file run statement by statement holds one step: the error names the config object it came from.
    await expect(p.migrate()).rejects.toThrow(/index public\.documents_body_embedding_hnsw_cosine_idx is not the one the config describes .*\(in the statements generated from tables\.documents\.embeddings\.body_embedding\.indexes, at: DO /)
  })

  it('refuses a full-text source the table does not have, or that is not text, before changing anything, naming the table and the config paths', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-documents.sql', `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text, views integer);
-- Down Migration
DROP TABLE documents;
`)
    const config = documentsConfig({ mode: 'queue' })
    await p.writeConfig({ ...config, tables: { documents: { ...config.tables.documents!, fullText: { source: ['nope', 'title', { column: 'views', weight: 'B' }] } } } })
    await p.generate()
    const error = await p.migrate().then(() => null, (e: unknown) => e as MigrationError)
    expect(error?.message).toMatch(/the full-text source of public\.documents must be text columns, and these are not: nope \(no such column\) at tables\.documents\.fullText\.source\[0\], views \(integer\) at tables\.documents\.fullText\.source\[2\]/)
    expect(await schemaExists('pgml_kit')).toBe(false)
    expect(await db.query(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'public.documents'::regclass AND attname IN ('body_embedding', 'search_tsv')`)).toEqual([{ n: 0 }])
  })

  it('says which config object a failing generated statement came from', async () => {
    const config = documentsConfig({ mode: 'queue' })
    const p = await project({ ...config, tables: { documents: { ...config.tables.documents!, fullText: { source: ['title', 'body'], language: 'klingon' } } } })
    await p.generate()
    const error = await p.migrate().then(() => null, (e: unknown) => e as MigrationError)
    expect(error?.code).toBe('MIGRATION_FAILED')
    expect(error?.message).toMatch(/text search configuration "klingon" does not exist \(in the statements generated from tables\.documents\.fullText, at: ALTER TABLE "public"\."documents" ADD COLUMN "search_tsv" tsvector GENERATED/)
    expect(await schemaExists('pgml_kit')).toBe(false)
  })

  it('checks source column types and the key against the table before changing anything', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-documents.sql', `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text, views integer, code uuid NOT NULL UNIQUE);
-- Down Migration
DROP TABLE documents;
`)
    await p.writeConfig(documentsConfig({ mode: 'queue', source: ['title', 'views'] }))
    await p.generate()
    await expect(p.migrate()).rejects.toThrow(/the source of public\.documents\.body_embedding must be text columns, and these are not: views \(integer\) at tables\.documents\.embeddings\.body_embedding\.source\[1\]/)
    await rm(join(db.cwd, 'migrations'), { recursive: true })
    await p.writeMigration('1000000000000_create-documents.sql', `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text, views integer, code uuid NOT NULL UNIQUE);
-- Down Migration
DROP TABLE documents;
`)
    const config = documentsConfig({ mode: 'queue' })
    await p.writeConfig({ ...config, tables: { documents: { ...config.tables.documents!, primaryKey: 'uuid' } } })
    await p.generate()
    await expect(p.migrate()).rejects.toThrow(/\(uuid\) is not the primary key \(nor a unique, not-null key\) of public\.documents \(config: tables\.documents\.primaryKey\)/)
    expect(await schemaExists('pgml_kit')).toBe(false)
    // A unique, not-null key that is not the primary key will do.
    await p.writeConfig({ ...config, tables: { documents: { ...config.tables.documents!, primaryKey: 'code' } } })
    await rm(join(db.cwd, 'migrations', '.pgml-kit-snapshot.json'))
    for (const f of (await readdir(join(db.cwd, 'migrations'))).filter((f) => !f.startsWith('1000000000000'))) await rm(join(db.cwd, 'migrations', f))
    await p.generate()
    expect((await p.migrate()).ran.length).toBeGreaterThan(0)
  })

  it('puts session settings back when a file outside a transaction fails halfway', async () => {
    const p = await project()
    await p.writeMigration('1500000000000_fails.sql', `-- pgml-kit:no-transaction
-- Up Migration
SET lock_timeout = '7s';
SELECT 1 / 0;
-- Down Migration
SELECT 1;
`)
    await expect(p.migrate()).rejects.toThrow(/division by zero/)
    // On the embedded database every connection shares that one session.
    expect(await db.query(`SELECT current_setting('lock_timeout') AS v`)).toEqual([{ v: '0' }])
  })

  if (tier.name === 'embedded') {
    it('drops a trigger-mode column on a target without pgml (only bringing it back needs pgml)', async () => {
      db = await tier.create()
      const p = new TestProject(db)
      await p.writeMigration('1000000000000_create-documents.sql', `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text);
${PGML_EMBED_TEST_DOUBLE}
-- Down Migration
DROP TABLE documents;
`)
      await p.writeConfig({ tables: {} })
      await p.migrate()
      await p.writeConfig(documentsConfig({ mode: 'trigger' }))
      await p.generate()
      await p.migrate()
      // pgml goes away; the column can still be removed.
      await db.query('DROP SCHEMA pgml CASCADE')
      await p.writeConfig({ tables: {} })
      await p.generate()
      expect((await p.migrate()).ran.length).toBeGreaterThan(0)
      const error = await p.migrate('down').catch((e: unknown) => e)
      expect((error as TargetError).message).toMatch(/reverting .* calls pgml\.embed/)
    })
  }

  if (tier.name === 'server') {
    it('names the file that was running when the connection was lost, and the files that stay applied (read on a new connection)', async () => {
      db = await tier.create()
      const p = new TestProject(db)
      for (let i = 1; i <= 4; i++) await p.writeMigration(`100000000000${i}_step-${i}.sql`, `-- Up Migration\nCREATE TABLE step_${i} (id bigint PRIMARY KEY);\n-- Down Migration\nDROP TABLE step_${i};\n`)
      // The fifth file's backend is terminated in the middle of it (by itself: the same role may).
      await p.writeMigration('1000000000005_step-5.sql', `-- Up Migration\nCREATE TABLE step_5 (id bigint PRIMARY KEY);\nSELECT pg_terminate_backend(pg_backend_pid());\n-- Down Migration\nDROP TABLE step_5;\n`)
      await p.writeConfig({ tables: {} })
      const error = await p.migrate().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(MigrationError)
      const e = error as MigrationError
      expect(e.message).toMatch(/^migration 1000000000005_step-5 failed on .*: terminating connection due to administrator command/)
      expect(e.where).toMatch(/1000000000005_step-5\.sql$/)
      expect(e.hint).toBe('1000000000005_step-5 was rolled back as a whole; the 4 files before it stay applied (1000000000001_step-1, 1000000000002_step-2, 1000000000003_step-3, 1000000000004_step-4). Run migrate again when the database answers')
      expect((await db.query<{ name: string }>('SELECT name FROM pgmigrations ORDER BY run_on, id')).map((r) => r.name)).toEqual([1, 2, 3, 4].map((i) => `100000000000${i}_step-${i}`))
      expect(await db.query(`SELECT to_regclass('step_5') AS t`)).toEqual([{ t: null }])
      // The file is fixed; the run goes on from it.
      await p.writeMigration('1000000000005_step-5.sql', `-- Up Migration\nCREATE TABLE step_5 (id bigint PRIMARY KEY);\n-- Down Migration\nDROP TABLE step_5;\n`)
      expect((await p.migrate()).ran).toEqual(['1000000000005_step-5'])
    })

    it('names the session holding the migration lock; a pgml-kit migrate still running a statement gets the statement that stops it', async () => {
      const p = await project()
      await p.generate()
      const { PG_MIGRATE_LOCK_ID } = await import('node-pg-migrate')
      // What a killed migrate leaves on the server: its session, still in its statement, holding the lock.
      const orphan = new pg.Client({ connectionString: db.url, application_name: 'pgml-kit migrate' })
      await orphan.connect()
      try {
        await orphan.query('SELECT pg_advisory_lock($1)', [PG_MIGRATE_LOCK_ID])
        const pid = (await orphan.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
        const sleeping = orphan.query('SELECT pg_sleep(60)').catch((e: unknown) => e)
        const config = await loadConfig('pgml-kit.config.ts', db.cwd)
        const waits: string[] = []
        const error = await migrate({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: config.migrationsDir, settings: config.migrations, lockWaitMs: 1_500, onWait: (m) => waits.push(m) }).catch((e: unknown) => e)
        expect(error).toBeInstanceOf(MigrationError)
        expect((error as MigrationError).message).toMatch(new RegExp(`^another migration run holds the migration lock on this database: pid ${pid} \\(pgml-kit migrate, active for \\d+ s: SELECT pg_sleep\\(60\\)\\)$`))
        expect((error as MigrationError).hint).toContain(`SELECT pg_cancel_backend(${pid});`)
        expect(waits).toEqual([expect.stringMatching(new RegExp(`^waiting for the migration lock, held by pid ${pid} .*pg_cancel_backend\\(${pid}\\)`))])
        // The statement it names stops it; the lock stays with the session, which a gone client's would not keep.
        await db.query(`SELECT pg_cancel_backend(${pid})`)
        expect(String(await sleeping)).toMatch(/canceling statement/)
        await orphan.query('SELECT pg_advisory_unlock_all()')
        expect((await migrate({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: config.migrationsDir, settings: config.migrations })).ran.length).toBeGreaterThan(0)
      } finally {
        await orphan.end()
      }
    })

    it('waits out an unrelated long transaction during a concurrent index build, and says what it waits for', async () => {
      const p = await project()
      await p.generate()
      await p.migrate('up', 2)
      const pg = await import('pg')
      const report = new pg.default.Client({ connectionString: db.url, application_name: 'a long report' })
      await report.connect()
      const waits: string[] = []
      try {
        // A REPEATABLE READ transaction on another table holds a snapshot the build must wait out.
        await report.query('CREATE TABLE other (x int)')
        await report.query('BEGIN ISOLATION LEVEL REPEATABLE READ')
        await report.query('SELECT count(*) FROM other')
        const config = await (await import('../../src/config/load.js')).loadConfig('pgml-kit.config.ts', db.cwd)
        const running = (await import('../../src/migrations/run.js')).migrate({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: config.migrationsDir, settings: config.migrations, onWait: (m) => waits.push(m) })
        for (let i = 0; i < 100 && waits.length === 0; i++) await new Promise((r) => setTimeout(r, 100))
        expect(waits[0]).toMatch(/waiting for pid \d+ \(idle in transaction, its transaction open \d+ s, a long report: SELECT count\(\*\) FROM other\)/)
        await report.query('COMMIT')
        expect((await running).ran).toHaveLength(1)
        // The monitor never names itself (its own short queries are not what the build waits out).
        expect(waits.join('\n')).not.toContain('pgml-kit migrate monitor')
      } finally {
        await report.end()
      }
      expect((await indexes()).map((i) => i.valid)).toEqual([true])
    })

    it('fails a concurrent index build past its own lock timeout when one is set, and succeeds when run again', async () => {
      const p = await project(documentsConfig({}, { migrations: { indexLockTimeout: '300ms' } }))
      await p.generate()
      await p.migrate('up', 2)
      const pg = await import('pg')
      const blocker = new pg.default.Client({ connectionString: db.url })
      await blocker.connect()
      try {
        await blocker.query('BEGIN')
        await blocker.query('LOCK TABLE documents IN SHARE MODE')
        await expect(p.migrate()).rejects.toThrow(/lock timeout/)
      } finally {
        await blocker.query('ROLLBACK')
        await blocker.end()
      }
      expect(await db.query(`SELECT count(*)::int AS n FROM pgmigrations`)).toEqual([{ n: 2 }])
      expect((await p.migrate()).ran).toHaveLength(1)
      expect((await indexes()).map((i) => i.valid)).toEqual([true])
    })
  }
})
