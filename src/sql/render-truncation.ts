import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteQualified } from './quote.js'
import { renderAfterKey, renderKeyColumns, renderRowKey } from './render-row-key.js'
import { renderSourceText } from './render-source.js'

/**
 * The rows of a column whose source text could be longer than the model's window: more UTF-8
 * bytes than $1 (no tokenizer makes more tokens of a text than it has bytes, besides the prefix and
 * special tokens the caller adds to $1), after the key $2 (jsonb, NULL: from the start), $3 at a
 * time, in key order → the row's key (jsonb text) and its source text.
 */
export function renderLongTexts(column: EmbeddingColumnNode): string {
  const source = renderSourceText(column, 't')
  return `SELECT ${renderRowKey(column, 't')}::text AS row_key, ${source} AS source_text
FROM ${quoteQualified(column.schema, column.table)} AS t
WHERE pg_catalog.octet_length(${source}) > $1::int AND ($2::jsonb IS NULL OR ${renderAfterKey(column, 't', '$2::jsonb')})
ORDER BY ${renderKeyColumns(column, 't')}
LIMIT $3::int`
}
