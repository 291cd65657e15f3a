import type { Distance, EmbeddingMode } from '../config/schema.js'
import { ownedIdentifier } from './identifiers.js'

/**
 * The resolved, frozen description of what the database should contain. Plain readonly data:
 * it is what snapshots store and what the planner diffs, so it must be JSON-serialisable and
 * deterministic (sorted) for the same config.
 */

export type VectorType = 'vector' | 'halfvec'
export type IndexMethod = 'hnsw' | 'ivfflat'

export interface ResolvedModel {
  readonly id: string
  readonly revision: string | null
  readonly dimensions: number
  readonly documentPrefix: string
  readonly queryPrefix: string
  readonly normalize: boolean
  /** Token pooling; null: as the model's own files say (sentence-transformers `1_Pooling`), else mean. */
  readonly pooling: 'mean' | 'cls' | null
}

export interface EmbeddingColumnNode {
  readonly schema: string
  readonly table: string
  readonly column: string
  readonly sourceColumns: readonly string[]
  readonly separator: string
  readonly model: ResolvedModel
  readonly vectorType: VectorType
  readonly mode: EmbeddingMode
  /** Columns that identify a row of the table (its primary key). */
  readonly keyColumns: readonly string[]
  /**
   * The distance searches use unless told otherwise: the first configured index's (so they use
   * that index), else cosine.
   */
  readonly distance: Distance
  /**
   * Name of the column's trigger function in `pgml_kit` (modes `trigger` and `queue`; null for the
   * others). Chosen when the column is created and kept while it lives, so later migrations always
   * name the function the database has.
   */
  readonly triggerFunction: string | null
  /**
   * The trigger function (SECURITY DEFINER) refuses values of types a role other than a superuser
   * or the function's owner owns, before touching them: a cast, domain check or operator such a
   * role defines for its own type must never run with the migrating role's rights. Absent in
   * snapshots from before it: generate replaces those functions.
   */
  readonly typeGuard?: true
  /**
   * Set on the extra column of a staged model change (absent on the column searches use): `next`
   * is the shadow being filled with the new model, `previous` the old model's column kept after
   * the switch until a separately approved migration drops it. `of` is the live column's name.
   */
  readonly rollout?: RolloutRole
}

export interface RolloutRole {
  readonly role: 'next' | 'previous'
  readonly of: string
}

/** How a chunked column's text becomes chunks (see chunkingSchema). */
export interface ChunkingNode {
  readonly splitter: 'recursive' | 'markdown' | 'tokens'
  /** Characters, or tokens for `tokens`; null: what the model's window leaves (tokens only). */
  readonly size: number | null
  readonly overlap: number
  /** null: the splitter's own. */
  readonly separators: readonly string[] | null
  readonly template: string
  readonly sectionEvery: number
}

/**
 * An embedding column declared with `chunking` (issue 29): no vector column on the table, but a
 * chunk table in the table's schema — the source row's key, `chunk_seq`, `chunk` (the text),
 * `content_hash` (of the text embedded: the chunk as the template formats it), `embedding`,
 * `model` — whose foreign key deletes chunks with their row and moves them with a changed key, a
 * view of chunks beside their row's columns, and the chunk table's vector indexes. `column` is the
 * config's name for it: the queue's jobs carry it.
 */
export interface ChunkedColumnNode {
  readonly schema: string
  readonly table: string
  readonly column: string
  readonly sourceColumns: readonly string[]
  readonly separator: string
  readonly model: ResolvedModel
  readonly vectorType: VectorType
  readonly mode: 'queue' | 'app'
  readonly keyColumns: readonly string[]
  readonly distance: Distance
  readonly chunking: ChunkingNode
  /** Columns the template names besides {chunk}: a change to them embeds the chunks again. */
  readonly templateColumns: readonly string[]
  readonly chunkTable: string
  readonly view: string
  /** Text search configuration of the chunks' tsvector column (`chunk_tsv`), or null for none. */
  readonly fullText: string | null
  /** Vector indexes on the chunk table's `embedding` (their `table` is the chunk table). */
  readonly indexes: readonly VectorIndexNode[]
  /** The queue trigger function in pgml_kit (mode `queue`), else null. */
  readonly triggerFunction: string | null
  /** A staged chunking change's extra copy (`<column>__next` / `<column>__previous`): its role and the live column it belongs to. */
  readonly rollout?: RolloutRole
}

