import { describe, expect, it } from 'vitest'
import { PlanError } from '../../src/errors.js'
import { EMPTY_STATE } from '../../src/model/ir.js'
import { resolveConfig } from '../../src/model/resolve.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { planChange, planMigration, planOperations } from '../../src/plan/plan-migration.js'
import { renderMigrationFiles } from '../../src/migrations/render-files.js'
import { documentsConfig } from '../helpers/fixtures.js'
import { parseFiles, sections, expectInOrder } from '../helpers/sql.js'
import { keepExistingNames } from '../../src/migrations/snapshot.js'

function filesFor(previous: PgmlKitConfig | null, next: PgmlKitConfig, name = 'change') {
  const prev = previous ? resolveConfig(previous).state : EMPTY_STATE
  const resolved = resolveConfig(next)
  // As generate plans: staged model changes first, then the diff.
  const { plan } = planChange(prev, keepExistingNames(prev, resolved.state), { renames: resolved.renames, tableRenames: resolved.tableRenames })
  return { plan, files: renderMigrationFiles(plan, { name, timestamp: 1_700_000_000_000, settings: resolved.migrations }) }
}

const kinds = (plan: ReturnType<typeof planMigration>) => planOperations(plan).map((op) => op.kind)

describe('planMigration + renderMigrationFiles', () => {
  it.each(['app', 'trigger', 'generated', 'queue'] as const)('renders the first migration of a %s column; every statement parses', (mode) => {
    const { files } = filesFor(null, documentsConfig({ mode, model: 'intfloat/e5-small-v2' }), `add-${mode}`)
    expect(files.map((f) => [f.fileName, f.transactional, f.requiresPgml])).toEqual([
      [`1700000000000_add-${mode}.sql`, true, { up: mode === 'trigger' || mode === 'generated', down: false }],
      [`1700000000001_add-${mode}--create-vector-index.sql`, false, { up: false, down: false }],
    ])
    expect(parseFiles(files)).toBeGreaterThan(5)
    expect(files.map((f) => f.content).join('\n')).toMatchSnapshot()
  })

  it('is byte-identical for the same config', () => {
    const config = documentsConfig({ mode: 'trigger', indexes: [{ method: 'ivfflat', distance: 'inner_product', lists: 10 }, { method: 'hnsw', distance: 'l1' }] })
    expect(filesFor(null, config).files).toEqual(filesFor(null, structuredClone(config)).files)
  })

  it('asks for pgml only when a plan uses it', () => {
    expect(kinds(filesFor(null, documentsConfig({ mode: 'app' })).plan)).not.toContain('ensure-pgml')
    const trigger = filesFor(null, documentsConfig({ mode: 'trigger' }))
    expect(kinds(trigger.plan)).toContain('ensure-pgml')
    expect(trigger.files[0]?.content).toContain('-- pgml-kit:requires pgml')
    expect(filesFor(null, documentsConfig({ mode: 'app' })).files[0]?.content).not.toContain('pgml-kit:requires')
  })

  it.each(['app', 'trigger', 'generated', 'queue'] as const)('renames a %s column declared renamedFrom (hostile new name) instead of re-embedding it; every statement parses', (mode) => {
    const before = documentsConfig({ mode })
    const column = before.tables.documents!.embeddings.body_embedding!
    const after: PgmlKitConfig = { tables: { documents: { embeddings: { 'Body "vec"; DROP': { ...column, renamedFrom: 'body_embedding' } } } } }
    const { plan, files } = filesFor(before, after)
    expect(kinds(plan)).toEqual(['rename-embedding-column', 'rename-vector-index'])
    expect(files).toHaveLength(1)
    expect(parseFiles(files)).toBeGreaterThan(4)
    const { up, down } = sections(files[0]!.content)
    expect(up).toContain('RENAME COLUMN "body_embedding" TO "Body ""vec""; DROP"')
    expect(down).toContain('RENAME COLUMN "Body ""vec""; DROP" TO "body_embedding"')
    if (mode === 'trigger' || mode === 'queue') expect(up).toContain('CREATE OR REPLACE FUNCTION')
  })

  it('tells the truth in its safety classes: superuser for extensions, slower writes for triggers, a backfill for an app-mode source change', () => {
    const safety = (plan: ReturnType<typeof planMigration>) => Object.fromEntries(planOperations(plan).map((op) => [op.kind, op.safety]))
    expect(safety(filesFor(null, documentsConfig({ mode: 'trigger' })).plan)).toMatchObject({ 'create-vector-extension': 'privileged', 'ensure-pgml': 'privileged', 'create-embed-trigger': 'slows-writes' })
    expect(safety(filesFor(null, documentsConfig({ mode: 'queue' })).plan)).toMatchObject({ 'create-queue-triggers': 'slows-writes' })
    expect(safety(filesFor(null, documentsConfig({ mode: 'generated' })).plan)).toMatchObject({ 'add-embedding-column': 'rewrites-or-locks' })
    const app = filesFor(documentsConfig({ mode: 'app', source: ['body'] }), documentsConfig({ mode: 'app', source: ['title', 'body'] })).plan
    expect(safety(app)).toMatchObject({ 'update-embedding-source': 'needs-backfill' })
    expect(planOperations(app).find((op) => op.kind === 'update-embedding-source')?.notes[0]).toMatch(/stale until the application writes it again/)
  })

  it('renames a renamed column\'s trigger function with it, keeps one renamed before, and refuses a rename onto a column that exists', () => {
    const before = documentsConfig({ mode: 'trigger' })
    const column = before.tables.documents!.embeddings.body_embedding!
    const previous = resolveConfig(before).state
    const renamed = resolveConfig({ tables: { documents: { embeddings: { body_vec: { ...column, renamedFrom: 'body_embedding' } } } } })
    const wanted = keepExistingNames(previous, renamed.state)
    const [was, now] = [previous.embeddingColumns[0]!.triggerFunction!, wanted.embeddingColumns[0]!.triggerFunction!]
    expect(now).toMatch(/^embed__documents__body_vec__/)
    const up = planOperations(planMigration(previous, wanted, { renames: renamed.renames })).flatMap((op) => op.up).join('\n')
    expect(up).toContain(`ALTER FUNCTION "pgml_kit"."${was}"() RENAME TO "${now}";`)
    // A column renamed by an earlier pgml-kit, recorded under its new name with its old function name, keeps it.
    const recorded = { ...wanted, embeddingColumns: [{ ...wanted.embeddingColumns[0]!, triggerFunction: was }] }
    expect(keepExistingNames(recorded, renamed.state).embeddingColumns[0]?.triggerFunction).toBe(was)
    // body_vec was already recorded (and body_embedding too): renaming onto it is refused, naming the config path.
    const both = resolveConfig({ tables: { documents: { embeddings: { body_embedding: column, body_vec: { ...column, source: ['body'] } } } } }).state
    expect(() => planMigration(both, renamed.state, { renames: renamed.renames })).toThrow(expect.objectContaining({
      code: 'RENAME_TARGET_EXISTS', where: 'tables.documents.embeddings.body_vec.renamedFrom',
    }))
  })

  describe('a table declared renamedFrom', () => {
    const model = { id: 'test/double', dimensions: 8 }
    const table = (extra: Partial<PgmlKitConfig['tables'][string]> = {}): PgmlKitConfig['tables'][string] => ({
      embeddings: {
        body_embedding: { source: ['body'], model, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine' }] },
        title_embedding: { source: ['title'], model, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'l2', name: 'title_vectors' }, { method: 'ivfflat', distance: 'l2', lists: 'auto' }] },
      },
      fullText: { source: ['title', { column: 'body', weight: 'B' }] },
      ...extra,
    })
    const before: PgmlKitConfig = { roles: { app: 'web', worker: 'embedder' }, tables: { documents: table() } }
    const hostile = 'Art "icles"; DROP'
    const after: PgmlKitConfig = { roles: { app: 'web', worker: 'embedder' }, tables: { [hostile]: table({ renamedFrom: 'documents' }) } }

    it('is renamed, not dropped and re-added: no column, index, backfill or grant changes; every statement parses', () => {
      const { plan, files } = filesFor(before, after)
      expect(kinds(plan)).toEqual(['rename-table'])
      expect(plan.before).toEqual([])
      expect(plan.after).toEqual([])
      expect(planOperations(plan).every((op) => op.safety === 'safe')).toBe(true)
      expect(files).toHaveLength(1)
      expect(parseFiles(files)).toBeGreaterThan(10)
      const { up, down } = sections(files[0]!.content)
      const q = '"Art ""icles""; DROP"'
      expect(up).toContain(`ALTER TABLE "public"."documents" RENAME TO ${q};`)
      expect(down).toContain(`ALTER TABLE "public".${q} RENAME TO "documents";`)
      // Index names derived from the table's follow it; an explicit one stays.
      expect(up).toContain(`ALTER INDEX "public"."documents_body_embedding_hnsw_cosine_idx" RENAME TO "Art ""icles""; DROP_body_embedding_hnsw_cosine_idx";`)
      expect(up).toContain(`ALTER INDEX "public"."documents_search_tsv_gin_idx" RENAME TO "Art ""icles""; DROP_search_tsv_gin_idx";`)
      expect(up).not.toContain('"title_vectors" RENAME')
      // Trigger functions take the new table's names, and their bodies name it.
      expect(up).toMatch(/ALTER FUNCTION "pgml_kit"\."embed__documents__body_embedding__[^"]+"\(\) RENAME TO "embed__Art ""icles""; DROP__body_embedding__/)
      expect(up).toContain(`IF TG_TABLE_SCHEMA <> 'public' OR TG_TABLE_NAME <> 'Art "icles"; DROP' THEN`)
      expect(up).toContain(`VALUES ('public', 'Art "icles"; DROP', 'title_embedding'`)
      // Every runtime row that names the table follows it, in both directions.
      for (const runtime of ['embedding_columns', 'embedding_jobs', 'embedding_dead_letters', 'backfill_checkpoints']) {
        expect(up).toContain(`UPDATE pgml_kit.${runtime} SET table_name = 'Art "icles"; DROP' WHERE table_schema = 'public' AND table_name = 'documents';`)
        expect(down).toContain(`UPDATE pgml_kit.${runtime} SET table_name = 'documents' WHERE table_schema = 'public' AND table_name = 'Art "icles"; DROP';`)
      }
      // The table is renamed before any runtime row is touched (a worker's write never waits on a row the migration holds).
      expectInOrder(up, 'RENAME TO', 'UPDATE pgml_kit.embedding_jobs')
      expectInOrder(down, 'RENAME TO "documents"', 'UPDATE pgml_kit.embedding_jobs')
      // (The trigger functions' own REVOKE EXECUTE … FROM PUBLIC comes with their bodies.)
      expect(files[0]!.content).not.toMatch(/DROP COLUMN|ADD COLUMN|GRANT |REVOKE (?!EXECUTE ON FUNCTION "pgml_kit")|CREATE INDEX|DROP INDEX/)
    })

    it('is planned once: generating again with renamedFrom still in the config plans nothing', () => {
      const previous = resolveConfig(before).state
      const resolved = resolveConfig(after)
      const { desired } = planChange(previous, keepExistingNames(previous, resolved.state), { tableRenames: resolved.tableRenames })
      expect(planOperations(planChange(desired, keepExistingNames(desired, resolved.state), { tableRenames: resolved.tableRenames }).plan)).toEqual([])
    })

    it('goes with a column rename, a new column and a changed index in the same change', () => {
      const body = table().embeddings.body_embedding!
      const changed: PgmlKitConfig = { tables: { articles: table({
        renamedFrom: 'documents',
        embeddings: { ...table().embeddings, body_vec: { ...body, renamedFrom: 'body_embedding' }, body_embedding: undefined!, extra: { source: 'body', model, mode: 'app', indexes: [{ method: 'hnsw', distance: 'l2', m: 8 }] } },
      }) } }
      delete changed.tables.articles!.embeddings.body_embedding
      changed.tables.articles!.embeddings.title_embedding = { ...table().embeddings.title_embedding!, indexes: [{ method: 'hnsw', distance: 'l2', name: 'title_vectors', m: 32 }] }
      const { plan, files } = filesFor({ tables: { documents: table() } }, changed)
      expect(kinds(plan)).toEqual([
        'drop-vector-index', 'drop-vector-index', 'rename-table', 'preflight', 'rename-embedding-column',
        'add-embedding-column', 'register-embedding-column', 'create-vector-index', 'create-vector-index',
      ])
      expect(parseFiles(files)).toBeGreaterThan(10)
      // The renamed column's index takes the name derived from both new names in the table's rename.
      expect(planOperations(plan)[2]!.up.join('\n')).toContain('ALTER INDEX "public"."documents_body_embedding_hnsw_cosine_idx" RENAME TO "articles_body_vec_hnsw_cosine_idx";')
      // The indexes that go are dropped before the rename, under the old table; their downs build them there.
      expect(plan.before.map((op) => op.down.join('\n'))).toEqual([expect.stringContaining('ON "public"."documents"'), expect.stringContaining('ON "public"."documents"')])
      expect(plan.after.map((op) => op.up.join('\n'))).toEqual([expect.stringContaining('ON "public"."articles"'), expect.stringContaining('ON "public"."articles"')])
    })

    it('refuses what cannot work, naming the config path', () => {
      const previous = resolveConfig(before).state
      const refusal = (config: PgmlKitConfig, recorded = previous) => {
        const resolved = resolveConfig(config)
        try {
          planChange(recorded, keepExistingNames(recorded, resolved.state), { tableRenames: resolved.tableRenames })
        } catch (error) {
          expect(error).toBeInstanceOf(PlanError)
          return error as PlanError
        }
        throw new Error('expected a PlanError')
      }
      expect(refusal({ tables: { articles: table({ renamedFrom: 'docs' }) } })).toMatchObject({
        code: 'RENAME_SOURCE_MISSING', where: 'tables.articles.renamedFrom',
        message: 'tables.articles is declared as renamed from public.docs, but the last generated state has no table public.docs; it has public.documents',
      })
      expect(refusal({ tables: { articles: table({ schema: 'app', renamedFrom: 'documents' }) } })).toMatchObject({
        code: 'RENAME_SOURCE_MISSING', where: 'tables.articles.renamedFrom', hint: expect.stringMatching(/moving a table to another schema \(public\) is not supported/),
      })
      const both = resolveConfig({ tables: { documents: table(), articles: { embeddings: { body_embedding: table().embeddings.body_embedding! } } } }).state
      expect(refusal({ tables: { articles: table({ renamedFrom: 'documents' }) } }, both)).toMatchObject({ code: 'RENAME_TARGET_EXISTS', where: 'tables.articles.renamedFrom' })
      const changedModel = table({ renamedFrom: 'documents' })
      changedModel.embeddings.body_embedding = { ...changedModel.embeddings.body_embedding!, model: { id: 'other/model', dimensions: 8 } }
      expect(refusal({ tables: { articles: changedModel } })).toMatchObject({ code: 'MODEL_CHANGE_UNSUPPORTED', hint: expect.stringMatching(/generate the rename first/) })
      const view = { entities: ['id'], source: { table: 'documents' }, timestamp: 'created_at', features: { n: 'integer' } }
      const withView = resolveConfig({ tables: { documents: table() }, features: { views: { stats: view } } }).state
      expect(refusal({ tables: { articles: table({ renamedFrom: 'documents' }) }, features: { views: { stats: { ...view, source: { table: 'articles' } } } } }, withView)).toMatchObject({
        code: 'RENAME_FEATURE_SOURCE', where: 'features.views.stats.source',
      })
    })
  })

  it('plans nothing when nothing changed', () => {
    const config = documentsConfig({ mode: 'trigger' })
    expect(planOperations(filesFor(config, config).plan)).toHaveLength(0)
  })

  it('keeps non-transactional index steps in files of their own, with their directive and timeouts', () => {
    const { files } = filesFor(documentsConfig({ indexes: [] }), documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine' }, { method: 'ivfflat', distance: 'l2', lists: 7 }] }))
    const indexFiles = files.filter((f) => !f.transactional)
    expect(indexFiles).toHaveLength(2)
    for (const file of indexFiles) {
      expect(file.content).toContain('-- pgml-kit:no-transaction')
      const { up } = sections(file.content)
      // Concurrent builds wait for older transactions by default instead of failing after lock_timeout.
      expect(up).toMatch(/SET lock_timeout = '0';[\s\S]*DROP INDEX CONCURRENTLY IF EXISTS "public"."[^"]*_pgml_kit_invalid"[\s\S]*NOT i.indisvalid[\s\S]*CREATE INDEX CONCURRENTLY IF NOT EXISTS[\s\S]*is not the one the config describes[\s\S]*RESET lock_timeout;/)
    }
    expect(indexFiles[1]?.content).toContain('USING ivfflat ("body_embedding" "vector_l2_ops") WITH (lists = 7)')
    const { files: first } = filesFor(null, documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine' }] }))
    expect(first[0]?.content).toMatch(/SET LOCAL lock_timeout = '5s';\nSET LOCAL statement_timeout = '5min';/)
  })

  it('uses the operator class of the vector type and distance', () => {
    const { files } = filesFor(null, documentsConfig({ type: 'halfvec', indexes: [{ method: 'hnsw', distance: 'l1' }, { method: 'hnsw', distance: 'inner_product' }] }))
    const sql = files.map((f) => f.content).join('\n')
    expect(sql).toContain('"halfvec_l1_ops"')
    expect(sql).toContain('"halfvec_ip_ops"')
    expect(sql).toContain('ADD COLUMN "body_embedding" halfvec(8);')
  })

  it('adds a source column by replacing the trigger, with the old one as its down', () => {
    const before = documentsConfig({ mode: 'trigger', source: ['body'] })
    const after = documentsConfig({ mode: 'trigger', source: ['body', 'title'] })
    const { plan, files } = filesFor(before, after)
    expect(kinds(plan)).toEqual(['preflight', 'replace-embed-trigger', 'update-embedding-source'])
    expect(planOperations(plan)[1]?.safety).toBe('needs-backfill')
    const { up, down } = sections(files[0]!.content)
    expect(up).toContain('BEFORE INSERT OR UPDATE OF "body", "title"')
    expect(down).toContain('BEFORE INSERT OR UPDATE OF "body" ON')
    expect(parseFiles(files)).toBeGreaterThan(0)
  })

  it('re-adds a generated column whose source changes, and rebuilds its indexes', () => {
    const { plan } = filesFor(documentsConfig({ mode: 'generated', source: ['body'] }), documentsConfig({ mode: 'generated', source: ['title', 'body'] }))
    expect(kinds(plan)).toEqual(['drop-vector-index', 'preflight', 'drop-embedding-column', 'add-embedding-column', 'update-embedding-source', 'create-vector-index'])
  })

  it('rebuilds an index whose parameters change by building a replacement first', () => {
    const { plan, files } = filesFor(documentsConfig(), documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine', m: 24, efConstruction: 100 }] }))
    expect(kinds(plan)).toEqual(['rebuild-vector-index'])
    const { up, down } = sections(files[0]!.content)
    expect(up).toMatch(/CREATE INDEX CONCURRENTLY IF NOT EXISTS "documents_body_embedding_hnsw_cosine_idx_pgml_kit_new" .* WITH \(m = 24, ef_construction = 100\);[\s\S]*DROP INDEX CONCURRENTLY IF EXISTS "public"."documents_body_embedding_hnsw_cosine_idx";[\s\S]*ALTER INDEX IF EXISTS "public"."documents_body_embedding_hnsw_cosine_idx_pgml_kit_new" RENAME TO "documents_body_embedding_hnsw_cosine_idx"/)
    expect(down).toContain('WITH (m = 16, ef_construction = 64)')
    // up and down each: 2 SET, leftover (drop, move aside if invalid, drop), build, drop old, rename, verify, 2 RESET
    expect(parseFiles(files)).toBe(22)
  })

  it('drops an embedding column as a destructive step whose down restores it and its index', () => {
    const config = documentsConfig({ mode: 'trigger' })
    const { plan, files } = filesFor(config, { tables: {} })
    expect(kinds(plan)).toEqual(['drop-vector-index', 'unregister-embedding-column', 'drop-embed-trigger', 'drop-embedding-column', 'release-vector-extension', 'release-runtime'])
    // Dropping needs no pgml; bringing the trigger back does.
    expect(files[1]?.requiresPgml).toEqual({ up: false, down: true })
    expect(planOperations(plan).some((op) => op.safety === 'destructive')).toBe(true)
    expect(files[0]?.transactional).toBe(false)
    expect(sections(files[1]!.content).down).toMatch(/ADD COLUMN "body_embedding"[\s\S]*CREATE TRIGGER[\s\S]*INSERT INTO pgml_kit.embedding_columns/)
    expect(files[1]?.content).toContain('[DESTRUCTIVE]')
  })

  it('stages a model change instead of recomputing vectors in place, and refuses one combined with a rename', () => {
    // test/unit/rollout.test.ts takes staged changes through every stage.
    const { plan } = filesFor(documentsConfig(), documentsConfig({ model: { id: 'test/double', dimensions: 16 } }))
    expect(plan.stages.map((s) => s.stage)).toEqual(['shadow'])
    expect(kinds(plan)).not.toContain('drop-embedding-column')
    const column = documentsConfig().tables.documents!.embeddings.body_embedding!
    const change = () => filesFor(documentsConfig(), { tables: { documents: { embeddings: { body_vec: { ...column, model: { id: 'other/model', dimensions: 8 }, renamedFrom: 'body_embedding' } } } } })
    expect(change).toThrow(PlanError)
    expect(change).toThrow(/public\.documents\.body_vec is renamed and its model changes \(test\/double vector\(8\) → other\/model vector\(8\)\)/)
    try { change() } catch (error) {
      expect((error as PlanError).code).toBe('MODEL_CHANGE_UNSUPPORTED')
      expect((error as PlanError).hint).toMatch(/generate the rename first/)
    }
  })

  it('quotes odd table and column names everywhere and still parses', () => {
    const config: PgmlKitConfig = {
      tables: {
        'Order "Items"': {
          schema: 'Sales Data',
          embeddings: { "it's embedding": { source: ['Title', 'select'], model: { id: "o'brien/model", dimensions: 4, documentPrefix: "it's: " }, mode: 'trigger', separator: ' | ', indexes: [{ method: 'hnsw', distance: 'l2' }] } },
        },
      },
    }
    const { files } = filesFor(null, config)
    expect(parseFiles(files)).toBeGreaterThan(5)
    const sql = files.map((f) => f.content).join('\n')
    expect(sql).toContain('ALTER TABLE "Sales Data"."Order ""Items""" ADD COLUMN "it\'s embedding" vector(4);')
    expect(sql).toContain("pgml.embed('o''brien/model', 'it''s: ' OPERATOR(pg_catalog.||) (")
  })

  it('keeps apart columns whose names read alike once joined with "." (schema a table b column c.d, schema a.b table c column d)', () => {
    const config: PgmlKitConfig = {
      tables: {
        b: { schema: 'a', embeddings: { 'c.d': { source: 'body', model: { id: 'm/x', dimensions: 4 }, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'cosine' }] } } },
        c: { schema: 'a.b', embeddings: { d: { source: 'body', model: { id: 'm/y', dimensions: 8 }, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'l2' }] } } },
      },
    }
    const { plan, files } = filesFor(null, config)
    expect(kinds(plan).filter((k) => k === 'add-embedding-column' || k === 'create-vector-index' || k === 'create-queue-triggers')).toHaveLength(6)
    const sql = files.map((f) => f.content).join('\n')
    expect(sql).toContain('ALTER TABLE "a"."b" ADD COLUMN "c.d" vector(4);')
    expect(sql).toContain('ALTER TABLE "a.b"."c" ADD COLUMN "d" vector(8);')
    expect(sql).toMatch(/CREATE INDEX CONCURRENTLY IF NOT EXISTS "[^"]+" ON "a"\."b" USING hnsw \("c\.d" "vector_cosine_ops"\)/)
    expect(sql).toMatch(/CREATE INDEX CONCURRENTLY IF NOT EXISTS "[^"]+" ON "a\.b"\."c" USING hnsw \("d" "vector_l2_ops"\)/)
    expect(parseFiles(files)).toBeGreaterThan(5)
  })

  it('accepts index names that read alike with their schemas (schema a.b index c, schema a index b.c)', () => {
    const config: PgmlKitConfig = {
      tables: {
        t: { schema: 'a.b', embeddings: { e: { source: 'body', model: { id: 'm/x', dimensions: 4 }, mode: 'app', indexes: [{ method: 'hnsw', distance: 'cosine', name: 'c' }] } } },
        u: { schema: 'a', embeddings: { e: { source: 'body', model: { id: 'm/x', dimensions: 4 }, mode: 'app', indexes: [{ method: 'hnsw', distance: 'cosine', name: 'b.c' }] } } },
      },
    }
    const sql = filesFor(null, config).files.map((f) => f.content).join('\n')
    expect(sql).toMatch(/CREATE INDEX CONCURRENTLY IF NOT EXISTS "c" ON "a\.b"\."t" USING hnsw/)
    expect(sql).toMatch(/CREATE INDEX CONCURRENTLY IF NOT EXISTS "b\.c" ON "a"\."u" USING hnsw/)
  })
})

