import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteLiteral } from './quote.js'

/**
 * The text an embedding column's vector is computed from: its source columns joined with the
 * separator (a NULL column counts as empty text), or NULL when every source column is NULL, so a
 * row with no text gets no vector. Built only from immutable operators, because a `generated`
 * column's expression must be immutable (`concat_ws` is only stable).
 *
 * @param rowRef `NEW` inside a trigger, or null for a bare column reference.
 */
export function renderSourceText(column: EmbeddingColumnNode, rowRef: string | null = null): string {
  const refs = column.sourceColumns.map((name) => (rowRef ? `${rowRef}.${quoteIdent(name)}` : quoteIdent(name)))
  const [first] = refs
  if (refs.length === 1 && first !== undefined) return first
  const allNull = refs.map((ref) => `${ref} IS NULL`).join(' AND ')
  const joined = refs.map((ref) => `COALESCE(${ref}, '')`).join(` || ${quoteLiteral(column.separator)} || `)
  return `CASE WHEN ${allNull} THEN NULL ELSE ${joined} END`
}

/** The source text with the model's document prefix, as the model sees it. */
export function renderDocumentText(column: EmbeddingColumnNode, rowRef: string | null = null): string {
  const text = renderSourceText(column, rowRef)
  return column.model.documentPrefix === '' ? text : `${quoteLiteral(column.model.documentPrefix)} || (${text})`
}

/** kwargs for `pgml.embed`: normalisation and model revision, in a fixed key order. */
export function renderEmbedKwargs(column: EmbeddingColumnNode): string {
  const kwargs: Record<string, unknown> = {}
  if (column.model.normalize) kwargs.normalize_embeddings = true
  if (column.model.revision !== null) kwargs.revision = column.model.revision
  return `${quoteLiteral(JSON.stringify(kwargs))}::jsonb`
}

/** `pgml.embed(model, document text, kwargs)` — returns real[], STRICT (NULL text → NULL). */
export function renderEmbedCall(column: EmbeddingColumnNode, rowRef: string | null = null): string {
  return `pgml.embed(${quoteLiteral(column.model.id)}, ${renderDocumentText(column, rowRef)}, ${renderEmbedKwargs(column)})`
}

export function renderVectorType(column: EmbeddingColumnNode): string {
  return `${column.vectorType}(${column.model.dimensions})`
}
