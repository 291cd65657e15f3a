import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import type { EmbeddingColumnNode } from '../../src/model/ir.js'
import { createKit } from '../../src/query/create-kit.js'
import { planOperations } from '../../src/plan/plan-migration.js'
import { quoteIdent, quoteQualified } from '../../src/sql/quote.js'
import { readColumnWithCopies } from '../../src/db/live-catalog.js'
import { localEmbedderLoader } from '../../src/embed/embedder-for-config.js'
import { backfill } from '../../src/worker/backfill.js'
import { readQueueStats } from '../../src/worker/queue.js'
import { MODELS_DIR, TINY_32, cosine, loadTiny, parseVector } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { tiers, withClient, type TestDatabase } from '../helpers/targets.js'

/**
 * Two queue columns whose schema, table and column names read alike once joined (with "__" or
 * "."): everything pgml-kit derives from a column — jobs, catalog rows, the worker's write guard,
 * maps of columns, searches, queue stats — must keep them apart (plans: test/unit/plan.test.ts).
 * The two use models of different dimensions, so a vector of the other column's model cannot even
 * be stored.
 */
const MODELS = [{ id: 'pgml-kit/tiny-bert-16', dimensions: 16 }, { id: 'pgml-kit/tiny-bert-32', dimensions: 32 }] as const

interface Named { readonly schema: string; readonly table: string; readonly column: string }

const PAIRS: Record<string, readonly [Named, Named]> = {
  'table a__b column c, table a column b__c': [{ schema: 'public', table: 'a__b', column: 'c' }, { schema: 'public', table: 'a', column: 'b__c' }],
  'schema a table b__c, schema a__b table c': [{ schema: 'a', table: 'b__c', column: 'emb' }, { schema: 'a__b', table: 'c', column: 'emb' }],
  'schema a table b column c.d, schema a.b table c column d': [{ schema: 'a', table: 'b', column: 'c.d' }, { schema: 'a.b', table: 'c', column: 'd' }],
  'the same with quotes and spaces: a "x.b c.d.e': [{ schema: 'a "x', table: 'b c', column: 'd.e' }, { schema: 'a "x.b c', table: 'd', column: 'e' }],
}

