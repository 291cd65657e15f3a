import { describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { ConfigError, PlanError } from '../../src/errors.js'
import { EMPTY_STATE } from '../../src/model/ir.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { planChange, planMigration, planOperations } from '../../src/plan/plan-migration.js'
import { grantsFor } from '../../src/plan/grants.js'
import { renderMigrationFiles } from '../../src/migrations/render-files.js'
import { parseFiles, sections, splitStatements } from '../helpers/sql.js'

/** The config, resolution and plan of chunked embedding columns (the database side: test/integration/chunked-columns.test.ts). */

type Embedding = PgmlKitConfig['tables'][string]['embeddings'][string]

function config(embedding: Partial<Embedding> = {}, extra: Partial<PgmlKitConfig['tables'][string]> = {}): PgmlKitConfig {
  return {
    roles: { app: 'web', worker: 'embedder' },
    tables: {
      pages: {
        embeddings: {
          body_chunks: { source: 'body', model: 'pgml-kit/wordnet-static-128', mode: 'queue', chunking: { template: '{title}: {chunk}' }, indexes: [{ method: 'hnsw', distance: 'cosine' }], ...embedding },
        },
        ...extra,
      },
    },
  }
}

const problems = (c: PgmlKitConfig): string[] => {
  try {
    resolveConfig(c)
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => `${i.path}: ${i.message}`)
    throw error
  }
  return []
}

describe('chunking in the config', () => {
  it('resolves to a chunked column with its chunk table, view, template columns, index and queue function; not an embedding column', () => {
    const { state } = resolveConfig(config())
    expect(state.embeddingColumns).toEqual([])
    const [node] = state.chunkedColumns!
    expect(node).toMatchObject({
      schema: 'public', table: 'pages', column: 'body_chunks', mode: 'queue', keyColumns: ['id'], sourceColumns: ['body'], templateColumns: ['title'],
      chunkTable: 'pages_body_chunks', view: 'pages_body_chunks_view', fullText: null,
      chunking: { splitter: 'recursive', size: 800, overlap: 0, separators: null, template: '{title}: {chunk}', sectionEvery: 4 },
    })
    expect(node!.indexes).toEqual([expect.objectContaining({ name: 'pages_body_chunks_hnsw_cosine_idx', table: 'pages_body_chunks', column: 'embedding' })])
    expect(node!.triggerFunction).toMatch(/^enqueue_chunks__pages__body_chunks__[0-9a-f]{12}$/)
    expect(state.runtimeVersion).toBeGreaterThan(0)
    // The tokens splitter's size defaults to the model's window.
    expect(resolveConfig(config({ chunking: { splitter: 'tokens' } })).state.chunkedColumns![0]!.chunking.size).toBeNull()
  })

  it('refuses what cannot work, naming the config path', () => {
    expect(problems(config({ mode: 'trigger' }))).toEqual([expect.stringMatching(/^tables\.pages\.embeddings\.body_chunks\.mode: a chunked column is kept in sync in mode "queue" .* or "app"/)])
    expect(problems(config({ mode: 'generated' }))[0]).toMatch(/splitter runs in Node/)
    expect(problems(config({ indexes: [{ method: 'ivfflat', distance: 'cosine' }] }))).toEqual([expect.stringMatching(/^tables\.pages\.embeddings\.body_chunks\.indexes\[0\]\.method: a chunked column takes HNSW/)])
    expect(problems(config({ chunking: { size: 100, overlap: 100 } }))).toEqual(['tables.pages.embeddings.body_chunks.chunking.overlap: must be smaller than size (100)'])
    expect(problems(config({ chunking: { splitter: 'markdown', separators: ['\n'] } }))[0]).toMatch(/chunking\.separators: only the "recursive" splitter/)
    expect(problems(config({ chunking: { template: 'no placeholder' } }))).toEqual(['tables.pages.embeddings.body_chunks.chunking.template: must contain {chunk}'])
    expect(problems(config({ source: 'chunk' }))[0]).toMatch(/column "chunk" of pages has the name of a chunk table column/)
    expect(problems(config({}, { primaryKey: 'embedding' }))[0]).toMatch(/column "embedding" of pages has the name of a chunk table column/)
    expect(problems(config({ renamedFrom: 'old' }))[0]).toMatch(/renamedFrom: a chunked column cannot be renamed yet/)
    // Its chunk table's name taken by a declared table.
    const clash: PgmlKitConfig = { tables: { ...config().tables, pages_body_chunks: { embeddings: {} } } }
    expect(problems(clash)[0]).toMatch(/public\.pages_body_chunks is already used by tables\.pages_body_chunks/)
  })
})

