import { CompiledQuery, Kysely, sql, type Compilable, type Expression, type QueryResult, type RawBuilder, type SelectQueryBuilder, type Transaction } from 'kysely'
import type { Embedder } from '../embed/embedder.js'
import { toVectorLiteral } from '../embed/embedder.js'
import { localEmbedderLoader } from '../embed/embedder-for-config.js'
import { parseModelReference } from '../features/registry.js'
import { PgmlKitError } from '../errors.js'
import type { PgmlKitConfig, Distance } from '../config/schema.js'
import type { LoadedConfig } from '../config/load.js'
import { embedderSettingsAt, resolveConfig } from '../model/resolve.js'
import type { ChunkedColumnNode, EmbeddingColumnNode, FeatureViewNode, FullTextNode } from '../model/ir.js'
import { CHUNK_HIT, CHUNK_SEARCH_SETTINGS, renderHybridChunks, renderSearchChunks, renderSearchDocuments } from '../sql/render-chunk-search.js'
import { VECTOR_SCHEMA } from '../sql/render-vector-schema.js'
import type { ModelNode } from '../model/resolve.js'
import {
  SEARCH_CAPABILITIES, distanceExpression, embedTexts, hybridFusion, hybridJoin, predictBatchQuery, predictCall, predictProbaQuery, predictRow, servedPredictCall,
  renderQueryEmbedding, similarityExpression, tableId,
} from '../sql/render-search.js'
import { KitDialect, withParameters } from './kit-dialect.js'
import { featureRef, renderPredictOnline } from '../sql/render-features.js'
import { DISTANCE_OPERATOR } from '../sql/render-index.js'
import { CatalogProbe, DistanceOperator, NO_INDEX, Placeholder, QueryVector, type FilterStrategy, type IndexDefaults, type IndexSettings, type SearchCapabilities } from './query-vector.js'
import { CatalogCache } from './catalog-cache.js'
import { PROBE_COLUMN } from './kit-dialect.js'

type Tables<C extends PgmlKitConfig> = C['tables']
type TableName<C extends PgmlKitConfig> = keyof Tables<C> & string

/** `'<table>.<embedding column>'` for every embedding column the config declares. */
export type EmbeddingColumnRef<C extends PgmlKitConfig> = {
  [T in TableName<C>]: { [E in keyof Tables<C>[T]['embeddings'] & string]: Tables<C>[T]['embeddings'][E] extends { chunking: object } ? never : `${T}.${E}` }[keyof Tables<C>[T]['embeddings'] & string]
}[TableName<C>]

/** Embedding columns of tables that declare `fullText` (hybrid search needs both). */
export type HybridColumnRef<C extends PgmlKitConfig> = {
  [T in TableName<C>]: Tables<C>[T] extends { fullText: object } ? EmbeddingColumnRef<C> & `${T}.${string}` : never
}[TableName<C>]

/** Chunked embedding columns (declared with `chunking`), as `table.column`. */
export type ChunkedColumnRef<C extends PgmlKitConfig> = {
  [T in TableName<C>]: { [E in keyof Tables<C>[T]['embeddings'] & string]: Tables<C>[T]['embeddings'][E] extends { chunking: object } ? `${T}.${E}` : never }[keyof Tables<C>[T]['embeddings'] & string]
}[TableName<C>]

/** Options of a search over chunks. */
export interface ChunkSearchOptions<A extends 'documents' | 'chunks' = 'documents' | 'chunks'> {
  /** Documents (default: each with its best chunk, for citations) or chunks. */
  readonly return?: A
  /** How many (default 10). */
  readonly k?: number
  /** Chunks read from the vector index before documents are picked from them (default max(40, 8 × k)); more finds documents whose best chunk ranks lower. */
  readonly candidates?: number
  /** HNSW's ef_search for this search (default: the index's efSearch, at least `candidates`), set for its own transaction only. */
  readonly efSearch?: number
  /** The document's columns to return (default all). */
  readonly columns?: readonly string[]
}

export interface HybridChunkSearchOptions<A extends 'documents' | 'chunks' = 'documents' | 'chunks'> extends ChunkSearchOptions<A> {
  readonly rrfK?: number
  readonly weights?: { readonly vector?: number; readonly text?: number }
}

/** A chunk found: its row's key, its position in the document, its text and distance (and, from hybrid search, its fused score and ranks). */
export interface ChunkHit {
  readonly key: Readonly<Record<string, unknown>>
  readonly seq: number
  readonly chunk: string
  /** null: found by full text only (hybrid). */
  readonly distance: number | null
  readonly score?: number
  readonly vectorRank?: number | null
  readonly textRank?: number | null
}

/** A document found, with its best chunk. */
export interface DocumentHit<Row = Record<string, unknown>> {
  readonly document: Row
  readonly chunk: { readonly seq: number; readonly text: string; readonly distance: number | null; readonly score?: number; readonly vectorRank?: number | null; readonly textRank?: number | null }
}

type TableOf<R extends string> = R extends `${infer T}.${string}` ? T : never
type ColumnOf<R extends string> = R extends `${string}.${infer Col}` ? Col : never
type EmbeddingOf<C extends PgmlKitConfig, R extends string> = Tables<C>[TableOf<R>]['embeddings'][ColumnOf<R>]
type FirstDistance<E> = E extends { indexes: readonly [{ distance: infer D }, ...unknown[]] } ? D : 'cosine'

