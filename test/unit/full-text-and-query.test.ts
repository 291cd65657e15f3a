import { describe, expect, it } from 'vitest'
import { Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, type Driver, type DatabaseConnection } from 'kysely'
import { EMPTY_STATE } from '../../src/model/ir.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { planMigration, planOperations } from '../../src/plan/plan-migration.js'
import { renderMigrationFiles } from '../../src/migrations/render-files.js'
import { createKit } from '../../src/query/create-kit.js'
import { QueryVector } from '../../src/query/query-vector.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { documentsConfig } from '../helpers/fixtures.js'
import { parseFiles, parseStatements, sections } from '../helpers/sql.js'
import { ConfigError } from '../../src/errors.js'
import { cp, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MODELS_DIR } from '../helpers/embedders.js'
import { defineConfig } from '../../src/config/define-config.js'

const withFullText = (fullText: NonNullable<PgmlKitConfig['tables'][string]['fullText']>): PgmlKitConfig => ({
  tables: { documents: { ...documentsConfig().tables.documents!, fullText } },
})

describe('full-text columns in plans', () => {
  it('adds a weighted tsvector column and builds its GIN index concurrently', () => {
    const state = resolveConfig(withFullText({ language: 'simple', source: [{ column: 'title', weight: 'A' }, 'body'] })).state
    const plan = planMigration(EMPTY_STATE, state)
    expect(planOperations(plan).map((o) => o.kind)).toContain('add-full-text-column')
    const files = renderMigrationFiles(plan, { name: 'fts', timestamp: 1, settings: resolveConfig(documentsConfig()).migrations })
    const sql = files.map((f) => f.content).join('\n')
    expect(sql).toContain(`ADD COLUMN "search_tsv" tsvector GENERATED ALWAYS AS (pg_catalog.setweight(pg_catalog.to_tsvector('simple'::regconfig, coalesce("title", '')), 'A') || pg_catalog.to_tsvector('simple'::regconfig, coalesce("body", ''))) STORED;`)
    expect(sql).toContain('CREATE INDEX CONCURRENTLY IF NOT EXISTS "documents_search_tsv_gin_idx" ON "public"."documents" USING gin ("search_tsv");')
    expect(parseFiles(files)).toBeGreaterThan(5)
  })

  it('re-adds the column when its definition changes, with the old one as the down', () => {
    const before = resolveConfig(withFullText({ source: 'body' })).state
    const after = resolveConfig(withFullText({ source: ['title', 'body'] })).state
    const plan = planMigration(before, after)
    expect(planOperations(plan).map((o) => o.kind)).toEqual(['drop-gin-index', 'preflight', 'drop-full-text-column', 'add-full-text-column', 'create-gin-index'])
    const files = renderMigrationFiles(plan, { name: 'fts', timestamp: 1, settings: resolveConfig(documentsConfig()).migrations })
    expect(sections(files[1]!.content).down).toContain(`GENERATED ALWAYS AS (pg_catalog.to_tsvector('english'::regconfig, coalesce("body", ''))) STORED`)
  })

  it('refuses a text search configuration that is not a name, and a duplicate source', () => {
    expect(() => resolveConfig(withFullText({ language: "english'); DROP TABLE x; --", source: 'body' }))).toThrow(ConfigError)
    expect(() => resolveConfig(withFullText({ source: ['body', 'body'] }))).toThrow(/listed twice/)
  })
})

/**
 * A driver that only compiles: the SQL of each builder, checked by the PostgreSQL parser. Asked
 * anything, it answers with no rows but one that says the pgml_kit catalog cannot be read (so a kit
 * embeds with the config's model, as it does for a role without access to the catalog).
 */
const compileOnly = new Kysely<Record<string, Record<string, unknown>>>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: (): Driver => ({
      init: async () => undefined,
      acquireConnection: async () => ({ executeQuery: async () => ({ rows: [{ readable: false }] }), streamQuery: () => { throw new Error('no streams') } }) as unknown as DatabaseConnection,
      beginTransaction: async () => undefined,
      commitTransaction: async () => undefined, rollbackTransaction: async () => undefined, releaseConnection: async () => undefined, destroy: async () => undefined,
    }),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
})

