import { sql, type Expression, type RawBuilder } from 'kysely'
import type { Distance } from '../config/schema.js'
import type { EmbeddingColumnNode, FullTextNode } from '../model/ir.js'
import { renderEmbedCall } from './render-source.js'

/**
 * The SQL of the query builders (search, hybrid search, predictions), as Kysely expressions.
 * Names are always passed as identifiers (`sql.id`), never parsed from dotted strings, so a column
 * named `a.b` or `x as y` stays one column.
 */


/** The column's table, `"schema"."table"`. */
export function tableId(column: { schema: string; table: string }): RawBuilder<unknown> {
  return sql.id(column.schema, column.table)
}

/**
 * `(alias.column OPERATOR(vec.<=>) $vector::vec.vector(N))`: the distance the index orders by.
 * `operator` and `vector` are the query's markers; the kit's compiler writes the operator
 * qualified with pgvector's schema, and the vector as its parameter cast to the type the catalog
 * says the column has (see KitDialect), so neither depends on the role's search_path.
 */
export function distanceExpression(column: EmbeddingColumnNode, operator: unknown, vector: unknown, alias: string): RawBuilder<number> {
  return sql<number>`(${sql.id(alias, column.column)} ${sql.val(operator)} ${sql.val(vector)})`
}

/** Similarity where it has a meaning: 1 − distance for cosine, the dot product for inner product. */
export function similarityExpression(distance: Distance, d: RawBuilder<number>): RawBuilder<number> | null {
  if (distance === 'cosine') return sql<number>`(1::float8 - ${d})`
  if (distance === 'inner_product') return sql<number>`(-${d})`
  return null
}

export interface HybridSettings {
  readonly candidates: number
  readonly rrfK: number
  readonly weights: { readonly vector: number; readonly text: number }
}

/**
 * Reciprocal rank fusion of the `candidates` nearest rows by vector and the `candidates` best by
 * full text (`websearch_to_tsquery`, ranked by `ts_rank_cd`): one row per key, with
 * `score = w_v / (rrfK + vector_rank) + w_t / (rrfK + text_rank)` and both ranks (NULL when absent).
 * Key columns come out as `pgml_kit_key_<i>`.
 */
export function hybridFusion(column: EmbeddingColumnNode, fullText: FullTextNode, operator: unknown, vector: unknown, query: string, settings: HybridSettings): RawBuilder<unknown> {
  const keys = column.keyColumns
  const keyList = (alias: string) => sql.join(keys.map((key, i) => sql`${sql.id(alias, key)} AS ${sql.id(`k${i}`)}`))
  const d = distanceExpression(column, operator, vector, 't')
  const tsquery = sql`pg_catalog.websearch_to_tsquery(${sql.lit(fullText.language)}::regconfig, ${query})`
  // `q.query`, never a bare `q`: the table may have a column of that name, which would be ambiguous.
  const rank = sql`pg_catalog.ts_rank_cd(${sql.id('t', fullText.column)}, q.query)`
  // Equal text ranks are common (short texts): the key orders them, so a row's text rank does not
  // depend on the plan. (The vector list keeps the index's order: adding the key there would sort
  // the whole table.)
  const byRank = sql`${rank} DESC, ${sql.join(keys.map((key) => sql`${sql.id('t', key)}`))}`
  return sql`(
    WITH v AS (SELECT ${keyList('t')}, pg_catalog.row_number() OVER (ORDER BY ${d}) AS r FROM ${tableId(column)} AS t ORDER BY ${d} LIMIT ${settings.candidates}),
         x AS (SELECT ${keyList('t')}, pg_catalog.row_number() OVER (ORDER BY ${byRank}) AS r FROM ${tableId(column)} AS t, ${tsquery} AS q(query)
               WHERE ${sql.id('t', fullText.column)} @@ q.query ORDER BY ${byRank} LIMIT ${settings.candidates})
    SELECT ${sql.join(keys.map((_, i) => sql`coalesce(${sql.id('v', `k${i}`)}, ${sql.id('x', `k${i}`)}) AS ${sql.id(`pgml_kit_key_${i}`)}`))},
           coalesce(${settings.weights.vector}::float8 / (${settings.rrfK} + v.r)::float8, 0) + coalesce(${settings.weights.text}::float8 / (${settings.rrfK} + x.r)::float8, 0) AS score,
           v.r::int AS vector_rank, x.r::int AS text_rank
    FROM v FULL JOIN x ON ${sql.join(keys.map((_, i) => sql`${sql.id('v', `k${i}`)} = ${sql.id('x', `k${i}`)}`), sql` AND `)}
  )`
}

/** Joins the table (under `alias`) to the fused rows by key. */
export function hybridJoin(column: EmbeddingColumnNode, alias: string, fusedAlias: string): RawBuilder<boolean> {
  return sql<boolean>`${sql.join(column.keyColumns.map((key, i) => sql`${sql.id(alias, key)} = ${sql.id(fusedAlias, `pgml_kit_key_${i}`)}`), sql` AND `)}`
}

/** $1 query text → the query's vector from pgml.embed (with the query prefix), as pgvector text. */
export function renderQueryEmbedding(column: EmbeddingColumnNode): string {
  return `SELECT pg_catalog.array_to_json(${renderEmbedCall(column, '$1', 'query')})::text AS v`
}

/** Vectors of several texts, embedded by pgml.embed as queries or documents, in order. */
export function embedTexts(column: EmbeddingColumnNode, texts: readonly string[], as: 'query' | 'document'): RawBuilder<{ v: number[] }> {
  return sql<{ v: number[] }>`SELECT ${sql.raw(renderEmbedCall(column, 'u.t', as))} AS v FROM pg_catalog.unnest(${[...texts]}::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n`
}