describe.each(tiers)('columns whose names read alike when joined, on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  /** Every row of the column's table has the vector of its own text by the column's own model. */
  async function expectOwnVectors(column: EmbeddingColumnNode, rowCount: number) {
    const rows = await db.query<{ body: string; v: string | null }>(`SELECT body, ${quoteIdent(column.column)}::text AS v FROM ${quoteQualified(column.schema, column.table)} ORDER BY id`)
    expect(rows).toHaveLength(rowCount)
    const embedder = await loadTiny({ ...TINY_32, id: column.model.id, dimensions: column.model.dimensions })
    const expected = await embedder.embed(rows.map((r) => r.body))
    rows.forEach((row, i) => {
      expect(row.v, `${JSON.stringify(column.schema)}.${JSON.stringify(column.table)}.${JSON.stringify(column.column)} row ${i + 1} has no vector`).not.toBeNull()
      const stored = parseVector(row.v!)
      expect(stored).toHaveLength(column.model.dimensions)
      expect(cosine(stored, expected[i]!), `${column.table}.${column.column} row ${i + 1}: ${row.body}`).toBeGreaterThan(0.99999)
    })
  }

  it.each(Object.entries(PAIRS))('%s: the worker, backfill, queue stats and searches keep them apart; every row gets its own vector', async (_name, pair) => {
    db = await tier.create()
    const p = new TestProject(db)
    const create = pair.map((t) => `${t.schema === 'public' ? '' : `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(t.schema)};\n`}CREATE TABLE ${quoteQualified(t.schema, t.table)} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);`)
    await p.writeMigration('1000000000000_base.sql', `-- Up Migration\n${create.join('\n')}\n-- Down Migration\nSELECT 1;\n`)
    const config: PgmlKitConfig = { embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false }, tables: {} }
    pair.forEach((t, n) => {
      config.tables[t.table] = { schema: t.schema, embeddings: { [t.column]: { source: ['body'], model: MODELS[n]!, mode: 'queue' } } }
    })
    await p.writeConfig(config)
    await p.generate()
    await p.migrate()
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const columns = pair.map((t) => loaded.state.embeddingColumns.find((c) => c.schema === t.schema && c.table === t.table && c.column === t.column)!)
    expect(columns.every(Boolean)).toBe(true)

    // Different texts in each table, so a vector written to the wrong row (or none) shows.
    for (const [n, c] of columns.entries()) {
      await db.query(`INSERT INTO ${quoteQualified(c.schema, c.table)} (body) SELECT 'table ${n} row ' || i FROM generate_series(1, 3) AS i`)
    }
    await db.query(`UPDATE ${quoteQualified(columns[0]!.schema, columns[0]!.table)} SET body = 'changed' WHERE id = 2`)
    const stats = await withClient(db.url, (client) => readQueueStats(client))
    expect(stats.map((s) => s.depth)).toEqual([3, 3])

    const totals = await p.work()
    expect(totals).toMatchObject({ written: 6, stale: 0, failed: 0, deadLettered: 0 })
    expect(await db.query('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs')).toEqual([{ n: 0 }])
    expect(await db.query('SELECT count(*)::int AS n FROM pgml_kit.embedding_dead_letters')).toEqual([{ n: 0 }])
    for (const c of columns) await expectOwnVectors(c, 3)

    // Rows the queue never saw: backfill fills each column, its own.
    for (const [n, c] of columns.entries()) {
      const table = quoteQualified(c.schema, c.table)
      await db.query(`ALTER TABLE ${table} DISABLE TRIGGER USER; INSERT INTO ${table} (body) VALUES ('backfilled ${n} a'), ('backfilled ${n} b'); ALTER TABLE ${table} ENABLE TRIGGER USER`)
    }
    for (const c of columns) {
      const [target, ...rest] = await readColumnWithCopies(db.url, c)
      expect(rest).toEqual([])
      expect(await backfill({ url: db.url, column: target!, loadEmbedder: localEmbedderLoader(loaded.embedder) })).toMatchObject({ written: 2, failedCount: 0 })
    }
    for (const c of columns) await expectOwnVectors(c, 5)

    // Searches use each column's own model and table.
    const pool = new pg.Pool({ connectionString: db.url, max: 1 })
    try {
      const kit = createKit(loaded.source, { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool }) }), embedIn: 'local' }) as unknown as {
        search(r: string, q: string, o: { k: number }): { select(c: string[]): { execute(): Promise<{ body: string }[]> } }
      }
      for (const [n, c] of columns.entries()) {
        const found = await kit.search(`${c.table}.${c.column}`, `backfilled ${n} b`, { k: 10 }).select(['body']).execute()
        const own = await db.query<{ body: string }>(`SELECT body FROM ${quoteQualified(c.schema, c.table)}`)
        expect(found.map((r) => r.body).sort()).toEqual(own.map((r) => r.body).sort())
        expect(found[0]!.body).toBe(`backfilled ${n} b`)
      }
    } finally {
      await pool.end()
    }
  })

  it('index names that read alike with their schemas ("a.b"."c" and "a"."b.c"): one left out until its column has data, the other built, each once', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_base.sql', `-- Up Migration
CREATE SCHEMA "a.b"; CREATE SCHEMA a;
CREATE TABLE "a.b".t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);
CREATE TABLE a.u (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);
-- Down Migration
SELECT 1;
`)
    const embedding = (index: { method: 'hnsw' | 'ivfflat'; name: string }) => ({ source: ['body'], model: MODELS[0], mode: 'queue' as const, indexes: [{ ...index, distance: 'l2' as const }] })
    await p.writeConfig({
      embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
      tables: { t: { schema: 'a.b', embeddings: { emb: embedding({ method: 'ivfflat', name: 'c' }) } }, u: { schema: 'a', embeddings: { emb: embedding({ method: 'hnsw', name: 'b.c' }) } } },
    })
    const indexes = () => db.query<{ s: string; name: string }>(`SELECT schemaname AS s, indexname AS name FROM pg_indexes WHERE indexname IN ('c', 'b.c') ORDER BY 1`)
    const { plan } = await p.generateWith('add')
    expect(plan.deferred.map((d) => [d.index.schema, d.index.name])).toEqual([['a.b', 'c']])
    await p.migrate()
    expect(await indexes()).toEqual([{ s: 'a', name: 'b.c' }])
    // The column has data now: the next generate builds the IVFFlat index, and only it.
    await db.query(`INSERT INTO "a.b".t (body) VALUES ('one'), ('two')`)
    await p.work()
    const next = await p.generateWith('ivfflat', { sized: true })
    expect(planOperations(next.plan).map((op) => op.kind)).toEqual(['create-vector-index'])
    await p.migrate()
    expect(await indexes()).toEqual([{ s: 'a', name: 'b.c' }, { s: 'a.b', name: 'c' }])
  })

  it('a table with columns named like the aliases in pgml-kit\'s SQL (c, q, t, job, input): worker, backfill, search and hybrid search', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_base.sql', `-- Up Migration
CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text, c int, q int, t int, job int, input int);
-- Down Migration
DROP TABLE notes;
`)
    await p.writeConfig({
      embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
      tables: { notes: { embeddings: { emb: { source: ['body'], model: MODELS[1], mode: 'queue' } }, fullText: { source: 'body' } } },
    })
    await p.generate()
    await p.migrate()
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const column = loaded.state.embeddingColumns[0]!
    await db.query(`INSERT INTO notes (body, c, q, t, job, input) VALUES ('city parks and gardens', 1, 1, 1, 1, 1), ('opening hours of the library', 2, 2, 2, 2, 2)`)
    expect(await p.work()).toMatchObject({ written: 2, stale: 0, failed: 0 })
    await db.query(`ALTER TABLE notes DISABLE TRIGGER USER; INSERT INTO notes (body) VALUES ('swimming pools in summer'); ALTER TABLE notes ENABLE TRIGGER USER`)
    expect(await backfill({ url: db.url, column, loadEmbedder: localEmbedderLoader(loaded.embedder) })).toMatchObject({ written: 1, skipped: 0, failedCount: 0 })
    await expectOwnVectors(column, 3)

    const pool = new pg.Pool({ connectionString: db.url, max: 1 })
    try {
      const kit = createKit(loaded.source, { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool }) }), embedIn: 'local' }) as unknown as {
        search(r: string, q: string, o: { k: number }): { select(c: string[]): { execute(): Promise<{ body: string }[]> } }
        hybridSearch(r: string, q: string, o: { k: number }): { select(c: string[]): { execute(): Promise<{ body: string; text_rank: number | null }[]> } }
      }
      expect(await kit.search('notes.emb', 'library', { k: 3 }).select(['body']).execute()).toHaveLength(3)
      const hybrid = await kit.hybridSearch('notes.emb', 'parks', { k: 3 }).select(['body']).execute()
      expect(hybrid).toHaveLength(3)
      expect(hybrid.find((r) => r.text_rank === 1)?.body).toBe('city parks and gardens')
    } finally {
      await pool.end()
    }
  })
})