/** Similarity has a meaning for cosine (1 − distance) and inner product (the dot product). */
export type SimilarityOf<D> = D extends 'cosine' | 'inner_product' ? { similarity: number } : unknown
export type SearchSelection<C extends PgmlKitConfig, R extends string, D = FirstDistance<EmbeddingOf<C, R>>> = { distance: number } & SimilarityOf<D>

export interface SearchOptions<D extends Distance = Distance> extends IndexSettings {
  /** Rows to return (default 10). */
  readonly k?: number
  /** Distance (default: the column's first index's, so the query uses that index). */
  readonly distance?: D
  /**
   * Over-fetch and re-rank: take `k × overFetch` nearest rows by the index first, then apply your
   * `where` and keep the best `k`. An alternative to iterative scans for selective filters.
   */
  readonly overFetch?: number
  /**
   * How a search with a `where` reads its rows (default `auto`): `auto` scans the rows the filter
   * keeps exactly when the planner estimates that cheaper than an iterative index scan (a
   * selective filter, with an index on its column), else uses the vector index; `index` always
   * the vector index (iterative scans); `exact` always the exact scan.
   */
  readonly filterStrategy?: FilterStrategy
}

/**
 * A search compiled once (`kit.prepareSearch`): each `execute` binds only the query's vector and
 * the placeholders' values, and runs it in one round trip, as hand-written SQL would.
 */
export interface PreparedSearch<O> {
  /** Runs the search for `query` (a text, embedded as a query, or a vector) with the placeholders' values. */
  execute(query: string | ArrayLike<number>, values?: Readonly<Record<string, unknown>>): Promise<O[]>
  /** The names of its placeholders. */
  readonly placeholders: readonly string[]
  /** Its SQL, as compiled from the config (the driver qualifies pgvector's names from the catalog when it runs). */
  readonly sql: string
}

export interface HybridSearchOptions extends IndexSettings {
  readonly k?: number
  /** Candidates each of the vector and the full-text search contributes (default 40). */
  readonly candidates?: number
  /** Weights of the two rankings in the fusion (default 1 and 1). */
  readonly weights?: { readonly vector?: number; readonly text?: number }
  /** The reciprocal rank fusion constant (default 60). */
  readonly rrfK?: number
}

export interface PredictOnlineOptions {
  /**
   * Read the features as of this time from the offline tables (the feature history), with the
   * training set's point-in-time rule, instead of the online tables as of now. The role needs
   * SELECT on the offline tables (the migration grants `roles.app` only the online ones). A Date
   * holds milliseconds; to match a label time to the microsecond (as training does), pass the
   * timestamp as PostgreSQL prints it (`'2026-03-01 10:00:00.000123+00'`).
   */
  readonly asOf?: Date | string
}

/**
 * What `predictOnline` gives: a prediction (`imputed` names the features that had no value and
 * that the model imputes, per its `preprocess`), or `no-features` when a feature it does not
 * impute had no value (`missing` names every feature without one) — an unknown entity, or one
 * whose rows are all past the TTL. Features are named `view.feature`, as the training set does.
 */
export type OnlinePrediction =
  | { readonly status: 'ok'; readonly prediction: number; readonly imputed: readonly string[] }
  | { readonly status: 'no-features'; readonly missing: readonly string[] }

export interface PredictOptions {
  /**
   * The entity the prediction is for (a customer id, say), for projects served through the
   * registry (config `models.<p>.serving`): a canary serves the same keys every time (a stable
   * hash), and the prediction log records it. Without it a canary takes a random share of requests.
   */
  readonly key?: string | number | bigint
}

export interface KitOptions<DB> {
  /** The application's Kysely instance (PostgreSQL dialect); the kit borrows its connections. */
  readonly db: Kysely<DB>
  /**
   * Where query texts are embedded: `database` (pgml.embed), `local` (the Node embedder), or
   * `auto` (default): the database when it has pgml.embed, else locally.
   */
  readonly embedIn?: 'auto' | 'database' | 'local'
  /** Embedder per column for local embedding (default: the local ONNX model from the config). */
  readonly loadEmbedder?: (column: EmbeddingColumnNode) => Promise<Embedder>
  /** Base directory for a relative `embedder.modelsDir` (default: the current directory). */
  readonly cwd?: string
}


/** Whether `config` is what loadConfig returned (resolved, with its file's location), not a config object. */
function isLoadedConfig(config: PgmlKitConfig | LoadedConfig): config is LoadedConfig {
  return 'state' in config && 'source' in config && 'root' in config
}

