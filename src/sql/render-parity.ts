import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteQualified } from './quote.js'
import { renderEmbedCall, renderSourceText } from './render-source.js'
import { renderRowKey } from './render-row-key.js'

/** $1 sample size → key (jsonb as text), source text, stored vector (text) of random rows that have a vector. */
export function renderSampleStored(column: EmbeddingColumnNode): string {
  return `SELECT ${renderRowKey(column, 't')}::text AS key, ${renderSourceText(column, 't')} AS source_text, t.${quoteIdent(column.column)}::text AS stored
FROM ${quoteQualified(column.schema, column.table)} AS t
WHERE t.${quoteIdent(column.column)} IS NOT NULL AND ${renderSourceText(column, 't')} IS NOT NULL
ORDER BY pg_catalog.random()
LIMIT $1`
}

/** $1 texts → the database's pgml.embed of each (as documents: the column's prefix and kwargs), in order. */
export function renderEmbedInDatabase(column: EmbeddingColumnNode): string {
  return `SELECT pg_catalog.array_to_json(${renderEmbedCall(column, 't.text', 'document')})::text AS embedding
FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS t(text, n)
ORDER BY t.n`
}
