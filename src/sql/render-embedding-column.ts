import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteQualified } from './quote.js'
import { renderRowEmbedCall, renderVectorType } from './render-source.js'

function table(column: EmbeddingColumnNode): string {
  return quoteQualified(column.schema, column.table)
}

/**
 * Adds the column. For `trigger` and `app` it is a plain nullable column (instant, no rewrite);
 * for `generated` the database computes every existing row's vector while it rewrites the table.
 */
export function renderAddEmbeddingColumn(column: EmbeddingColumnNode): string {
  const type = renderVectorType(column)
  const generated = column.mode === 'generated' ? ` GENERATED ALWAYS AS (${renderRowEmbedCall(column)}::${type}) STORED` : ''
  return `ALTER TABLE ${table(column)} ADD COLUMN ${quoteIdent(column.column)} ${type}${generated};`
}

export function renderDropEmbeddingColumn(column: EmbeddingColumnNode): string {
  return `ALTER TABLE ${table(column)} DROP COLUMN ${quoteIdent(column.column)};`
}