export interface Kit<C extends PgmlKitConfig, DB> {
  /** The kit's Kysely (same connections as yours); use it for queries that mix in kit expressions. */
  readonly db: Kysely<DB>
  /**
   * Nearest rows to a text (embedded with the model's query prefix) or a vector. Returns Kysely's
   * own select builder on the table: add `where`, `select`, joins, then `execute`.
   */
  search<R extends EmbeddingColumnRef<C>, D extends Distance = FirstDistance<EmbeddingOf<C, R>> & Distance>(
    column: R, query: string | ArrayLike<number>, options?: SearchOptions<D>,
  ): SelectQueryBuilder<DB, TableOf<R> & keyof DB & string, SearchSelection<C, R, D>>
  /**
   * A search compiled once, to run many times: `build` shapes it as for `search` (selections,
   * joins, `where` with `kit.placeholder(...)` for the values that change); `execute` binds the
   * query and the placeholders. The same rows as `search`, without building and compiling the
   * query at every call.
   *
   * @example
   * const nearest = kit.prepareSearch('documents.body_embedding', { k: 5 }, (q) =>
   *   q.where('department', '=', kit.placeholder<string>('department')).select(['id', 'title']))
   * const hits = await nearest.execute('affordable housing', { department: 'housing' })
   */
  prepareSearch<R extends EmbeddingColumnRef<C>, O = SearchSelection<C, R>, D extends Distance = FirstDistance<EmbeddingOf<C, R>> & Distance>(
    column: R, options?: SearchOptions<D>,
    build?: (search: SelectQueryBuilder<DB, TableOf<R> & keyof DB & string, SearchSelection<C, R, D>>) => Compilable<O>,
  ): PreparedSearch<O>
  /** A named value of a prepared search, given at each `execute` (an expression of type T for `where`, `select`, ...). */
  placeholder<T = unknown>(name: string): RawBuilder<T>
  /**
   * Vector search and full-text search fused by reciprocal rank fusion; rows carry `score`
   * and their rank in each list (null when absent from it).
   */
  hybridSearch<R extends HybridColumnRef<C>>(
    column: R, query: string, options?: HybridSearchOptions,
  ): SelectQueryBuilder<DB, TableOf<R> & keyof DB & string, { score: number; vector_rank: number | null; text_rank: number | null }>
  /**
   * Nearest chunks of a chunked column to a text (embedded with the model's query prefix) or a
   * vector: documents (default), each with its best chunk — its position and text, for citations —
   * or the chunks themselves. HNSW's settings are set for the search's own transaction only.
   *
   * @example
   * const hits = await kit.searchChunks('pages.body_chunks', 'opening hours', { k: 5 })
   * hits[0].document.title; hits[0].chunk.text
   */
  searchChunks<R extends ChunkedColumnRef<C>>(column: R, query: string | ArrayLike<number>, options: ChunkSearchOptions<'chunks'> & { readonly return: 'chunks' }): Promise<ChunkHit[]>
  searchChunks<R extends ChunkedColumnRef<C>>(column: R, query: string | ArrayLike<number>, options?: ChunkSearchOptions<'documents'>): Promise<DocumentHit<Record<string, unknown>>[]>
  /**
   * Vector and full-text search over the chunks (`chunking.fullText`), fused by reciprocal rank
   * fusion per chunk: documents (each with its best-scoring chunk) or chunks.
   */
  hybridSearchChunks<R extends ChunkedColumnRef<C>>(column: R, query: string, options: HybridChunkSearchOptions<'chunks'> & { readonly return: 'chunks' }): Promise<ChunkHit[]>
  hybridSearchChunks<R extends ChunkedColumnRef<C>>(column: R, query: string, options?: HybridChunkSearchOptions<'documents'>): Promise<DocumentHit<Record<string, unknown>>[]>
  /** Embeds texts (as queries or documents) the way searches do. */
  embed(column: EmbeddingColumnRef<C> | ChunkedColumnRef<C>, texts: readonly string[], options?: { readonly as?: 'query' | 'document' }): Promise<number[][]>
  /**
   * `pgml.predict(project, features)`: the model pgml deployed for the project. A registry
   * reference — `'churn@champion'`, `'churn@challenger'` (any alias), `'churn@v3'` (a version) —
   * predicts with the model it names, resolved in the same statement (`pgml_kit.model_id`), so an
   * alias moved by another session is followed at once; an archived version is refused.
   */
  predict(project: string, features: readonly number[], options?: PredictOptions): Promise<number>
  /** `pgml.predict_batch`: one prediction per row of features (a project, or a registry reference as for `predict`). */
  predictBatch(project: string, rows: readonly (readonly number[])[]): Promise<number[]>
  /** `pgml.predict_proba`: class probabilities (a project, or a registry reference as for `predict`). */
  predictProba(project: string, features: readonly number[]): Promise<number[]>
  /**
   * Predicts for an entity from its features, in one statement: the model's training set names the
   * features and their order — the definitions training used. By default they are read as of now
   * from the feature views' online tables (as fresh as the last materialisation; never a row dated
   * after now, nor one older than the view's TTL); with `asOf`, from the offline tables as of that
   * time, with exactly the training set's point-in-time rule. `entity` gives the training set's
   * entity columns. When a feature the model does not impute has no value, the result says which
   * (`no-features`) and pgml.predict is not called.
   *
   * @example
   * const r = await kit.predictOnline('churn', { customer_id: 7 })
   * if (r.status === 'ok') use(r.prediction)
   * else console.warn('no features for customer 7:', r.missing)
   */
  predictOnline(project: string, entity: Readonly<Record<string, string | number | bigint | boolean | Date>>, options?: PredictOnlineOptions): Promise<OnlinePrediction>
  readonly fn: {
    /** `pgml.predict(project, ARRAY[...]::real[])` as an expression for your own queries. */
    predict(project: string, features: readonly (Expression<unknown> | number)[]): RawBuilder<number>
  }
}

