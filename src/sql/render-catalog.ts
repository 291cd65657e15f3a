import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteLiteral, quoteLiteralOrNull, renderBoolean, renderInteger, renderTextArray } from './quote.js'
import { renderSourceText } from './render-source.js'
import { VECTOR_SCHEMA } from './render-vector-schema.js'

const CATALOG = 'pgml_kit.embedding_columns'

interface ColumnIdentity { readonly schema: string; readonly table: string; readonly column: string }

function whereKey(column: ColumnIdentity, alias = ''): string {
  const a = alias ? `${alias}.` : ''
  return `${a}table_schema = ${quoteLiteral(column.schema)} AND ${a}table_name = ${quoteLiteral(column.table)} AND ${a}column_name = ${quoteLiteral(column.column)}`
}

export function renderRegisterEmbeddingColumn(column: EmbeddingColumnNode): string {
  const m = column.model
  return `INSERT INTO ${CATALOG}
  (table_schema, table_name, column_name, model_id, model_revision, dimensions, vector_type, mode,
   source_columns, source_separator, source_expression, document_prefix, query_prefix, normalize, key_columns,
   pooling, distance, rollout_role, rollout_of)
VALUES
  (${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}, ${quoteLiteral(column.column)}, ${quoteLiteral(m.id)}, ${quoteLiteralOrNull(m.revision)}, ${renderInteger(m.dimensions)}, ${quoteLiteral(column.vectorType)}, ${quoteLiteral(column.mode)},
   ${renderTextArray(column.sourceColumns)}, ${quoteLiteral(column.separator)}, ${quoteLiteral(renderSourceText(column))}, ${quoteLiteral(m.documentPrefix)}, ${quoteLiteral(m.queryPrefix)}, ${renderBoolean(m.normalize)}, ${renderTextArray(column.keyColumns)},
   ${quoteLiteralOrNull(m.pooling)}, ${quoteLiteral(column.distance)}, ${quoteLiteralOrNull(column.rollout?.role ?? null)}, ${quoteLiteralOrNull(column.rollout?.of ?? null)});`
}

export function renderUnregisterEmbeddingColumn(column: EmbeddingColumnNode): string {
  return `DELETE FROM ${CATALOG} WHERE ${whereKey(column)};`
}

export function renderUpdateEmbeddingSource(column: EmbeddingColumnNode): string {
  return `UPDATE ${CATALOG}
SET source_columns = ${renderTextArray(column.sourceColumns)}, source_separator = ${quoteLiteral(column.separator)},
    source_expression = ${quoteLiteral(renderSourceText(column))}, updated_at = pg_catalog.now()
WHERE ${whereKey(column)};`
}

/** What searches read from the catalog besides the model: the query prefix and the distance. */
export function renderUpdateQuerySettings(column: EmbeddingColumnNode): string {
  return `UPDATE ${CATALOG} SET query_prefix = ${quoteLiteral(column.model.queryPrefix)}, distance = ${quoteLiteral(column.distance)}, updated_at = pg_catalog.now() WHERE ${whereKey(column)};`
}

export function renderUpdateEmbeddingMode(column: EmbeddingColumnNode): string {
  return `UPDATE ${CATALOG} SET mode = ${quoteLiteral(column.mode)}, updated_at = pg_catalog.now() WHERE ${whereKey(column)};`
}

/** Runtime version 5 records pooling and distance; columns registered before it get them from the state that created them. */
export function renderRecordQueryModel(column: EmbeddingColumnNode): string {
  return `UPDATE ${CATALOG} SET pooling = ${quoteLiteralOrNull(column.model.pooling)}, distance = ${quoteLiteral(column.distance)} WHERE ${whereKey(column)};`
}

/**
 * A catalog row's fingerprint: md5 of everything that decides the vectors of the column — of its
 * documents (model, prefix, source, pooling…) and of its queries (query prefix, distance). Read
 * through `to_jsonb`, so it can be computed on any runtime version (a field it lacks is null).
 * `OPERATOR(pg_catalog.->)`: for `jsonb -> 'name'` PostgreSQL first looks for an exact `->(jsonb, jsonb)`,
 * which is not built in, so one defined in a schema on the search_path would be taken.
 * pgml-kit never computes it in JavaScript: it reads it with the row, and later compares what it
 * read with what the database says now.
 * The row is `alias.*`, never the bare alias: inside a statement on a user's table (the guard of a
 * worker's or backfill's write, a search's probe) a bare `c` is that table's column `c` if it has
 * one — PostgreSQL prefers a column of an outer query to a whole-row reference — and the guard
 * would compare the fingerprint of nothing, refusing every write.
 */
export function renderCatalogFingerprint(alias: string): string {
  const fields = ['model_id', 'model_revision', 'dimensions', 'vector_type', 'mode', 'source_columns', 'source_separator', 'document_prefix', 'query_prefix', 'normalize', 'key_columns', 'pooling', 'distance', 'rollout_role', 'rollout_of']
  return `pg_catalog.md5(pg_catalog.jsonb_build_array(${fields.map((f) => `pg_catalog.to_jsonb(${alias}.*) OPERATOR(pg_catalog.->) '${f}'`).join(', ')})::text)`
}

/**
 * The catalog rows of some tables as jsonb text, with their fingerprints: of the tables given, of
 * $1 schemas and $2 tables, or of every table. jsonb, so the statement runs on every runtime version (older ones lack
 * some fields).
 */
export function renderReadCatalog(tables: readonly { readonly schema: string; readonly table: string }[] | 'parameters' | 'all'): string {
  const [schemas, names] = tables === 'parameters'
    ? ['$1::text[]', '$2::text[]']
    : tables === 'all' ? ['', ''] : [renderTextArray(tables.map((t) => t.schema)), renderTextArray(tables.map((t) => t.table))]
  return `SELECT pg_catalog.to_jsonb(c.*)::text AS row, ${renderCatalogFingerprint('c')} AS fingerprint
FROM ${CATALOG} AS c
${tables === 'all' ? '' : `WHERE (c.table_schema, c.table_name) IN (SELECT * FROM ROWS FROM (pg_catalog.unnest(${schemas}), pg_catalog.unnest(${names})))
`}ORDER BY c.table_schema, c.table_name, c.column_name`
}

/**
 * Whether this role can read the catalog (it exists, with USAGE on its schema and SELECT on it),
 * and the schema pgvector is installed in (null: it is not), which any role can read.
 */
export const CATALOG_READABLE = `SELECT coalesce((SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE') AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'pgml_kit' AND c.relname = 'embedding_columns'), false) AS readable,
  (${VECTOR_SCHEMA}) AS vector_schema`

/** The column's catalog fingerprint now, as an uncorrelated scalar subquery (evaluated once per statement). */
export function renderCatalogProbe(column: ColumnIdentity): string {
  return `(SELECT ${renderCatalogFingerprint('c')} FROM ${CATALOG} AS c WHERE ${whereKey(column, 'c')})`
}

/**
 * ` AND <the column's catalog row still has the fingerprint in param>`: a write that carries the
 * fingerprint of the catalog row its vectors were computed for writes nothing once a migration
 * changed the column's model or source (the switch of a staged model change, say) in between.
 * Empty without a parameter.
 */
export function renderCatalogGuard(column: ColumnIdentity, param: string | null): string {
  return param === null ? '' : ` AND ${renderCatalogProbe(column)} IS NOT DISTINCT FROM ${param}::text`
}

/** $1 a fingerprint → ok: the column's catalog row still has it. */
export function renderCatalogUnchanged(column: ColumnIdentity): string {
  return `SELECT true${renderCatalogGuard(column, '$1')} AS ok`
}
