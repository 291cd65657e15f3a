import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteLiteral, quoteQualified } from './quote.js'
import { renderEmbedKwargs, renderSourceText } from './render-source.js'

/** $1 sample size → key (jsonb), source text, stored vector (text) of random rows that have a vector. */
export function renderSampleStored(column: EmbeddingColumnNode): string {
  const key = `jsonb_build_object(${column.keyColumns.map((k) => `${quoteLiteral(k)}, t.${quoteIdent(k)}`).join(', ')})`
  return `SELECT ${key} AS key, ${renderSourceText(column, 't')} AS source_text, t.${quoteIdent(column.column)}::text AS stored
FROM ${quoteQualified(column.schema, column.table)} AS t
WHERE t.${quoteIdent(column.column)} IS NOT NULL AND ${renderSourceText(column, 't')} IS NOT NULL
ORDER BY random()
LIMIT $1`
}

/** $1 texts → the database's pgml.embed of each (with the column's document prefix and kwargs), in order. */
export function renderEmbedInDatabase(column: EmbeddingColumnNode): string {
  const prefix = column.model.documentPrefix === '' ? 't.text' : `${quoteLiteral(column.model.documentPrefix)} || t.text`
  return `SELECT array_to_json(pgml.embed(${quoteLiteral(column.model.id)}, ${prefix}, ${renderEmbedKwargs(column)}))::text AS embedding
FROM unnest($1::text[]) WITH ORDINALITY AS t(text, n)
ORDER BY t.n`
}
