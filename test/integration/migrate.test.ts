import { afterEach, describe, expect, it } from 'vitest'
import { MigrationError, TargetError } from '../../src/errors.js'
import { documentsConfig } from '../helpers/fixtures.js'
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

  it('applies, reverts and re-applies the generated migrations (up, down, up)', async () => {
    const p = await project(documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine' }, { method: 'ivfflat', distance: 'l2', lists: 2 }] }))
    const written = await p.generate('add-doc-embeddings')
    expect(written).toHaveLength(3)

    const up = await p.migrate()
    expect(up.ran).toHaveLength(4)
    expect(await columnType()).toBe('vector(8)')
    expect(await indexes()).toEqual([
      { name: 'documents_body_embedding_hnsw_cosine_idx', am: 'hnsw', valid: true, options: ['m=16', 'ef_construction=64'] },
      { name: 'documents_body_embedding_ivfflat_l2_idx', am: 'ivfflat', valid: true, options: ['lists=2'] },
    ])
    expect(await db.query('SELECT table_name, column_name, model_id, dimensions, mode, source_columns FROM pgml_kit.embedding_columns')).toEqual([
      { table_name: 'documents', column_name: 'body_embedding', model_id: 'test/double', dimensions: 8, mode: 'app', source_columns: ['title', 'body'] },
    ])
    await db.query(`INSERT INTO documents (title, body, body_embedding) VALUES ('a', 'b', '[1,0,0,0,0,0,0,0]'), ('c', 'd', '[0,1,0,0,0,0,0,0]')`)
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

  it('leaves the database as it was when a migration fails', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    // The config names a table no migration creates: the ALTER TABLE fails after earlier statements ran.
    await p.writeConfig({ tables: { missing_table: documentsConfig().tables.documents! } })
    await p.generate()
    const error = await p.migrate().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(MigrationError)
    expect((error as MigrationError).message).toMatch(/relation "public.missing_table" does not exist/)
    expect(await schemaExists('pgml_kit')).toBe(false)
    expect(await db.query(`SELECT extname FROM pg_extension WHERE extname = 'vector'`)).toEqual([])
    expect(await db.query('SELECT name FROM pgmigrations')).toEqual([])
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

  if (tier.name === 'server') {
    it('fails a concurrent index build blocked past lock_timeout, and succeeds when run again', async () => {
      const p = await project(documentsConfig({}, { migrations: { lockTimeout: '300ms' } }))
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
