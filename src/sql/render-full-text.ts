import { squawkIgnore } from './squawk.js'
import { OWN_COLUMN_DROP } from './render-embedding-column.js'
import type { FullTextNode } from '../model/ir.js'
import { quoteIdent, quoteLiteral, quoteQualified } from './quote.js'

/**
 * The tsvector expression: each source column (NULL as empty text) through the text search
 * configuration, weighted when a weight is given. `pg_catalog.to_tsvector(regconfig, text)` is immutable, so
 * it can define a generated column.
 */
export function renderTsvector(node: FullTextNode, rowRef: string | null = null): string {
  const config = `${quoteLiteral(node.language)}::regconfig`
  return node.sources.map(({ column, weight }) => {
    const ref = rowRef ? `${rowRef}.${quoteIdent(column)}` : quoteIdent(column)
    const vector = `pg_catalog.to_tsvector(${config}, coalesce(${ref}, ''))`
    return weight ? `pg_catalog.setweight(${vector}, ${quoteLiteral(weight)})` : vector
  }).join(' || ')
}

export function renderAddFullTextColumn(node: FullTextNode): string {
  return `${squawkIgnore(['adding-field-with-default'], 'a stored generated tsvector column rewrites the table once; the plan classes it [rewrites/locks] and plan --format markdown sizes it')}ALTER TABLE ${quoteQualified(node.schema, node.table)} ADD COLUMN ${quoteIdent(node.column)} tsvector GENERATED ALWAYS AS (${renderTsvector(node)}) STORED;`
}

export function renderDropFullTextColumn(node: FullTextNode): string {
  return `${squawkIgnore(['ban-drop-column'], OWN_COLUMN_DROP)}ALTER TABLE ${quoteQualified(node.schema, node.table)} DROP COLUMN ${quoteIdent(node.column)};`
}

export function renderCreateGinIndexConcurrently(node: FullTextNode): string {
  return `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${quoteIdent(node.indexName)} ON ${quoteQualified(node.schema, node.table)} USING gin (${quoteIdent(node.column)});`
}
