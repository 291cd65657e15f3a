import { describe, expect, it } from 'vitest'
import { PlanError } from '../../src/errors.js'
import { EMPTY_STATE, type DesiredState } from '../../src/model/ir.js'
import { resolveConfig } from '../../src/model/resolve.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { planChange, planOperations, type ChangeOptions, type Plan } from '../../src/plan/plan-migration.js'
import { renderMigrationFiles } from '../../src/migrations/render-files.js'
import { keepExistingNames } from '../../src/migrations/snapshot.js'
import type { Sizing } from '../../src/indexes/sizing.js'
import { documentsConfig } from '../helpers/fixtures.js'
import { parseFiles, sections, expectInOrder } from '../helpers/sql.js'

/** A project's history: each step plans from the state the previous one recorded, as generate does. */
class History {
  state: DesiredState = EMPTY_STATE
  #timestamp = 1_700_000_000_000

  step(config: PgmlKitConfig, options: ChangeOptions = {}) {
    const resolved = resolveConfig(config)
    const { plan, desired } = planChange(this.state, keepExistingNames(this.state, resolved.state), { renames: resolved.renames, ...options })
    const files = renderMigrationFiles(plan, { name: 'step', timestamp: (this.#timestamp += 10), settings: resolved.migrations })
    const deferred = new Set(plan.deferred.map((d) => `${d.index.schema}.${d.index.name}`))
    this.state = { ...desired, indexes: desired.indexes.filter((i) => !deferred.has(`${i.schema}.${i.name}`)) }
    return { plan, files }
  }
}

const kinds = (plan: Plan) => planOperations(plan).map((op) => op.kind)
const A = { id: 'test/double', dimensions: 8 }
const B = { id: 'test/double-b', dimensions: 16 }
const columns = (h: History) => h.state.embeddingColumns.map((c) => [c.column, c.model.id, c.rollout?.role ?? 'live'])
const filled = (withText: number, missing: number, deadLetters = 0): Sizing => ({
  source: 'test database', tables: new Map([['public.documents', { rows: withText, filled: {} }]]),
  fill: new Map([['public.documents.body_embedding__next', { withText, missing, deadLetters }]]),
})

describe('a staged model change', () => {
  it.each(['queue', 'trigger', 'app'] as const)('goes shadow → switch → drop in mode %s, each stage its own reversible migration; every statement parses', (mode) => {
    const h = new History()
    h.step(documentsConfig({ mode, model: A }))

    const shadow = h.step(documentsConfig({ mode, model: B }))
    expect(shadow.plan.stages.map((s) => s.stage)).toEqual(['shadow'])
    expect(kinds(shadow.plan)).toEqual([
      'preflight', 'add-embedding-column',
      ...(mode === 'trigger' ? ['create-embed-trigger'] : mode === 'queue' ? ['create-queue-triggers'] : []),
      'register-embedding-column', 'create-vector-index',
    ])
    expect(columns(h)).toEqual([['body_embedding', 'test/double', 'live'], ['body_embedding__next', 'test/double-b', 'next']])
    expect(h.state.indexes.map((i) => i.name)).toEqual(['documents_body_embedding_hnsw_cosine_idx', 'documents_body_embedding_hnsw_cosine_idx__next'])
    // The live column is not touched: no rewrite, no lock beyond an instant.
    expect(sections(shadow.files[0]!.content).up).not.toMatch(/"body_embedding" (vector|DROP)/)
    expect(parseFiles(shadow.files)).toBeGreaterThan(3)

    // Without a database to say the shadow is filled, the switch waits; nothing is written.
    const waiting = h.step(documentsConfig({ mode, model: B }))
    expect(kinds(waiting.plan)).toEqual([])
    expect(waiting.plan.stages).toMatchObject([{ stage: 'waits-for-switch', waiting: true }])
    expect(waiting.plan.stages[0]?.message).toMatch(/--database-url|--switch/)
    // A database that says it is not filled: the message says how far it is and what to run.
    const partly = h.step(documentsConfig({ mode, model: B }), { sizing: filled(200, 14) })
    expect(kinds(partly.plan)).toEqual([])
    expect(partly.plan.stages[0]?.message).toMatch(/backfill 93\.0% \(14 of 200 rows with text have no test\/double-b vector yet\): run `pgml-kit backfill documents\.body_embedding`/)
    expect(h.step(documentsConfig({ mode, model: B }), { sizing: filled(200, 0, 3) }).plan.stages[0]?.message).toMatch(/3 job\(s\) .* dead-lettered/)

    const switched = h.step(documentsConfig({ mode, model: B }), { sizing: filled(200, 0) })
    expect(kinds(switched.plan)).toEqual(['check-embedding-filled', 'switch-embedding-column'])
    expect(switched.files).toHaveLength(1)
    expect(columns(h)).toEqual([['body_embedding', 'test/double-b', 'live'], ['body_embedding__previous', 'test/double', 'previous']])
    expect(h.state.indexes.map((i) => [i.name, i.column])).toEqual([['documents_body_embedding_hnsw_cosine_idx', 'body_embedding'], ['documents_body_embedding_hnsw_cosine_idx__previous', 'body_embedding__previous']])
    const { up, down } = sections(switched.files[0]!.content)
    // Checked filled first, then the renames, live side first; the down is the same switch backwards.
    expectInOrder(up, 'rows with text have no vector', 'RENAME COLUMN')
    expectInOrder(up, 'RENAME COLUMN "body_embedding" TO "body_embedding__previous"', 'RENAME COLUMN "body_embedding__next" TO "body_embedding"')
    expectInOrder(down, 'RENAME COLUMN "body_embedding" TO "body_embedding__next"', 'RENAME COLUMN "body_embedding__previous" TO "body_embedding"')
    expect(up).toContain(`rollout_role = 'previous', rollout_of = 'body_embedding'`)
    expect(parseFiles(switched.files)).toBeGreaterThan(8)

    // The previous column waits for a separate approval; generate --check sees nothing to do.
    const kept = h.step(documentsConfig({ mode, model: B }))
    expect(kinds(kept.plan)).toEqual([])
    expect(kept.plan.stages).toMatchObject([{ stage: 'keeps-previous', waiting: true }])
    const dropped = h.step(documentsConfig({ mode, model: B }), { dropPrevious: true })
    expect(kinds(dropped.plan)).toEqual([
      'drop-vector-index', 'check-embedding-filled', 'unregister-embedding-column',
      ...(mode === 'trigger' ? ['drop-embed-trigger'] : mode === 'queue' ? ['drop-queue-triggers'] : []),
      'drop-embedding-column',
    ])
    expect(planOperations(dropped.plan).find((op) => op.kind === 'drop-embedding-column')?.safety).toBe('destructive')
    // The previous queue's jobs only kept the dropped vectors in sync: deleted, not a reason to refuse (under load
    // there always are some). The live column must hold every vector first.
    if (mode === 'queue') expect(sections(dropped.files[1]!.content).up).not.toMatch(/still queued/)
    expectInOrder(sections(dropped.files[1]!.content).up, 'rows with text have no vector', 'DROP COLUMN')
    expect(columns(h)).toEqual([['body_embedding', 'test/double-b', 'live']])
    expect(kinds(h.step(documentsConfig({ mode, model: B })).plan)).toEqual([])
    expect(parseFiles(dropped.files)).toBeGreaterThan(4)
  })

  it('stages every kind of change that needs the vectors recomputed, and changes only the mode in place', () => {
    const base = { mode: 'queue' as const, model: A }
    const staged: Partial<PgmlKitConfig['tables'][string]['embeddings'][string]>[] = [
      { model: { ...A, revision: 'v2' } }, { model: { ...A, documentPrefix: 'passage: ' } }, { model: { ...A, normalize: false } },
      { model: { ...A, pooling: 'cls' } }, { type: 'halfvec' }, { model: B }, { model: B, mode: 'app' },
    ]
    for (const change of staged) {
      const h = new History()
      h.step(documentsConfig(base))
      expect(h.step(documentsConfig({ ...base, ...change })).plan.stages.map((s) => s.stage)).toEqual(['shadow'])
    }
    // Same model, another mode: the vectors stay, the triggers change, the catalog says so.
    const h = new History()
    h.step(documentsConfig({ mode: 'app', model: A }))
    const toQueue = h.step(documentsConfig({ mode: 'queue', model: A }))
    expect(toQueue.plan.stages).toEqual([])
    expect(kinds(toQueue.plan)).toEqual(['create-queue-triggers', 'update-embedding-mode'])
    expect(kinds(h.step(documentsConfig({ mode: 'trigger', model: A })).plan)).toEqual(['ensure-pgml', 'drop-queue-triggers', 'create-embed-trigger', 'update-embedding-mode'])
    const toApp = h.step(documentsConfig({ mode: 'app', model: A }))
    expect(kinds(toApp.plan)).toEqual(['drop-embed-trigger', 'update-embedding-mode'])
    expect(parseFiles(toQueue.files) + parseFiles(toApp.files)).toBeGreaterThan(4)
    // A query prefix (or the search distance) is recorded in the catalog, which the query builders follow.
    const prefix = h.step(documentsConfig({ mode: 'app', model: { ...A, queryPrefix: 'query: ' } }))
    expect(kinds(prefix.plan)).toEqual(['update-query-settings'])
    expect(planOperations(prefix.plan)[0]?.up.join()).toContain(`SET query_prefix = 'query: ', distance = 'cosine'`)
  })

  it('leaves a generated column without a rewrite: its shadow is filled in batches, and nothing becomes generated', () => {
    const h = new History()
    h.step(documentsConfig({ mode: 'generated', model: A }))
    const shadow = h.step(documentsConfig({ mode: 'trigger', model: A }))
    expect(shadow.plan.stages.map((s) => s.stage)).toEqual(['shadow'])
    expect(sections(shadow.files[0]!.content).up).not.toMatch(/GENERATED ALWAYS/)
    const error = (() => { try { new History().step(documentsConfig({ mode: 'generated', model: B })) } catch (e) { return e } })()
    expect(error).toBeUndefined()
    const refused = new History()
    refused.step(documentsConfig({ mode: 'queue', model: A }))
    for (const config of [documentsConfig({ mode: 'generated', model: A }), documentsConfig({ mode: 'generated', model: B })]) {
      expect(() => refused.step(config)).toThrow(PlanError)
      expect(() => refused.step(config)).toThrow(/would rewrite public\.documents/)
    }
    try { refused.step(documentsConfig({ mode: 'generated', model: B })) } catch (e) {
      expect(e).toMatchObject({ code: 'MODEL_CHANGE_GENERATED', where: 'tables.documents.embeddings.body_embedding.mode' })
      expect((e as PlanError).hint).toMatch(/mode "trigger"/)
    }
  })

  it('follows the config when it changes again: a third model replaces the shadow, the old one abandons it, and after the switch back it switches back', () => {
    const h = new History()
    h.step(documentsConfig({ mode: 'queue', model: A }))
    h.step(documentsConfig({ mode: 'queue', model: B }))
    const third = h.step(documentsConfig({ mode: 'queue', model: { id: 'test/double-c', dimensions: 4 } }))
    expect(third.plan.stages.map((s) => s.stage)).toEqual(['replace-shadow'])
    expect(kinds(third.plan)).toContain('drop-embedding-column')
    // Its jobs are worthless: deleted with it, not a reason to refuse.
    expect(planOperations(third.plan).find((op) => op.kind === 'drop-queue-triggers')?.summary).toMatch(/queued jobs are deleted/)
    expect(columns(h)).toEqual([['body_embedding', 'test/double', 'live'], ['body_embedding__next', 'test/double-c', 'next']])
    const abandoned = h.step(documentsConfig({ mode: 'queue', model: A }))
    expect(abandoned.plan.stages.map((s) => s.stage)).toEqual(['abandon'])
    expect(columns(h)).toEqual([['body_embedding', 'test/double', 'live']])

    h.step(documentsConfig({ mode: 'queue', model: B }))
    h.step(documentsConfig({ mode: 'queue', model: B }), { switch: 'always' })
    expect(columns(h)).toEqual([['body_embedding', 'test/double-b', 'live'], ['body_embedding__previous', 'test/double', 'previous']])
    const back = h.step(documentsConfig({ mode: 'queue', model: A }), { switch: 'always' })
    expect(kinds(back.plan)).toEqual(['check-embedding-filled', 'switch-embedding-column'])
    expect(columns(h)).toEqual([['body_embedding', 'test/double', 'live'], ['body_embedding__next', 'test/double-b', 'next']])
    expect(h.state.indexes.map((i) => i.name)).toEqual(['documents_body_embedding_hnsw_cosine_idx', 'documents_body_embedding_hnsw_cosine_idx__next'])
    // A third model while the previous one is kept is refused, with what to do.
    h.step(documentsConfig({ mode: 'queue', model: B }), { switch: 'always' })
    const third2 = (() => { try { h.step(documentsConfig({ mode: 'queue', model: { id: 'test/double-c', dimensions: 4 } })) } catch (e) { return e as PlanError } })()
    expect(third2).toMatchObject({ code: 'ROLLOUT_UNFINISHED', where: 'tables.documents.embeddings.body_embedding.model' })
    expect(third2?.hint).toMatch(/generate --allow-destructive/)
  })

  it('waits for the shadow\'s IVFFlat index, built once it has vectors, before it switches', () => {
    const h = new History()
    const ivf = [{ method: 'ivfflat' as const, distance: 'l2' as const, lists: 10 }]
    h.step(documentsConfig({ mode: 'queue', model: A, indexes: ivf }), { sizing: { source: 'db', tables: new Map([['public.documents', { rows: 500, filled: { body_embedding: 500 } }]]) } })
    const shadow = h.step(documentsConfig({ mode: 'queue', model: B, indexes: ivf }))
    expect(shadow.plan.deferred.map((d) => d.index.name)).toEqual(['documents_body_embedding_ivfflat_l2_idx__next'])
    const sized: Sizing = { ...filled(500, 0), tables: new Map([['public.documents', { rows: 500, filled: { body_embedding: 500, body_embedding__next: 500 } }]]) }
    const build = h.step(documentsConfig({ mode: 'queue', model: B, indexes: ivf }), { sizing: sized })
    expect(kinds(build.plan)).toEqual(['create-vector-index'])
    expect(build.plan.stages[0]?.message).toMatch(/waits for the indexes/)
    expect(kinds(h.step(documentsConfig({ mode: 'queue', model: B, indexes: ivf }), { sizing: sized }).plan)).toEqual(['check-embedding-filled', 'switch-embedding-column'])
  })

  it('refuses a rename during a model change, and a shadow name the table already uses; quotes hostile names', () => {
    const h = new History()
    h.step(documentsConfig({ mode: 'queue', model: A }))
    h.step(documentsConfig({ mode: 'queue', model: B }))
    const renamed: PgmlKitConfig = { tables: { documents: { embeddings: { body_vec: { source: ['title', 'body'], model: B, mode: 'queue', renamedFrom: 'body_embedding' } } } } }
    expect(() => h.step(renamed)).toThrow(PlanError)

    const taken = new History()
    const two = (model: typeof A): PgmlKitConfig => ({ tables: { documents: { embeddings: { e: { source: 'body', model, mode: 'app' }, e__next: { source: 'title', model: A, mode: 'app' } } } } })
    taken.step(two(A))
    expect(() => taken.step(two(B))).toThrow(/needs a column named "e__next"/)

    const hostile = new History()
    const name = 'Vec "x"; DROP --'
    const odd = (model: typeof A): PgmlKitConfig => ({ tables: { 'Odd "T"': { schema: 'S p', embeddings: { [name]: { source: 'body', model, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'l2' }] } } } } })
    hostile.step(odd(A))
    const files = [...hostile.step(odd(B)).files, ...hostile.step(odd(B), { switch: 'always' }).files, ...hostile.step(odd(B), { dropPrevious: true }).files]
    expect(parseFiles(files)).toBeGreaterThan(10)
    expect(files.map((f) => sections(f.content).up).join()).toContain('RENAME COLUMN "Vec ""x""; DROP --" TO "Vec ""x""; DROP --__previous"')
  })
})
