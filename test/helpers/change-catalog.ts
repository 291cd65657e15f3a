import type { PgmlKitConfig } from '../../src/config/schema.js'
import { EMPTY_STATE, type DesiredState } from '../../src/model/ir.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { keepExistingNames } from '../../src/migrations/snapshot.js'
import { planChange, planOperations, type ChangeOptions, type Plan } from '../../src/plan/plan-migration.js'
import { renderMigrationFiles, type MigrationFile } from '../../src/migrations/render-files.js'

/**
 * A large config taken through every kind of change pgml-kit plans: created from nothing, changed
 * in every way a column, index, full-text column, role list, feature view or training set can
 * change, models and a chunked column's splitter changed in stages (shadow, switch, drop of the previous column or chunk table) and modes in
 * place, and removed again. `generatedSteps()` renders each step's files as `generate` would.
 */
const model = { id: 'test/double', dimensions: 8 }

const features = (ttl: string, setFeatures: string[]): NonNullable<PgmlKitConfig['features']> => ({
  views: {
    'customer stats': {
      entities: ['tenant', 'customer_id'], source: { table: 'events', schema: 'crm' }, timestamp: 'event_ts', createdTimestamp: 'created_ts', ttl,
      features: { spend: 'double precision', visits: 'integer', profile: 'vector(4)' },
    },
  },
  trainingSets: {
    churn: { labels: { table: 'labels', schema: 'crm' }, entities: ['tenant', 'customer'], timestamp: 'label_ts', label: 'churned', features: setFeatures },
  },
})

const modelB = { id: 'test/double-b', dimensions: 16 }

/** A chunked column (its chunk table, view, queue and index), whose index changes once. */
const chunked = (m: number): PgmlKitConfig['tables'][string]['embeddings'][string] => ({
  source: 'body', model, mode: 'queue', chunking: { template: '{title}: {chunk}', fullText: 'simple' }, indexes: [{ method: 'hnsw', distance: 'cosine', m }],
})

/** The config after change-everything, with models and modes changed as a staged model change does them. */
const staged: PgmlKitConfig = {
  roles: { app: ['web', 'reports'] },
  tables: {
    documents: {
      embeddings: {
        body_embedding: { source: ['body'], model: modelB, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine', m: 24, efConstruction: 100 }] },
        title_embedding: { source: ['title', 'summary'], model: modelB, mode: 'app', indexes: [{ method: 'hnsw', distance: 'l2' }] },
        summary_embedding: { source: ['summary', 'title'], model, mode: 'trigger', type: 'halfvec', indexes: [{ method: 'hnsw', distance: 'inner_product' }, { method: 'ivfflat', distance: 'l2', lists: 'auto', build: 'auto' }] },
        body_vec: { source: ['title', 'body'], model: { ...model, queryPrefix: 'search_query: ' }, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'l1' }] },
        // A staged chunking change: another size, overlap and template.
        body_chunks: { ...chunked(24), chunking: { template: '{summary} / {title}: {chunk}', fullText: 'simple', size: 400, overlap: 40 } },
      },
      fullText: { language: 'simple', source: ['title', 'body'] },
    },
    'Odd "Table"': { schema: 'Other Schema', primaryKey: ['tenant', 'key'], embeddings: { 'Vec; col': { source: 'Text', model: modelB, mode: 'queue' } } },
  },
  features: features('30 days', ['customer stats.spend', 'customer stats.visits']),
}

