import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteLiteral, quoteQualified, renderField } from './quote.js'

/**
 * `||` as PostgreSQL's own text concatenation, whatever the session's search_path holds. A source
 * column may be `varchar`, and `varchar || text` has no exact match among the built-in operators:
 * a plain `||` would take an exact `||(varchar, …)` that any role able to create objects in a
 * schema on the search_path (`public`, often) had defined — and run it as the worker, the migrating
 * role, or every writer of a generated column.
 */
const CONCAT = 'OPERATOR(pg_catalog.||)'

function joinSources(column: Pick<EmbeddingColumnNode, 'sourceColumns' | 'separator'>, rowRef: string | null, concat: string): string {
  const refs = column.sourceColumns.map((name) => (rowRef ? renderField(rowRef, name) : quoteIdent(name)))
  const [first] = refs
  if (refs.length === 1 && first !== undefined) return first
  const allNull = refs.map((ref) => `${ref} IS NULL`).join(' AND ')
  const joined = refs.map((ref) => `COALESCE(${ref}, '')`).join(` ${concat} ${quoteLiteral(column.separator)} ${concat} `)
  return `CASE WHEN ${allNull} THEN NULL ELSE ${joined} END`
}

/**
 * The text an embedding column's vector is computed from: its source columns joined with the
 * separator (a NULL column counts as empty text), or NULL when every source column is NULL, so a
 * row with no text gets no vector. Built only from immutable operators, because a `generated`
 * column's expression must be immutable (`concat_ws` is only stable).
 *
 * @param rowRef `NEW` inside a trigger, `t` for an alias, or null for a bare column reference.
 */
export function renderSourceText(column: Pick<EmbeddingColumnNode, 'sourceColumns' | 'separator'>, rowRef: string | null = null): string {
  return joinSources(column, rowRef, CONCAT)
}

/**
 * The source expression as pgml-kit recorded it in the catalog before it qualified the
 * concatenation (a plain `||`): catalog rows written then still describe the same source.
 */
export function renderUnqualifiedSourceText(column: EmbeddingColumnNode): string {
  return joinSources(column, null, '||')
}

/** A text expression with a prefix in front (none when the prefix is empty). */
export function renderPrefixed(prefix: string, text: string): string {
  return prefix === '' ? text : `${quoteLiteral(prefix)} ${CONCAT} (${text})`
}

/** kwargs for `pgml.embed`: normalisation and model revision, in a fixed key order. */
export function renderEmbedKwargs(column: EmbeddingColumnNode): string {
  const kwargs: Record<string, unknown> = {}
  if (column.model.normalize) kwargs.normalize_embeddings = true
  if (column.model.revision !== null) kwargs.revision = column.model.revision
  return `${quoteLiteral(JSON.stringify(kwargs))}::jsonb`
}

/**
 * `pgml.embed(model, <prefix> || text, kwargs)` — real[], STRICT (NULL text gives NULL). The one
 * rendering of the call: the trigger and generated modes, backfill, parity and query embedding
 * all use it, so they cannot disagree on prefix or kwargs.
 */
export function renderEmbedCall(column: EmbeddingColumnNode, text: string, as: 'document' | 'query'): string {
  const prefix = as === 'document' ? column.model.documentPrefix : column.model.queryPrefix
  return `pgml.embed(${quoteLiteral(column.model.id)}, ${renderPrefixed(prefix, text)}, ${renderEmbedKwargs(column)})`
}

/** The document embedding of a row's source text (`rowRef` as in renderSourceText). */
export function renderRowEmbedCall(column: EmbeddingColumnNode, rowRef: string | null = null): string {
  return renderEmbedCall(column, renderSourceText(column, rowRef), 'document')
}

/**
 * The column's type, `vector(384)` or `halfvec(768)`; qualified with pgvector's schema when it is
 * given (statements that run with any search_path: the worker's and backfill's).
 */
export function renderVectorType(column: Pick<EmbeddingColumnNode, 'vectorType' | 'model'>, vectorSchema?: string): string {
  const type = vectorSchema === undefined ? column.vectorType : quoteQualified(vectorSchema, column.vectorType)
  return `${type}(${column.model.dimensions})`
}