/** A served prediction's failure said with what to do: the runtime not migrated yet, or a role the config does not name as an application. */
function servingError(error: unknown, project: string): unknown {
  const e = error as { code?: string; message?: string }
  if (e.code === '42883' && /pgml_kit\.predict/.test(e.message ?? '') || e.code === '3F000' && /pgml_kit/.test(e.message ?? '')) {
    return new PgmlKitError('SERVING_MISSING', `models.${project}.serving is in the config, but this database has no pgml_kit.predict (runtime schema version 7)`, { cause: error, where: `models.${project}.serving`, hint: 'pgml-kit generate && pgml-kit migrate' })
  }
  if (e.code === '42501' && /pgml_kit|model_routes|prediction_log/.test(e.message ?? '')) {
    return new PgmlKitError('PREDICT_NOT_PERMITTED', `predicting "${project}" through the registry: ${e.message ?? 'permission denied'}`, { cause: error, where: 'roles.app', hint: 'add this role to roles.app, then pgml-kit generate && pgml-kit migrate (the migration grants it the routes and the log)' })
  }
  return error
}

/** An entity's key as the prediction log records it (and `serving.labels.key` is compared with, as text): the value of a one-column key, else its values as a JSON array. */
export function entityKeyText(values: readonly (string | number | bigint | boolean | Date)[]): string {
  const text = (v: string | number | bigint | boolean | Date) => (v instanceof Date ? v.toISOString() : String(v))
  return values.length === 1 ? text(values[0]!) : JSON.stringify(values.map(text))
}

