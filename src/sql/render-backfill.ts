import { renderVectorFromBatch } from './vector-batch.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteQualified } from './quote.js'
import { renderRowEmbedCall, renderSourceText, renderVectorType } from './render-source.js'
import { renderAfterKey, renderKeyColumns, renderKeyMatch, renderRowKey, renderUpToKey } from './render-row-key.js'
import { renderCatalogGuard } from './render-catalog.js'

/** Backfill statements. Rows are visited in primary-key order (keyset pagination, resumable). */

/**
 * Rows after the key in `from` (jsonb text, or NULL for the start) and up to the key in `to` (the
 * last row when the backfill started, or NULL: no row), in key order. The bound keeps a backfill from
 * chasing rows inserted while it runs: those have their own path (the trigger, the queue, the
 * application's writer), and a later run finds any that still lack a vector.
 */
function range(column: EmbeddingColumnNode, from: string, to: string): string {
  return `(${from}::jsonb IS NULL OR ${renderAfterKey(column, 't', `${from}::jsonb`)}) AND ${renderUpToKey(column, 't', `${to}::jsonb`)}`
}

function filter(column: EmbeddingColumnNode, all: boolean): string {
  return all ? 'true' : `t.${quoteIdent(column.column)} IS NULL AND ${renderSourceText(column, 't')} IS NOT NULL`
}

/** How far the column is filled: rows with text to embed, and how many of them still have no vector (a full scan). */
export function renderBackfillProgress(column: EmbeddingColumnNode): string {
  return `SELECT pg_catalog.count(*) FILTER (WHERE ${renderSourceText(column, 't')} IS NOT NULL)::bigint AS with_text,
       pg_catalog.count(*) FILTER (WHERE ${filter(column, false)})::bigint AS missing
FROM ${quoteQualified(column.schema, column.table)} AS t`
}

/** The key of the last row in key order (jsonb text), or none: where a backfill that starts now ends. */
export function renderLastKey(column: EmbeddingColumnNode): string {
  return `SELECT ${renderRowKey(column, 't')}::text AS key FROM ${quoteQualified(column.schema, column.table)} AS t
ORDER BY ${renderKeyColumns(column, 't', ' DESC')}
LIMIT 1`
}

/** Rows the backfill will visit ($1: resume after this key, or NULL; $2: up to this key). */
export function renderCountRows(column: EmbeddingColumnNode, all: boolean): string {
  return `SELECT pg_catalog.count(*)::bigint AS n FROM ${quoteQualified(column.schema, column.table)} AS t WHERE ${filter(column, all)} AND ${range(column, '$1', '$2')}`
}

/**
 * $1 last key (jsonb text or NULL), $2 limit, $3 the key it ends at → key (jsonb as text: keys stay
 * exact, a bigint above 2^53 included, because they never become JavaScript numbers), source text, md5 of it.
 */
export function renderSelectBatch(column: EmbeddingColumnNode, all: boolean): string {
  const source = renderSourceText(column, 't')
  return `SELECT ${renderRowKey(column, 't')}::text AS key, ${source} AS source_text, pg_catalog.md5(${source}) AS source_md5
FROM ${quoteQualified(column.schema, column.table)} AS t
WHERE ${filter(column, all)} AND ${range(column, '$1', '$3')}
ORDER BY ${renderKeyColumns(column, 't')}
LIMIT $2`
}

/**
 * Writes locally computed vectors; a row whose source changed since it was read keeps its value
 * (the change will be embedded by its own path). $1 keys (jsonb[]), $2 source md5s, $3 every
 * vector's components (real[], binary; see vector-batch.ts), $4 whether each row has a vector;
 * `guarded`: $5 the catalog fingerprint the vectors were computed for (nothing is written if it changed).
 */
export function renderWriteBackfill(column: EmbeddingColumnNode, vectorSchema: string, guarded = false): string {
  return `UPDATE ${quoteQualified(column.schema, column.table)} AS t
SET ${quoteIdent(column.column)} = ${renderVectorFromBatch(column, vectorSchema, '$3', 'input.n', 'input.present')}
FROM ROWS FROM (pg_catalog.unnest($1::jsonb[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($4::boolean[])) WITH ORDINALITY AS input(key, source_md5, present, n)
WHERE ${renderKeyMatch(column, 't', 'input.key')}
  AND pg_catalog.md5(${renderSourceText(column, 't')}) IS NOT DISTINCT FROM input.source_md5${renderCatalogGuard(column, guarded ? '$5' : null)}`
}

/**
 * In-database backfill for `trigger` columns: pgml.embed on each row of the batch ($1 keys).
 * `generated` columns are recomputed by rewriting a source column with itself. `guarded`: $2 the
 * catalog fingerprint (nothing is written if it changed).
 */
export function renderDatabaseBackfill(column: EmbeddingColumnNode, vectorSchema: string, guarded = false): string {
  const [first] = column.sourceColumns
  const table = quoteQualified(column.schema, column.table)
  if (column.mode === 'generated') {
    return `UPDATE ${table} AS t
SET ${quoteIdent(first as string)} = t.${quoteIdent(first as string)}
FROM pg_catalog.unnest($1::jsonb[]) AS input(key)
WHERE ${renderKeyMatch(column, 't', 'input.key')}${renderCatalogGuard(column, guarded ? '$2' : null)}`
  }
  // The vectors are computed first, by a plain read that locks no row (pgml.embed on a batch can
  // take long on a busy server); only then are the rows updated, each only if its source is still
  // the text that was embedded. An application's write to a row of the batch never waits for the
  // batch's embeddings, only for the short update; a row it changed meanwhile keeps the vector its
  // own trigger computed.
  const source = renderSourceText(column, 't')
  return `WITH computed AS MATERIALIZED (
  SELECT input.key, pg_catalog.md5(${source}) AS source_md5, ${renderRowEmbedCall(column, 't')}::${renderVectorType(column, vectorSchema)} AS vector
  FROM pg_catalog.unnest($1::jsonb[]) AS input(key)
  JOIN ${table} AS t ON ${renderKeyMatch(column, 't', 'input.key')}
)
UPDATE ${table} AS t
SET ${quoteIdent(column.column)} = computed.vector
FROM computed
WHERE ${renderKeyMatch(column, 't', 'computed.key')}
  AND pg_catalog.md5(${source}) IS NOT DISTINCT FROM computed.source_md5${renderCatalogGuard(column, guarded ? '$2' : null)}`
}

const CHECKPOINT_KEY = 'table_schema = $1 AND table_name = $2 AND column_name = $3'
export const READ_CHECKPOINT = `SELECT last_key::text AS last_key, rows_done FROM pgml_kit.backfill_checkpoints WHERE ${CHECKPOINT_KEY}`
export const SAVE_CHECKPOINT = `INSERT INTO pgml_kit.backfill_checkpoints (table_schema, table_name, column_name, last_key, rows_done)
VALUES ($1, $2, $3, $4::jsonb, $5)
ON CONFLICT (table_schema, table_name, column_name) DO UPDATE SET last_key = EXCLUDED.last_key, rows_done = EXCLUDED.rows_done, updated_at = pg_catalog.now()`
export const CLEAR_CHECKPOINT = `DELETE FROM pgml_kit.backfill_checkpoints WHERE ${CHECKPOINT_KEY}`