export interface VectorIndexNode {
  readonly name: string
  readonly schema: string
  readonly table: string
  readonly column: string
  readonly method: IndexMethod
  readonly distance: Distance
  /** Storage parameters in the order they are rendered in `WITH (...)`. */
  readonly params: Readonly<Record<string, number>>
  /**
   * Parameters the config leaves to pgml-kit (`'auto'`): sized from the table's rows when a plan
   * is made against a database (`params` then holds the advice), else pgvector's defaults.
   */
  readonly auto: readonly string[]
  /** Session settings for the build (null: the server's). */
  readonly build: IndexBuildSettings | null
  /** Query-time defaults the query builders apply when a search uses this index. */
  readonly search: { readonly efSearch: number | null; readonly probes: number | null }
}

export interface IndexBuildSettings {
  /** `maintenance_work_mem`: 'auto' (sized from the table when the build runs), a size, or null (the server's). */
  readonly memory: 'auto' | string | null
  /** The most `memory: 'auto'` asks for. */
  readonly memoryLimit: string
  /** `max_parallel_maintenance_workers`: 'auto' (from the table's rows), a number, or null (the server's). */
  readonly parallelWorkers: 'auto' | number | null
}

export interface FullTextNode {
  readonly schema: string
  readonly table: string
  readonly column: string
  readonly language: string
  readonly sources: readonly { readonly column: string; readonly weight: 'A' | 'B' | 'C' | 'D' | null }[]
  /** Name of its GIN index. */
  readonly indexName: string
}

export interface MigrationSettings {
  readonly dir: string
  readonly table: string
  readonly schema: string
  readonly lockTimeout: string
  readonly statementTimeout: string
  readonly indexStatementTimeout: string
  readonly indexLockTimeout: string
}

export interface EmbedderSettings {
  /** Absolute directory of local model folders, or null for transformers.js's default. */
  readonly modelsDir: string | null
  readonly allowRemoteModels: boolean
  readonly batchSize: number
}

/** Where rows come from: a table, or a query written in the config. */
export type RelationNode = { readonly kind: 'table'; readonly schema: string; readonly table: string } | { readonly kind: 'sql'; readonly sql: string }

export interface FeatureNode {
  readonly name: string
  readonly type: string
}

export interface FeatureViewNode {
  /** The schema its tables and function go in. */
  readonly schema: string
  readonly name: string
  readonly entities: readonly string[]
  readonly source: RelationNode
  readonly timestamp: string
  readonly createdTimestamp: string | null
  readonly ttl: string | null
  readonly features: readonly FeatureNode[]
  /** Every source row, as of the last materialisation: inserts, updates and deletes all reach it. */
  readonly offlineTable: string
  /** Per entity, the newest row whose event time had come at the last materialisation. */
  readonly onlineTable: string
  readonly materializeFunction: string
  /**
   * How materialisation finds what changed: `trigger` (a table source: statement triggers record the
   * entity keys of every insert, update, delete and truncate in `changesTable`, in the writer's
   * transaction) or `recompute` (a source given as SQL: every run compares the whole source).
   * Absent in snapshots from before change capture: generate upgrades such views.
   */
  readonly changeCapture?: 'trigger' | 'recompute'
  /** The change log (entity keys to re-read) of a `trigger` view. */
  readonly changesTable?: string
  /** The trigger function of a `trigger` view. */
  readonly captureFunction?: string
}