/** A positive integer option, or a RangeError naming it. */
function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`)
  return value
}

function finiteNumber(name: string, value: number): number {
  if (!Number.isFinite(value)) throw new RangeError(`${name} must be a finite number, got ${value}`)
  return value
}

/**
 * The features whose missing values the model fills itself: those its `preprocess` gives an
 * `impute` other than `error` (pgml repeats training's preprocessing at pgml.predict; so does
 * pgml_compat). Vector features never: pgml imputes per column, and a vector is many.
 */
function imputedFeatures(model: ModelNode, views: readonly FeatureViewNode[]): ReadonlySet<string> {
  const out = new Set<string>()
  for (const f of model.trainingSet?.features ?? []) {
    const type = views.find((v) => v.name === f.view)?.features.find((x) => x.name === f.feature)?.type ?? ''
    const options = model.preprocess?.[f.feature]
    const impute = typeof options === 'object' && options !== null ? (options as Record<string, unknown>).impute : undefined
    if (typeof impute === 'string' && impute !== 'error' && !/^(?:vector|halfvec)\b/i.test(type)) out.add(featureRef(f))
  }
  return out
}

/**
 * Typed search, hybrid search and prediction builders over your Kysely instance, knowing from the
 * config each column's model, prefixes, distance and index.
 *
 * @example
 * const kit = createKit(config, { db })
 * const hits = await kit.search('documents.body_embedding', 'affordable housing', { k: 5, efSearch: 100 })
 *   .where('department', '=', 'housing')
 *   .select(['id', 'title'])
 *   .execute()
 */
export function createKit<DB>(config: LoadedConfig, options: KitOptions<DB>): Kit<PgmlKitConfig, DB>
export function createKit<const C extends PgmlKitConfig, DB>(config: C, options: KitOptions<DB>): Kit<C, DB>
/** Over the application's transaction (`db.transaction().execute(async (trx) => …)`): the kit runs inside it. */
export function createKit<const C extends PgmlKitConfig, DB>(config: C, options: Omit<KitOptions<DB>, 'db'> & { readonly db: Transaction<DB> }): Kit<C, DB>
export function createKit<const C extends PgmlKitConfig, DB>(config: C | LoadedConfig, options: KitOptions<DB>): Kit<C, DB> {
  // A config the application loaded as the CLI does (loadConfig) is resolved already; a relative
  // modelsDir in it is relative to the config file.
  const loaded = isLoadedConfig(config) ? config : null
  const resolved = loaded ?? resolveConfig(config)
  // The model, prefixes and type each column holds in the database (the catalog), read on first need.
  const catalog = new CatalogCache(resolved.state.embeddingColumns)
  const loadEmbedder = options.loadEmbedder ?? localEmbedderLoader(embedderSettingsAt(resolved.embedder, options.cwd ?? loaded?.root ?? process.cwd()))
  const embedIn = options.embedIn ?? 'auto'
  /** Whether the config serves the project through the registry (pgml_kit.predict: routes, prediction log). */
  const servedThroughRegistry = (project: string) => resolved.models.some((m) => m.project === project && m.serving !== null)
  type Run = (text: string, parameters: readonly unknown[]) => Promise<QueryResult<Record<string, unknown>>>
  let probed: Promise<{ pgmlEmbed: boolean } & SearchCapabilities> | undefined
  let probedValue: ({ pgmlEmbed: boolean } & SearchCapabilities) | undefined

  /**
   * What the database offers (pgml.embed, pgvector's version): asked once per kit, on first need.
   * A caller holding a connection of its own (`own`) asks on it rather than wait for an answer
   * another caller is getting on another connection of the pool (see CatalogCache.refresh).
   */
  function probe(run: Run, own = false) {
    const ask = () => run(SEARCH_CAPABILITIES, []).then((r) => {
      const version = String(r.rows[0]?.vector_version ?? '0').split('.').map(Number)
      return { pgmlEmbed: Boolean(r.rows[0]?.ok), iterativeScan: (version[0] ?? 0) > 0 || (version[1] ?? 0) >= 8 }
    })
    if (own && probedValue === undefined) {
      return ask().then((value) => {
        probedValue ??= value
        return value
      })
    }
    if (probedValue !== undefined) return Promise.resolve(probedValue)
    probed ??= ask().then((value) => {
      probedValue ??= value
      return value
    })
    probed.catch(() => { probed = undefined })
    return probed
  }

  /** Whether texts are embedded by pgml.embed: decided once per kit, from `embedIn` and the database. */
  async function embedsInDatabase(run: Run, own = false): Promise<boolean> {
    const inDatabase = embedIn !== 'local' && (await probe(run, own)).pgmlEmbed
    if (!inDatabase && embedIn === 'database') throw new PgmlKitError('PGML_MISSING', 'embedIn is "database" but the database has no pgml.embed', { hint: 'install pgml_compat or PostgresML, or use embedIn: "auto" or "local"' })
    return inDatabase
  }

  /** The index a search by `distance` on `column` uses (the first the config declares with that distance), and its defaults. */
  const indexDefaults = new Map<string, IndexDefaults>()
  for (const index of resolved.state.indexes) {
    const key = `${index.table}.${index.column}\0${index.distance}`
    if (!indexDefaults.has(key)) indexDefaults.set(key, { method: index.method, efSearch: index.search.efSearch, probes: index.search.probes })
  }
  const defaultsFor = (column: EmbeddingColumnNode, distance: Distance) => indexDefaults.get(`${column.table}.${column.column}\0${distance}`) ?? NO_INDEX

  const columnOf = (ref: string): EmbeddingColumnNode => {
    const column = resolved.state.embeddingColumns.find((c) => `${c.table}.${c.column}` === ref)
    if (!column && (resolved.state.chunkedColumns ?? []).some((c) => `${c.table}.${c.column}` === ref)) {
      throw new PgmlKitError('CHUNKED_COLUMN', `"${ref}" is a chunked column: its vectors are in its chunk table`, { hint: 'search it with kit.searchChunks or kit.hybridSearchChunks' })
    }
    if (!column) throw new PgmlKitError('COLUMN_UNKNOWN', `"${ref}" is not an embedding column in the config`)
    return column
  }
  const fullTextOf = (column: EmbeddingColumnNode): FullTextNode => {
    const node = resolved.state.fullText.find((f) => f.schema === column.schema && f.table === column.table)
    if (!node) throw new PgmlKitError('FULL_TEXT_MISSING', `hybrid search on ${column.table} needs tables.${column.table}.fullText in the config`)
    return node
  }

  const dialect = new KitDialect(options.db as Kysely<unknown>, {
      async resolve(marker, column, run, own) {
        if (marker.vector) return toVectorLiteral(marker.vector)
        if (await embedsInDatabase(run, own)) {
          const { rows } = await run(renderQueryEmbedding(column), [marker.text ?? ''])
          return rows[0]?.v as string
        }
        const [vector] = await (await loadEmbedder(column)).embed([marker.text ?? ''], { as: 'query' })
        return toVectorLiteral(vector as Float32Array)
      },
      capabilities: (run, own) => probe(run, own),
      catalog,
    })
  const kitDb = new Kysely<DB>({ dialect })
  // Kysely's builder types cannot follow a table chosen at run time; the public signatures carry the types.
  const untyped = kitDb as unknown as Kysely<Record<string, Record<string, unknown>>>
  /** The column's table under its own name, so your `where('documents.x', ...)` and `select` refer to it as usual. */
  const from = (column: EmbeddingColumnNode) => tableId(column).as(column.table)
  /** The column's catalog fingerprint, selected by every search so the driver sees a switch that committed meanwhile. */
  const probeOf = (column: EmbeddingColumnNode) => sql<string>`${new CatalogProbe(column)}`.as(PROBE_COLUMN)

  const chunkedOf = (ref: string): ChunkedColumnNode => {
    const node = (resolved.state.chunkedColumns ?? []).find((c) => `${c.table}.${c.column}` === ref)
    if (!node) throw new PgmlKitError('COLUMN_UNKNOWN', `"${ref}" is not a chunked embedding column in the config (one with chunking)`)
    return node
  }
  let vectorSchema: Promise<string> | undefined
  /** A search over chunks, in a transaction of its own (its HNSW settings end with it); `hybrid` null: vector only. */
  async function runChunkSearch(ref: string, query: string | ArrayLike<number>, o: ChunkSearchOptions, hybrid: HybridChunkSearchOptions | null): Promise<ChunkHit[] | DocumentHit[]> {
    const node = chunkedOf(ref)
    if (hybrid && !node.fullText) throw new PgmlKitError('FULL_TEXT_MISSING', `hybrid search over ${ref} needs chunking.fullText in the config`, { where: `tables.${node.table}.embeddings.${node.column}.chunking.fullText` })
    if (hybrid && typeof query !== 'string') throw new TypeError('hybridSearchChunks needs a text query')
    const as = o.return ?? 'documents'
    if (as !== 'documents' && as !== 'chunks') throw new RangeError(`return must be "documents" or "chunks", got ${String(as)}`)
    const k = positiveInteger('k', o.k ?? 10)
    const candidates = positiveInteger('candidates', o.candidates ?? Math.max(40, 8 * k))
    const index = node.indexes.find((i) => i.distance === node.distance)
    const baseEf = positiveInteger('efSearch', o.efSearch ?? index?.search.efSearch ?? 40)
    const run: Run = (text, parameters) => kitDb.executeQuery(CompiledQuery.raw(text, [...parameters]))
    vectorSchema ??= run(VECTOR_SCHEMA, []).then((r) => {
      const schema = r.rows[0]?.schema
      if (typeof schema !== 'string') throw new PgmlKitError('PGVECTOR_MISSING', 'the database has no pgvector extension', { hint: 'pgml-kit migrate' })
      return schema
    })
    vectorSchema.catch(() => { vectorSchema = undefined })
    const schema = await vectorSchema
    const asColumn = node as unknown as EmbeddingColumnNode
    let vector: string
    if (typeof query !== 'string') {
      if (query.length !== node.model.dimensions) throw new RangeError(`the query vector has ${query.length} dimensions, and ${ref} holds vectors of ${node.model.dimensions}`)
      vector = toVectorLiteral(query)
    }
    else if (await embedsInDatabase(run)) vector = (await run(renderQueryEmbedding(asColumn), [query])).rows[0]?.v as string
    else vector = toVectorLiteral((await (await loadEmbedder(asColumn)).embed([query], { as: 'query' }))[0] as Float32Array)
    const canIterate = (await probe(run)).iterativeScan
    const inTransaction = <T>(fn: (trx: Kysely<DB>) => Promise<T>): Promise<T> => (options.db.isTransaction ? fn(options.db) : options.db.transaction().execute(fn))
    /** One search reading `c` chunks from the index (chunks: k). ef_search covers them, and pgvector 0.8's iterative scan goes past 1000. */
    const searchWith = (c: number) => inTransaction(async (trx) => {
      const needed = as === 'chunks' && !hybrid ? k : c
      const efSearch = Math.min(1000, Math.max(baseEf, needed))
      const q = (text: string, parameters: readonly unknown[]) => trx.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text, [...parameters]))
      // Inside the caller's transaction, the settings hold until it ends (SET LOCAL); otherwise in the search's own.
      await q(CHUNK_SEARCH_SETTINGS, [efSearch, canIterate && needed > efSearch])
      if (hybrid) {
        const rrfK = finiteNumber('rrfK', hybrid.rrfK ?? 60)
        const weights = [finiteNumber('weights.vector', hybrid.weights?.vector ?? 1), finiteNumber('weights.text', hybrid.weights?.text ?? 1)]
        return (await q(renderHybridChunks(node, node.distance, schema, as, o.columns ?? null), [vector, c, query, rrfK, ...weights, k])).rows
      }
      if (as === 'chunks') return (await q(renderSearchChunks(node, node.distance, schema), [vector, k])).rows
      return (await q(renderSearchDocuments(node, node.distance, schema, o.columns ?? null), [vector, c, k])).rows
    })
    // Documents: when the candidate chunks held fewer than k documents (a long document's chunks
    // crowd the others out) and the index has more, read four times as many, up to what the index
    // gives in one scan. A `candidates` the caller set is kept as given.
    const most = canIterate ? 20_000 : 1000
    let c = candidates
    let rows: Record<string, unknown>[] = await searchWith(c)
    while (as === 'documents' && o.candidates === undefined && rows.length < k && rows.length > 0 && Number(rows[0]![CHUNK_HIT.hits]) >= c && c < most) {
      c = Math.min(most, c * 4)
      rows = await searchWith(c)
    }
    const extra = (r: Record<string, unknown>) => ({
      ...(CHUNK_HIT.score in r ? { score: Number(r[CHUNK_HIT.score]) } : {}),
      ...(CHUNK_HIT.vectorRank in r ? { vectorRank: r[CHUNK_HIT.vectorRank] as number | null, textRank: r[CHUNK_HIT.textRank] as number | null } : {}),
    })
    const distanceOf = (r: Record<string, unknown>) => (r[CHUNK_HIT.distance] === null ? null : Number(r[CHUNK_HIT.distance]))
    if (as === 'chunks') {
      return rows.map((r) => ({
        key: Object.fromEntries(node.keyColumns.map((name, i) => [name, r[`pgml_kit_key_${i}`]])),
        seq: Number(r[CHUNK_HIT.seq]), chunk: String(r[CHUNK_HIT.text]), distance: distanceOf(r), ...extra(r),
      }))
    }
    const ours = new Set<string>(Object.values(CHUNK_HIT))
    return rows.map((r) => ({
      document: Object.fromEntries(Object.entries(r).filter(([name]) => !ours.has(name))),
      chunk: { seq: Number(r[CHUNK_HIT.seq]), text: String(r[CHUNK_HIT.text]), distance: distanceOf(r), ...extra(r) },
    }))
  }

  const kit: Kit<C, DB> = {
    db: kitDb,

    search(ref, query, searchOptions = {}) {
      const column = columnOf(ref)
      const distance = searchOptions.distance ?? column.distance
      if (!Object.hasOwn(DISTANCE_OPERATOR, distance)) throw new RangeError(`distance must be one of ${Object.keys(DISTANCE_OPERATOR).join(', ')}, got ${String(distance)}`)
      const k = positiveInteger('k', searchOptions.k ?? 10)
      // overFetch is a strategy of its own: the index's candidates, then the filter (nothing to estimate).
      const filter = searchOptions.filterStrategy ?? (searchOptions.overFetch !== undefined ? 'index' : 'auto')
      const marker = new QueryVector(column, query, searchOptions, defaultsFor(column, distance), filter)
      const d = distanceExpression(column, new DistanceOperator(distance), marker, column.table)
      const similarity = similarityExpression(distance, d)
      let builder
      if (searchOptions.overFetch !== undefined) {
        const overFetch = positiveInteger('overFetch', searchOptions.overFetch)
        const candidates = untyped.selectFrom(from(column)).selectAll().orderBy(d).limit(k * overFetch)
        builder = untyped.selectFrom(candidates.as(column.table)).select(d.as('distance'))
        if (similarity) builder = builder.select(similarity.as('similarity'))
        builder = builder.select(probeOf(column)).orderBy(d).limit(k)
      } else {
        builder = untyped.selectFrom(from(column)).select(d.as('distance'))
        if (similarity) builder = builder.select(similarity.as('similarity'))
        builder = builder.select(probeOf(column)).orderBy(d).limit(k)
      }
      return builder as never
    },

    prepareSearch(ref, searchOptions, build) {
      const search = kit.search(ref, [], searchOptions)
      const compiled = (build ? build(search as never) : search).compile()
      const template = compiled.parameters.find((p): p is QueryVector => p instanceof QueryVector)
      if (!template) throw new PgmlKitError('PREPARED_SEARCH', `prepareSearch("${ref}"): the built query no longer holds the search's vector`, { hint: 'build on the search builder it is given' })
      const placeholders = [...new Set(compiled.parameters.filter((p): p is Placeholder => p instanceof Placeholder).map((p) => p.name))]
      return {
        placeholders,
        sql: compiled.sql,
        async execute(query, values = {}) {
          const unknown = Object.keys(values).filter((name) => !placeholders.includes(name))
          if (unknown.length > 0) throw new PgmlKitError('PLACEHOLDER_UNKNOWN', `prepareSearch("${ref}").execute: no placeholder ${unknown.map((n) => `"${n}"`).join(', ')}`, { hint: `its placeholders: ${placeholders.join(', ') || 'none'}` })
          const missing = placeholders.filter((name) => !Object.hasOwn(values, name) || values[name] === undefined)
          if (missing.length > 0) throw new PgmlKitError('PLACEHOLDER_UNBOUND', `prepareSearch("${ref}").execute: no value for placeholder ${missing.map((n) => `"${n}"`).join(', ')}`)
          const marker = template.withQuery(query)
          const parameters = compiled.parameters.map((p) => (p === template ? marker : p instanceof Placeholder ? values[p.name] : p))
          const result = await dialect.execute(withParameters(compiled, parameters))
          return result.rows as never
        },
      }
    },

    placeholder<T = unknown>(name: string) {
      return sql<T>`${new Placeholder(name)}`
    },

    hybridSearch(ref, query, hybridOptions = {}) {
      const column = columnOf(ref)
      const fullText = fullTextOf(column)
      const k = positiveInteger('k', hybridOptions.k ?? 10)
      const settings = {
        candidates: positiveInteger('candidates', hybridOptions.candidates ?? 40),
        rrfK: finiteNumber('rrfK', hybridOptions.rrfK ?? 60),
        weights: { vector: finiteNumber('weights.vector', hybridOptions.weights?.vector ?? 1), text: finiteNumber('weights.text', hybridOptions.weights?.text ?? 1) },
      }
      if (settings.rrfK < 0) throw new RangeError(`rrfK must be ≥ 0, got ${settings.rrfK}`)
      const marker = new QueryVector(column, query, hybridOptions, defaultsFor(column, column.distance))
      const fused = hybridFusion(column, fullText, new DistanceOperator(column.distance), marker, query, settings)
      return untyped.selectFrom(from(column))
        .innerJoin(fused.as('pgml_kit_fused'), (join) => join.on(hybridJoin(column, column.table, 'pgml_kit_fused')))
        .select(['pgml_kit_fused.score as score', 'pgml_kit_fused.vector_rank as vector_rank', 'pgml_kit_fused.text_rank as text_rank'] as never)
        .select(probeOf(column))
        .orderBy('pgml_kit_fused.score' as never, 'desc')
        // Equal scores (a row first by vector and second by text beside one the other way round):
        // the better vector rank first, then the better text rank, then the key.
        .orderBy(sql`pgml_kit_fused.vector_rank ASC NULLS LAST, pgml_kit_fused.text_rank ASC NULLS LAST`)
        .orderBy(sql.join(column.keyColumns.map((key) => sql.ref(`${column.table}.${key}`))))
        .limit(k) as never
    },

    searchChunks: ((ref: string, query: string | ArrayLike<number>, o: ChunkSearchOptions = {}) => runChunkSearch(ref, query, o, null)) as Kit<C, DB>['searchChunks'],
    hybridSearchChunks: ((ref: string, query: string, o: HybridChunkSearchOptions = {}) => runChunkSearch(ref, query, o, o)) as Kit<C, DB>['hybridSearchChunks'],

    async embed(ref, texts, embedOptions = {}) {
      const as = embedOptions.as ?? 'query'
      const run: Run = (text, parameters) => kitDb.executeQuery(CompiledQuery.raw(text, [...parameters]))
      const chunked = (resolved.state.chunkedColumns ?? []).find((c) => `${c.table}.${c.column}` === ref)
      // A chunked column has no catalog row: its model is the config's (each chunk records the model that embedded it).
      if (!chunked) await catalog.ensure(run)
      const column = chunked ? (chunked as unknown as EmbeddingColumnNode) : catalog.column(columnOf(ref)).node
      if (await embedsInDatabase(run)) {
        const result = await embedTexts(column, texts, as).execute(kitDb)
        return result.rows.map((r) => r.v.map(Number))
      }
      return (await (await loadEmbedder(column)).embed(texts, { as })).map((v) => Array.from(v))
    },

    async predict(project, features, predictOptions = {}) {
      const reference = parseModelReference(project) // a malformed reference ('churn@') is an error that says so
      const served = servedThroughRegistry(reference?.project ?? project)
      if (predictOptions.key !== undefined && !served) {
        throw new PgmlKitError('SERVING_OFF', `predict("${project}", …, { key }): the key routes and logs only projects served through the registry`, {
          where: `models.${reference?.project ?? project}.serving`, hint: 'declare serving: {} (routes) or serving: { log: {} } (routes and the prediction log) for the model, then pgml-kit generate && pgml-kit migrate',
        })
      }
      const call = served ? servedPredictCall(project, features, predictOptions.key === undefined ? null : String(predictOptions.key)) : predictCall(project, features)
      const { rows } = await sql<{ p: number }>`SELECT ${call} AS p`.execute(kitDb).catch((error: unknown) => { throw served ? servingError(error, reference?.project ?? project) : error })
      return Number(rows[0]?.p)
    },

    async predictBatch(project, rows) {
      parseModelReference(project)
      const width = rows[0]?.length ?? 0
      if (rows.some((r) => r.length !== width)) throw new RangeError('predictBatch needs rows of equal length')
      const result = await predictBatchQuery(project, rows.flat()).execute(kitDb)
      return result.rows.map((r) => Number(r.p))
    },

    async predictProba(project, features) {
      parseModelReference(project)
      const { rows } = await predictProbaQuery(project, features).execute(kitDb)
      return (rows[0]?.p ?? []).map(Number)
    },

    async predictOnline(project, entity, predictOptions = {}) {
      // 'churn@challenger': the config's model churn, predicted with the version the alias names.
      const reference = parseModelReference(project)
      const model = resolved.models.find((m) => m.project === (reference?.project ?? project))
      if (!model?.trainingSet) {
        throw new PgmlKitError('MODEL_UNKNOWN', model ? `model "${project}" does not train on a training set of the config, so its online features are unknown` : `no model "${project}" in the config`, {
          hint: 'declare models.<project>.relation as one of features.trainingSets',
        })
      }
      const set = model.trainingSet
      const absentKeys = set.entities.filter((e) => !(e in entity))
      if (absentKeys.length > 0) throw new PgmlKitError('ENTITY_INCOMPLETE', `predictOnline("${project}") needs ${set.entities.join(', ')}; missing ${absentKeys.join(', ')}`)
      const asOf = predictOptions.asOf
      // A string is passed to PostgreSQL as it is (timestamptz input): the microseconds a Date cannot hold, as a label's time read from the database has them.
      if (asOf !== undefined && !(asOf instanceof Date ? Number.isFinite(asOf.getTime()) : typeof asOf === 'string' && asOf.trim() !== '')) throw new RangeError(`asOf must be a valid Date or a timestamp string, got ${String(asOf)}`)
      const imputed = imputedFeatures(model, resolved.state.featureViews)
      const served = model.serving !== null
      const text = renderPredictOnline(set, resolved.state.featureViews, { at: asOf ? 'asOf' : 'now', imputed, byReference: reference !== null, served })
      const parameters = [project, ...set.entities.map((e) => entity[e]), ...(asOf ? [asOf] : []), ...(served ? [entityKeyText(set.entities.map((e) => entity[e]!))] : [])]
      const result = await kitDb.executeQuery<{ p: number | null; absent: boolean[] }>(CompiledQuery.raw(text, parameters)).catch((error: unknown) => {
        const e = error as { code?: string; message?: string }
        if (served && /pgml_kit|model_routes|prediction_log/.test(e.message ?? '')) throw servingError(error, reference?.project ?? project)
        if (!asOf || e.code !== '42501') throw error
        throw new PgmlKitError('PREDICT_NOT_PERMITTED', `predictOnline("${project}", …, { asOf }) reads the feature views' offline tables: ${e.message ?? 'permission denied'}`, {
          cause: error, hint: 'grant this role SELECT on the offline tables it reads (the migration grants roles.app only the online ones), or predict as of now',
        })
      })
      const row = result.rows[0]
      const missing = set.features.filter((_, i) => row?.absent[i] !== false).map(featureRef)
      if (missing.some((f) => !imputed.has(f))) return { status: 'no-features', missing }
      return { status: 'ok', prediction: Number(row?.p), imputed: missing }
    },

    fn: {
      predict: predictRow,
    },
  }
  return kit
}
