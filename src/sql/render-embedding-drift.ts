import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteQualified } from './quote.js'

/**
 * What `pgml-kit monitor` reads for an embedding column: a sample of its vectors (as text), the
 * newest `rows` by the `recent` column, or a fixed hash sample (the same rows while the table does
 * not change: md5 of the key) — and the baselines it keeps in pgml_kit.embedding_baselines.
 */
export function renderEmbeddingSample(column: EmbeddingColumnNode, rows: number, recent: string | null): string {
  const order = recent !== null
    ? `t.${quoteIdent(recent)} DESC NULLS LAST`
    : `pg_catalog.md5(ROW(${column.keyColumns.map((k) => `t.${quoteIdent(k)}`).join(', ')})::text)`
  return `SELECT t.${quoteIdent(column.column)}::text AS v, pg_catalog.md5(ROW(${column.keyColumns.map((k) => `t.${quoteIdent(k)}`).join(', ')})::text) AS k FROM ${quoteQualified(column.schema, column.table)} AS t
WHERE t.${quoteIdent(column.column)} IS NOT NULL ORDER BY ${order} LIMIT ${Math.trunc(rows)}`
}

/** $1 schema, $2 table, $3 column → the latest baseline. */
export const READ_EMBEDDING_BASELINE = `SELECT b.captured_at, b.captured_by::text AS captured_by, b.row_count, b.baseline FROM pgml_kit.embedding_baselines AS b
WHERE b.table_schema = $1 AND b.table_name = $2 AND b.column_name = $3 ORDER BY b.id DESC LIMIT 1`

/** $1 schema, $2 table, $3 column, $4 rows in the table, $5 baseline (jsonb text). */
export const RECORD_EMBEDDING_BASELINE = `INSERT INTO pgml_kit.embedding_baselines (table_schema, table_name, column_name, row_count, baseline) VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING captured_at`

/** Rows in the column's table with a vector (for the report). */
export function renderCountVectors(column: EmbeddingColumnNode): string {
  return `SELECT pg_catalog.count(*)::bigint AS n FROM ${quoteQualified(column.schema, column.table)} AS t WHERE t.${quoteIdent(column.column)} IS NOT NULL`
}

/** Whether the runtime has the embedding baselines (version 7). */
export const EMBEDDING_BASELINES_EXIST = `SELECT pg_catalog.to_regclass('pgml_kit.embedding_baselines') IS NOT NULL AS ok`