export const CHANGE_STEPS: readonly { readonly name: string; readonly config: PgmlKitConfig | 'same'; readonly options?: ChangeOptions; readonly fromOlderVersion?: boolean }[] = [
  {
    name: 'create-everything',
    config: {
      roles: { app: ['web'], worker: ['embedder'] },
      tables: {
        documents: {
          embeddings: {
            body_embedding: { source: ['title', 'body'], model, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine', m: 16 }] },
            title_embedding: { source: 'title', model, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'l2' }] },
            summary_embedding: { source: 'summary', model, mode: 'generated', type: 'halfvec', indexes: [{ method: 'hnsw', distance: 'inner_product' }, { method: 'ivfflat', distance: 'l2', lists: 'auto', build: 'auto' }] },
            app_embedding: { source: 'body', model: { ...model, queryPrefix: 'query: ' }, mode: 'app', indexes: [{ method: 'hnsw', distance: 'l1' }] },
            body_chunks: chunked(16),
          },
          fullText: { source: ['title', { column: 'body', weight: 'B' }] },
        },
        'Odd "Table"': { schema: 'Other Schema', primaryKey: ['tenant', 'key'], embeddings: { 'Vec; col': { source: 'Text', model, mode: 'queue' } } },
      },
      features: features('30 days', ['customer stats.spend', 'customer stats.profile']),
      // A model whose predictions are logged: its log turned on, changed, then off (staged has no models).
      models: { "odd 'model'": { task: 'regression', relation: 'Other Schema.Odd "Table"', target: 'score', serving: { log: { sample: 0.5 } } } },
    },
  },
  {
    name: 'change-everything',
    config: {
      roles: { app: ['web', 'reports'] },
      tables: {
        documents: {
          embeddings: {
            body_embedding: { source: ['body'], model, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine', m: 24, efConstruction: 100 }] },
            title_embedding: { source: ['title', 'summary'], model, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'l2' }] },
            summary_embedding: { source: ['summary', 'title'], model, mode: 'generated', type: 'halfvec', indexes: [{ method: 'hnsw', distance: 'inner_product' }, { method: 'ivfflat', distance: 'l2', lists: 'auto', build: 'auto' }] },
            body_vec: { source: ['title', 'body'], model: { ...model, queryPrefix: 'search_query: ' }, mode: 'app', indexes: [{ method: 'hnsw', distance: 'l1' }], renamedFrom: 'app_embedding' },
            body_chunks: chunked(24),
          },
          fullText: { language: 'simple', source: ['title', 'body'] },
        },
        'Odd "Table"': { schema: 'Other Schema', primaryKey: ['tenant', 'key'], embeddings: { 'Vec; col': { source: 'Text', model, mode: 'queue' } } },
      },
      features: features('30 days', ['customer stats.spend', 'customer stats.visits']),
      models: { "odd 'model'": { task: 'regression', relation: 'Other Schema.Odd "Table"', target: 'score', serving: { log: { sample: 0.25, retentionDays: 7 } } } },
    },
  },
  // The same config, generated again from a snapshot an older release wrote: trigger functions get the type guard, the feature view change capture.
  { name: 'upgrade-from-older-release', config: 'same', fromOlderVersion: true },
  // Models change in stages; a mode changes in place (body_vec: app → queue).
  { name: 'stage-model-changes', config: staged },
  { name: 'switch-model-changes', config: staged, options: { switch: 'always' } },
  { name: 'drop-previous-models', config: staged, options: { dropPrevious: true } },
  // A table renamed (renamedFrom): every column, index, trigger function and runtime row goes with it.
  // (documents still keeps a previous model's column, which a table rename refuses.)
  {
    name: 'rename-table',
    config: { ...staged, tables: { documents: staged.tables.documents!, 'Even "Table"': { ...staged.tables['Odd "Table"']!, renamedFrom: 'Odd "Table"' } } },
  },
  { name: 'remove-everything', config: { tables: {} } },
]

export interface GeneratedStep {
  readonly name: string
  readonly plan: Plan
  readonly files: readonly MigrationFile[]
}

/** Every step's plan and files, each planned from the state the previous step left (as `generate` does). */
export function generatedSteps(): GeneratedStep[] {
  let previous: DesiredState = EMPTY_STATE
  let timestamp = 1_800_000_000_000
  let last: PgmlKitConfig = { tables: {} }
  return CHANGE_STEPS.map(({ name, config: given, options, fromOlderVersion }) => {
    const config = given === 'same' ? last : given
    last = config
    const resolved = resolveConfig(config)
    if (fromOlderVersion) {
      previous = {
        ...previous,
        embeddingColumns: previous.embeddingColumns.map(({ typeGuard: _g, ...column }) => column),
        featureViews: previous.featureViews.map(({ changeCapture: _c, changesTable: _t, captureFunction: _f, ...view }) => view),
      }
    }
    const { plan, desired: next } = planChange(previous, keepExistingNames(previous, resolved.state), { renames: resolved.renames, tableRenames: resolved.tableRenames, ...options })
    const files = renderMigrationFiles(plan, { name, timestamp, settings: resolved.migrations })
    timestamp += 1000
    // As generate records it: an index left for later is not in the snapshot.
    const deferred = new Set(plan.deferred.map((d) => `${d.index.schema}.${d.index.name}`))
    previous = { ...next, indexes: next.indexes.filter((i) => !deferred.has(`${i.schema}.${i.name}`)) }
    return { name, plan, files }
  })
}

export function operationKinds(steps: readonly GeneratedStep[]): Set<string> {
  return new Set(steps.flatMap((s) => planOperations(s.plan).map((op) => op.kind)))
}
