import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteQualified } from './quote.js'
import { renderRowEmbedCall, renderVectorType } from './render-source.js'
import { squawkIgnore } from './squawk.js'

function table(column: EmbeddingColumnNode): string {
  return quoteQualified(column.schema, column.table)
}

/**
 * Adds the column. For `trigger` and `app` it is a plain nullable column (instant, no rewrite);
 * for `generated` the database computes every existing row's vector while it rewrites the table.
 * Migrations name the type plainly (migrate searches pgvector's schema); a fix printed for a
 * database whose pgvector schema is known (drift) qualifies it with `vectorSchema`.
 */
export function renderAddEmbeddingColumn(column: EmbeddingColumnNode, vectorSchema?: string): string {
  const type = renderVectorType(column, vectorSchema)
  const generated = column.mode === 'generated' ? ` GENERATED ALWAYS AS (${renderRowEmbedCall(column)}::${type}) STORED` : ''
  const ignore = generated ? squawkIgnore(['adding-field-with-default'], 'mode "generated": a stored generated column rewrites the table once; the plan classes it [rewrites/locks] and plan --format markdown sizes it') : ''
  return `${ignore}ALTER TABLE ${table(column)} ADD COLUMN ${quoteIdent(column.column)} ${type}${generated};`
}

/** Why pgml-kit may drop a column it manages. */
export const OWN_COLUMN_DROP = 'a column pgml-kit added: dropped only by a down, or by a change generate writes only with --allow-destructive'

export function renderDropEmbeddingColumn(column: EmbeddingColumnNode): string {
  return `${squawkIgnore(['ban-drop-column'], OWN_COLUMN_DROP)}ALTER TABLE ${table(column)} DROP COLUMN ${quoteIdent(column.column)};`
}