/**
 * What the database can do for searches, asked once per kit: whether this role can call pgml.embed
 * (it exists, with USAGE on its schema; otherwise queries are embedded locally), and pgvector's version.
 */
export const SEARCH_CAPABILITIES = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname = 'pgml' AND p.proname = 'embed'
    AND pg_catalog.has_schema_privilege(n.oid, 'USAGE') AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE')) AS ok,
  (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector') AS vector_version`

/**
 * What pgml's predict functions are called with for a model reference: a project name as is (the
 * model pgml deployed), or `project@alias` / `project@v3` as the model id the registry names
 * (pgml_kit.model_id, which refuses an unknown or archived one). Split at the last `@`.
 */
function modelArgument(reference: string): RawBuilder<unknown> {
  return reference.includes('@') ? sql`pgml_kit.model_id(${reference}::text)` : sql`${reference}::text`
}

export function predictCall(project: string, features: Expression<unknown> | readonly number[]): RawBuilder<number> {
  return sql<number>`pgml.predict(${modelArgument(project)}, ${Array.isArray(features) ? sql`${[...features]}::real[]` : features})`
}

/**
 * pgml_kit.predict: through the registry — the route (champion, canary, shadow) and the project's
 * prediction log; `key` is the entity key the canary hashes and the log records.
 */
export function servedPredictCall(reference: string, features: readonly number[], key: string | null): RawBuilder<number> {
  return sql<number>`pgml_kit.predict(${reference}::text, ${[...features]}::real[], ${key}::text)`
}

export function predictRow(project: string, features: readonly (Expression<unknown> | number)[]): RawBuilder<number> {
  const values = features.map((f) => (typeof f === 'number' ? sql`${f}` : f))
  return sql<number>`pgml.predict(${modelArgument(project)}, ARRAY[${sql.join(values)}]::real[])`
}

export function predictBatchQuery(project: string, flat: readonly number[]): RawBuilder<{ p: number }> {
  // By model id pgml returns the batch as one array; by project name, as a set.
  if (project.includes('@')) return sql<{ p: number }>`SELECT pg_catalog.unnest(pgml.predict_batch(${modelArgument(project)}, ${[...flat]}::real[])) AS p`
  return sql<{ p: number }>`SELECT pgml.predict_batch(${project}::text, ${[...flat]}::real[]) AS p`
}

export function predictProbaQuery(project: string, features: readonly number[]): RawBuilder<{ p: number[] }> {
  return sql<{ p: number[] }>`SELECT pgml.predict_proba(${modelArgument(project)}, ${[...features]}::real[]) AS p`
}

/**
 * The condition that sets a search's index settings from within its own statement (see
 * `withSettings` in the kit's dialect): no column in it, so PostgreSQL evaluates it once, as a
 * one-time filter above the plan, before any scan starts; `true` makes each setting local to the
 * statement's transaction. Names and values are written as quoted literals — the names are the
 * kit's own, the values integers or words `settingsToApply` checked — so the gated statement has
 * the same parameters, in the same order, as the search: the driver caches it per query shape.
 */
export function settingsGate(settings: readonly (readonly [string, string])[]): RawBuilder<boolean> {
  const assignments = settings.map(([name, value]) => sql`pg_catalog.set_config(${sql.lit(name)}, ${sql.lit(value)}, true)`)
  return sql<boolean>`(SELECT pg_catalog.concat(${sql.join(assignments)})) IS NOT NULL`
}

/** A search's page sorted again by its `distance` column (IVFFlat's relaxed iterative scans return it only nearly in order). */
export function renderSortedByDistance(search: string): string {
  return `SELECT * FROM (${search}) AS pgml_kit_sorted ORDER BY "distance"`
}

/** The column an exact scan sorts by: the search's distance selected once more under a name of its own (the driver removes it from the rows). */
export const EXACT_DISTANCE_COLUMN = 'pgml_kit_distance'

/**
 * A filtered search run as an exact scan: `inner` is the search without its ORDER BY and LIMIT,
 * its distance selected once more as EXACT_DISTANCE_COLUMN (its rows: those the filter keeps).
 * `OFFSET 0` keeps PostgreSQL from pulling the subquery up, so the vector index cannot serve the
 * ORDER BY: the filter is applied (by the filter column's own index where there is one), rows
 * without a vector are left out (as an index scan leaves them), and the rest are sorted by their
 * exact distance. The LIMIT is the search's own parameter, `$limitParameter` (the one after inner's).
 */
export function renderExactSearch(inner: string, limitParameter: number): string {
  if (!Number.isSafeInteger(limitParameter) || limitParameter < 1) throw new RangeError(`an exact search's limit parameter must be a positive integer, got ${limitParameter}`)
  return `SELECT * FROM (${inner} OFFSET 0) AS pgml_kit_exact WHERE "${EXACT_DISTANCE_COLUMN}" IS NOT NULL ORDER BY "${EXACT_DISTANCE_COLUMN}" LIMIT $${limitParameter}`
}

/** The planner's estimate of a statement, as JSON (it is planned, not run). */
export function renderExplain(statement: string): string {
  return `EXPLAIN (FORMAT JSON) ${statement}`
}

/**
 * $1 schema, $2 table → the planner's row count of the table (`reltuples`; −1 before the first
 * ANALYZE) and the session's `hnsw.ef_search` (null until pgvector is loaded in the session).
 */
export const TABLE_ROWS = `SELECT (SELECT c.reltuples::float8 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace
  WHERE s.nspname = $1 AND c.relname = $2) AS n, pg_catalog.current_setting('hnsw.ef_search', true) AS ef_search`