describe('planning chunked columns', () => {
  const files = (from: ReturnType<typeof resolveConfig>['state'], to: ReturnType<typeof resolveConfig>['state']) => {
    const plan = planMigration(from, to)
    return { plan, files: renderMigrationFiles(plan, { name: 'chunks', timestamp: 1_700_000_000_000, settings: resolveConfig(config()).migrations }) }
  }

  it('creates the chunk table, view and queue in one transactional file, builds the index concurrently after; every statement parses; down undoes it', () => {
    const { state } = resolveConfig(config())
    const { plan, files: out } = files(EMPTY_STATE, state)
    const kinds = planOperations(plan).map((o) => o.kind)
    expect(kinds).toContain('create-chunked-column')
    expect(plan.after.map((o) => o.kind)).toEqual(['create-vector-index'])
    expect(parseFiles(out)).toBeGreaterThan(20)
    const main = out.find((f) => /create TABLE|CREATE TABLE/.test(f.content))!
    const { up, down } = sections(main.content)
    const statements = splitStatements(up)
    // In order: the table (empty, from the source's key), its columns and constraints, the GIN-less view, the queue.
    const at = (pattern: RegExp) => {
      const i = statements.findIndex((s) => pattern.test(s.replace(/^(--[^\n]*\n)+/, '')))
      expect(i, String(pattern)).toBeGreaterThanOrEqual(0)
      return i
    }
    const created = at(/^CREATE TABLE "public"\."pages_body_chunks" AS SELECT "id" FROM "public"\."pages" WITH NO DATA/)
    const altered = at(/ON DELETE CASCADE ON UPDATE CASCADE/)
    const view = at(/^CREATE VIEW "public"\."pages_body_chunks_view"/)
    const trigger = at(/^CREATE TRIGGER "pgml_kit_chunks_body_chunks_write"\s+AFTER INSERT OR UPDATE OF "id", "body", "title"/)
    const queued = at(/^INSERT INTO pgml_kit\.embedding_jobs [\s\S]*\sFROM "public"\."pages" AS t/)
    expect([created, altered, view, trigger, queued]).toEqual([...[created, altered, view, trigger, queued]].sort((a, b) => a - b))
    // Grants: the app reads the chunks, the worker reads the row's key, source and template columns and writes chunks.
    expect(up).toMatch(/GRANT SELECT ON TABLE "public"\."pages_body_chunks" TO "web"/)
    expect(up).toMatch(/GRANT SELECT \("body", "id", "title"\) ON TABLE "public"\."pages" TO "embedder"|GRANT SELECT \([^)]*"title"[^)]*\) ON TABLE "public"\."pages" TO "embedder"/)
    const downStatements = splitStatements(down)
    expect(downStatements.some((s) => /(^|\n)DROP TABLE "public"\."pages_body_chunks"/.test(s))).toBe(true)
    expect(downStatements.some((s) => /(^|\n)DELETE FROM pgml_kit\.embedding_jobs WHERE table_schema = 'public' AND table_name = 'pages' AND column_name = 'body_chunks'/.test(s))).toBe(true)
  })

  it('grants: mode app lets the application write chunks; mode queue only read them', () => {
    const atoms = (c: PgmlKitConfig) => grantsFor(resolveConfig(c).state).filter((a) => a.on.kind === 'table' && a.on.table === 'pages_body_chunks').map((a) => `${a.role} ${a.privilege}`).sort()
    expect(atoms(config())).toEqual(['embedder DELETE', 'embedder INSERT', 'embedder SELECT', 'embedder UPDATE', 'web SELECT'])
    expect(atoms(config({ mode: 'app' }))).toEqual(['web DELETE', 'web INSERT', 'web SELECT', 'web UPDATE'])
  })

  it('an index change rebuilds the index; removing the column drops index then table; changing how chunks are made is refused with what to do instead', () => {
    const before = resolveConfig(config()).state
    const rebuilt = planMigration(before, resolveConfig(config({ indexes: [{ method: 'hnsw', distance: 'cosine', m: 24 }] })).state)
    expect(planOperations(rebuilt).map((o) => o.kind)).toEqual(['rebuild-vector-index'])
    const removed = planMigration(before, resolveConfig({ ...config(), tables: { pages: { embeddings: {} } } }).state)
    expect(removed.before.map((o) => o.kind)).toEqual(['drop-vector-index'])
    expect(removed.main.map((o) => o.kind)).toContain('drop-chunked-column')
    expect(removed.main.find((o) => o.kind === 'drop-chunked-column')!.safety).toBe('destructive')
    // A splitter change is staged by planChange (generate, plan); planMigration alone refuses it, saying so.
    expect(() => planMigration(before, resolveConfig(config({ chunking: { size: 400, template: '{title}: {chunk}' } })).state)).toThrow(/planMigration does not chunk .* again in place/)
    for (const change of [{ model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16 } }, { mode: 'app' as const }, { chunking: { template: '{title}: {chunk}', table: 'other_chunks' } }]) {
      let error: unknown
      try {
        planChange(before, resolveConfig(config(change as Partial<Embedding>)).state)
      } catch (e) {
        error = e
      }
      expect(error, JSON.stringify(change)).toBeInstanceOf(PlanError)
      expect(String((error as PlanError).message)).toMatch(/changes its (model|mode|chunk table)/)
      expect((error as PlanError).hint).toMatch(/another chunked column beside this one/)
    }
    // Unchanged: nothing to do.
    expect(planOperations(planMigration(before, resolveConfig(config()).state))).toEqual([])
  })

  it('a splitter change goes in stages: shadow, waiting, switch, the previous table kept, then dropped; back to the live settings drops the shadow; a third setting waits for the drop', () => {
    const live = resolveConfig(config()).state
    const changed = resolveConfig(config({ chunking: { size: 300, overlap: 30, template: '{title} | {chunk}' } })).state
    const kinds = (p: { plan: Parameters<typeof planOperations>[0] }) => planOperations(p.plan).map((o) => o.kind)
    const shadow = planChange(live, changed, { switch: 'never' })
    expect(shadow.plan.stages.map((s) => [s.stage, s.subject])).toEqual([['shadow', 'chunking']])
    expect(kinds(shadow)).toEqual(['preflight', 'prepare-live-chunks', 'create-chunked-column', 'grant-privileges', 'create-vector-index'])
    expect(shadow.desired.chunkedColumns!.map((c) => [c.column, c.chunkTable, c.rollout?.role ?? 'live', c.chunking.size])).toEqual([
      ['body_chunks', 'pages_body_chunks', 'live', 800], ['body_chunks__next', 'pages_body_chunks__next', 'next', 300],
    ])
    // The next generate: waits (told why) until the database says the shadow is filled; --switch writes it without looking.
    const waits = planChange(shadow.desired, changed, { switch: 'when-filled' })
    expect(kinds(waits)).toEqual([])
    expect(waits.plan.stages[0]).toMatchObject({ stage: 'waits-for-switch', waiting: true })
    expect(waits.plan.stages[0]!.message).toMatch(/give --database-url/)
    const filled = { source: 'test', tables: new Map(), fill: new Map([['public.pages.body_chunks__next', { withText: 200, missing: 0, deadLetters: 0, hidden: 0 }]]) }
    expect(planChange(shadow.desired, changed, { sizing: { ...filled, fill: new Map([['public.pages.body_chunks__next', { withText: 200, missing: 0, deadLetters: 0, hidden: 120 }]]) } }).plan.stages[0]!.message)
      .toMatch(/40\.0% filled \(120 of 200 rows with text have chunks in the live table and none in it yet/)
    // Rows in flight (chunked for the live table a moment ago, queued for the shadow): 1% and one may be; more wait.
    expect(planChange(shadow.desired, changed, { sizing: { ...filled, fill: new Map([['public.pages.body_chunks__next', { withText: 200, missing: 0, deadLetters: 0, hidden: 3 }]]) } }).plan.stages[0]!.stage).toBe('switch')
    expect(planChange(shadow.desired, changed, { sizing: { ...filled, fill: new Map([['public.pages.body_chunks__next', { withText: 200, missing: 0, deadLetters: 0, hidden: 4 }]]) } }).plan.stages[0]!.stage).toBe('waits-for-switch')
    const switched = planChange(shadow.desired, changed, { sizing: filled })
    expect(switched.plan.stages.map((s) => s.stage)).toEqual(['switch'])
    expect(kinds(switched)).toEqual(['check-chunks-filled', 'switch-chunked-column'])
    expect(switched.desired.chunkedColumns!.map((c) => [c.column, c.chunkTable, c.chunking.size, c.indexes.map((i) => i.name)])).toEqual([
      ['body_chunks', 'pages_body_chunks', 300, ['pages_body_chunks_hnsw_cosine_idx']],
      ['body_chunks__previous', 'pages_body_chunks__previous', 800, ['pages_body_chunks_hnsw_cosine_idx__previous']],
    ])
    // Renames in the switch: the live side first (its names freed), then the shadow's; down the other way round.
    const op = planOperations(switched.plan).find((o) => o.kind === 'switch-chunked-column')!
    const renames = (sql: readonly string[]) => sql.flatMap((s) => [...s.matchAll(/ALTER (?:TABLE|INDEX IF EXISTS) "public"\."([^"]+)" RENAME TO "([^"]+)"/g)].map((m) => `${m[1]} → ${m[2]}`))
    expect(renames(op.up)).toEqual([
      'pages_body_chunks → pages_body_chunks__previous', 'pages_body_chunks__next → pages_body_chunks',
      'pages_body_chunks_hnsw_cosine_idx → pages_body_chunks_hnsw_cosine_idx__previous', 'pages_body_chunks_hnsw_cosine_idx__next → pages_body_chunks_hnsw_cosine_idx',
    ])
    expect(renames(op.down)).toEqual([
      'pages_body_chunks → pages_body_chunks__next', 'pages_body_chunks__previous → pages_body_chunks',
      'pages_body_chunks_hnsw_cosine_idx → pages_body_chunks_hnsw_cosine_idx__next', 'pages_body_chunks_hnsw_cosine_idx__previous → pages_body_chunks_hnsw_cosine_idx',
    ])
    // The previous table waits for --allow-destructive.
    const keeps = planChange(switched.desired, changed)
    expect(kinds(keeps)).toEqual([])
    expect(keeps.plan.stages[0]).toMatchObject({ stage: 'keeps-previous', waiting: true })
    const dropped = planChange(switched.desired, changed, { dropPrevious: true })
    expect(kinds(dropped)).toEqual(['drop-vector-index', 'revoke-privileges', 'drop-chunked-column'])
    expect(dropped.desired.chunkedColumns!.map((c) => c.column)).toEqual(['body_chunks'])
    // A third setting while the previous table is kept: refused until it is dropped.
    expect(() => planChange(switched.desired, resolveConfig(config({ chunking: { size: 200, template: '{title}: {chunk}' } })).state)).toThrow(/keeps the previous chunks/)
    // Back to the live settings during the shadow: the shadow goes; a third setting replaces it.
    const abandon = planChange(shadow.desired, live)
    expect(abandon.plan.stages[0]!.stage).toBe('abandon')
    expect(kinds(abandon)).toEqual(['drop-vector-index', 'revoke-privileges', 'drop-chunked-column'])
    const replaced = planChange(shadow.desired, resolveConfig(config({ chunking: { size: 200, template: '{title}: {chunk}' } })).state)
    expect(replaced.plan.stages[0]!.stage).toBe('replace-shadow')
    expect(kinds(replaced)).toEqual(['drop-vector-index', 'drop-chunked-column', 'create-chunked-column', 'create-vector-index'])
  })
})