describe('query builder SQL', () => {
  const config = defineConfig({
    tables: {
      documents: {
        embeddings: { body_embedding: { source: ['title', 'body'], model: { id: 'test/double', dimensions: 8 }, mode: 'app', indexes: [{ method: 'hnsw', distance: 'cosine' }] } },
        fullText: { source: ['title', 'body'] },
      },
    },
  })
  const kit = createKit(config, { db: compileOnly })

  it('orders by the operator of the index\'s operator class and limits to k', () => {
    const compiled = kit.search('documents.body_embedding', [1, 2, 3, 4, 5, 6, 7, 8], { k: 7 }).select(['id']).compile()
    // The query vector is sent once, however often the SQL uses it.
    // Until the kit has read the catalog, its probe of the column's catalog row is NULL (see query.test.ts for the live one).
    expect(compiled.sql).toBe('select ("documents"."body_embedding" <=> $1::vector(8)) as "distance", (1::float8 - ("documents"."body_embedding" <=> $1::vector(8))) as "similarity", NULL::text as "pgml_kit_catalog", "id" from "public"."documents" as "documents" order by ("documents"."body_embedding" <=> $1::vector(8)) limit $2')
    expect(compiled.parameters).toHaveLength(2)
    expect(compiled.parameters[0]).toBeInstanceOf(QueryVector)
    expect(parseStatements(compiled.sql)).toBe(1)
    const l2 = kit.search('documents.body_embedding', [1], { distance: 'l2' }).compile()
    expect(l2.sql).toContain('<->')
    expect(l2.sql).not.toContain('similarity')
  })

  it('compiles over-fetch and hybrid search to valid SQL', () => {
    const over = kit.search('documents.body_embedding', 'q', { k: 3, overFetch: 10 }).where('department', '=', 'x').select(['id']).compile()
    expect(over.sql).toMatch(/from \(select \* from "public"."documents" as "documents" order by .* limit \$\d+\) as "documents"/)
    expect(parseStatements(over.sql)).toBe(1)
    const hybrid = kit.hybridSearch('documents.body_embedding', 'parks', { k: 4 }).select(['title']).compile()
    expect(hybrid.sql).toContain('websearch_to_tsquery(\'english\'::regconfig')
    expect(hybrid.sql).toContain('FULL JOIN x')
    expect(parseStatements(hybrid.sql)).toBe(1)
    expect(parseStatements(kit.db.selectFrom('documents').select(kit.fn.predict('prices', [1, 2]).as('p')).compile().sql)).toBe(1)
  })

  it('refuses hybrid search settings that are not what they say', () => {
    const search = (o: object) => () => kit.hybridSearch('documents.body_embedding', 'parks', o)
    expect(search({ k: 0 })).toThrow(/k must be a positive integer, got 0/)
    expect(search({ candidates: 1.5 })).toThrow(/candidates must be a positive integer, got 1.5/)
    expect(search({ rrfK: Number.NaN })).toThrow(/rrfK must be a finite number/)
    expect(search({ rrfK: -1 })).toThrow(/rrfK must be ≥ 0/)
    expect(search({ weights: { vector: Infinity } })).toThrow(/weights.vector must be a finite number/)
  })

  it('searches by the first index in config order, as the types say, whatever the index names', () => {
    const two = createKit(defineConfig({
      tables: { notes: { embeddings: { e: { source: 't', model: { id: 'm', dimensions: 2 }, mode: 'app', indexes: [{ method: 'hnsw', distance: 'l2', name: 'z_l2' }, { method: 'hnsw', distance: 'cosine', name: 'a_cosine' }] } } } },
    }), { db: compileOnly })
    const compiled = two.search('notes.e', [1, 0]).compile()
    expect(compiled.sql).toContain('<->')
    expect(compiled.sql).not.toContain('similarity')
  })

  it('keeps names with dots, spaces and "as" one identifier each', () => {
    const odd = createKit(defineConfig({
      tables: { 'my table as x': { schema: 'a.b', primaryKey: 'k.1', embeddings: { 'e.v as y': { source: 'the text', model: { id: 'm', dimensions: 2 }, mode: 'app' } }, fullText: { column: 'ts.v', source: 'the text' } } },
    }) as never, { db: compileOnly }) as unknown as { search(r: string, q: number[]): { compile(): { sql: string } }; hybridSearch(r: string, q: string): { compile(): { sql: string } } }
    const search = odd.search('my table as x.e.v as y', [1, 0]).compile().sql
    expect(search).toContain('from "a.b"."my table as x" as "my table as x"')
    expect(search).toContain('"my table as x"."e.v as y" <=>')
    expect(parseStatements(search)).toBe(1)
    const hybrid = odd.hybridSearch('my table as x.e.v as y', 'x').compile().sql
    expect(hybrid).toContain('"t"."k.1" AS "k0"')
    expect(parseStatements(hybrid)).toBe(1)
  })
})

describe('local embedding from a relative models directory', () => {
  it('finds the models relative to cwd, also when the path has spaces', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgml kit with spaces '))
    try {
      await cp(MODELS_DIR, join(dir, 'my models'), { recursive: true })
      const config = defineConfig({
        embedder: { modelsDir: 'my models', allowRemoteModels: false },
        tables: { documents: { embeddings: { body_embedding: { source: 'body', model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }, mode: 'app' } } } },
      })
      const kit = createKit(config, { db: compileOnly, embedIn: 'local', cwd: dir })
      const [vector] = await kit.embed('documents.body_embedding', ['parks'])
      expect(vector).toHaveLength(16)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