export interface TrainingSetNode {
  readonly schema: string
  readonly name: string
  readonly labels: RelationNode
  readonly entities: readonly string[]
  readonly timestamp: string
  readonly label: string
  readonly features: readonly { readonly view: string; readonly feature: string }[]
  /** The view with entity keys, label time and each feature row's event time beside the features. */
  readonly auditView: string
}

export interface DesiredState {
  readonly formatVersion: 1
  /** Version of the `pgml_kit` runtime schema these objects need (0: none). */
  readonly runtimeVersion: number
  readonly embeddingColumns: readonly EmbeddingColumnNode[]
  /** Chunked embedding columns, sorted. Absent when there are none (and in snapshots from before them). */
  readonly chunkedColumns?: readonly ChunkedColumnNode[]
  readonly indexes: readonly VectorIndexNode[]
  readonly fullText: readonly FullTextNode[]
  /** Roles granted what the application (`app`) and the worker (`worker`) need; sorted. */
  readonly roles: RolesNode
  readonly featureViews: readonly FeatureViewNode[]
  readonly trainingSets: readonly TrainingSetNode[]
  /** The pgml projects the config trains (`models`), sorted: the runtime's model registry serves them. Absent in snapshots from before the registry. */
  readonly models?: readonly string[]
  /** The projects whose predictions pgml_kit.predict logs (`models.<p>.serving.log`), sorted. Absent when none does. */
  readonly predictionLogs?: readonly PredictionLogNode[]
}

export interface PredictionLogNode {
  readonly project: string
  /** The share of requests logged, in (0, 1]. */
  readonly sample: number
  readonly retentionDays: number
}

export interface RolesNode {
  readonly app: readonly string[]
  readonly worker: readonly string[]
  /** Roles that run `pgml-kit train`, `deploy` and `models`: granted writing the model registry. Absent in snapshots from before it. */
  readonly trainer?: readonly string[]
}

export const EMPTY_STATE: DesiredState = Object.freeze({
  formatVersion: 1,
  runtimeVersion: 0,
  embeddingColumns: Object.freeze([]),
  indexes: Object.freeze([]),
  fullText: Object.freeze([]),
  roles: Object.freeze({ app: Object.freeze([]), worker: Object.freeze([]) }),
  featureViews: Object.freeze([]),
  trainingSets: Object.freeze([]),
})

export const RUNTIME_VERSION = 7

/** The runtime version that has the model registry (pgml_kit.model_versions, model_aliases, model_events, model_id()). */
export const REGISTRY_RUNTIME_VERSION = 6

/** The runtime version that serves through the registry (pgml_kit.predict, model_routes, prediction_log). */
export const SERVING_RUNTIME_VERSION = 7

/**
 * A column's identity as a key (of a Map, a Set, a comparison): schema, table and column kept
 * apart, so two columns never share one — `"a"."b"."c.d"` and `"a.b"."c"."d"` both read `a.b.c.d`.
 * Not for people: messages and output use columnLabel.
 */
export function columnKey(node: { schema: string; table: string; column: string }): string {
  return JSON.stringify([node.schema, node.table, node.column])
}

/** `schema.table.column`, for messages and output. Names may contain dots: never use it as a key. */
export function columnLabel(node: { schema: string; table: string; column: string }): string {
  return `${node.schema}.${node.table}.${node.column}`
}

/** An object in a schema (a table, an index, a view) as a key: see columnKey. */
export function objectKey(schema: string, name: string): string {
  return JSON.stringify([schema, name])
}

/** The trigger function's name for a new column: a readable prefix and a hash of the column's exact identity. */
export function triggerFunctionName(mode: EmbeddingMode, schema: string, table: string, column: string): string | null {
  if (mode !== 'trigger' && mode !== 'queue') return null
  return ownedIdentifier(mode === 'trigger' ? 'embed' : 'enqueue', [schema, table, column])
}

export function needsPgml(column: EmbeddingColumnNode): boolean {
  return column.mode === 'trigger' || column.mode === 'generated'
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}