describe('queue mode plans', () => {
  it('adds enqueue triggers, and replaces them when a source column is added', () => {
    const first = filesFor(null, documentsConfig({ mode: 'queue' }))
    expect(kinds(first.plan)).toEqual(['preflight', 'install-runtime', 'create-vector-extension', 'add-embedding-column', 'create-queue-triggers', 'register-embedding-column', 'create-vector-index'])
    expect(first.files[0]?.content).toContain('AFTER INSERT OR UPDATE OF "title", "body" ON "public"."documents"')
    expect(first.files[0]?.content).toContain('AFTER DELETE ON "public"."documents"')
    const changed = filesFor(documentsConfig({ mode: 'queue', source: ['body'] }), documentsConfig({ mode: 'queue', source: ['body', 'title'] }))
    expect(kinds(changed.plan)).toEqual(['preflight', 'replace-queue-triggers', 'update-embedding-source'])
    expect(parseFiles([...first.files, ...changed.files])).toBeGreaterThan(10)
  })

  it('upgrades a runtime schema installed by an earlier version', () => {
    // A project generated by a version whose runtime schema was 1, adding a queue column now.
    const previous = { ...resolveConfig(documentsConfig({ mode: 'app' })).state, runtimeVersion: 1 }
    const both = documentsConfig({ mode: 'app' })
    both.tables.documents!.embeddings.title_embedding = { source: 'title', model: { id: 'test/double', dimensions: 8 }, mode: 'queue' }
    const plan = planMigration(previous, resolveConfig(both).state)
    expect(kinds(plan)).toEqual(['preflight', 'install-runtime', 'add-embedding-column', 'create-queue-triggers', 'register-embedding-column'])
    expect(planOperations(plan)[1]?.summary).toMatch(/upgrade the pgml_kit runtime schema to version 7/)
    // Versions 2 to 7, each idempotent, then the pooling and distance of the column registered before 5; the shared schema is not downgraded by a down.
    expect(planOperations(plan)[1]?.up).toHaveLength(7)
    expect(planOperations(plan)[1]?.up[6]).toMatch(/^UPDATE pgml_kit\.embedding_columns SET pooling = NULL, distance = 'cosine' WHERE table_schema = 'public' AND table_name = 'documents' AND column_name = 'body_embedding';$/)
    expect(planOperations(plan)[1]?.down.join('\n')).not.toMatch(/DROP/)
  })

  it('records a changed query prefix in the catalog (stored vectors stay), reversibly', () => {
    const before = documentsConfig({ mode: 'app', model: { id: 'test/double', dimensions: 8, queryPrefix: 'query: ' } })
    const after = documentsConfig({ mode: 'app', model: { id: 'test/double', dimensions: 8, queryPrefix: 'search_query: ' } })
    const { plan, files } = filesFor(before, after)
    expect(kinds(plan)).toEqual(['update-query-settings'])
    expect(planOperations(plan)[0]?.up.join()).toContain(`SET query_prefix = 'search_query: '`)
    expect(planOperations(plan)[0]?.down.join()).toContain(`SET query_prefix = 'query: '`)
    expect(parseFiles(files)).toBeGreaterThan(2)
  })

  it('refuses to change the primary key of a queue column', () => {
    const before = documentsConfig({ mode: 'queue' })
    const after = { tables: { documents: { ...before.tables.documents!, primaryKey: 'uuid' } } }
    expect(() => filesFor(before, after)).toThrow(/changing the primary key/)
  })
})
