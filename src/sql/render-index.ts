import type { VectorIndexNode, VectorType } from '../model/ir.js'
import { deriveIdentifier, quoteIdent, quoteQualified, renderInteger } from './quote.js'

const OPCLASS_SUFFIX = { l2: 'l2_ops', inner_product: 'ip_ops', cosine: 'cosine_ops', l1: 'l1_ops' } as const

/** HNSW has no default operator class, so one is always named; it must match the query's operator. */
export function operatorClass(index: VectorIndexNode, vectorType: VectorType): string {
  return `${vectorType}_${OPCLASS_SUFFIX[index.distance]}`
}

function renderWith(index: VectorIndexNode): string {
  const entries = Object.entries(index.params)
  if (entries.length === 0) return ''
  return ` WITH (${entries.map(([key, value]) => `${key} = ${renderInteger(value)}`).join(', ')})`
}

/** Name of the temporary index a rebuild creates before it replaces the old one. */
export function rebuildIndexName(index: VectorIndexNode): string {
  return deriveIdentifier([index.name, 'pgml_kit_new'])
}

export function renderCreateIndexConcurrently(index: VectorIndexNode, vectorType: VectorType, name = index.name): string {
  return `CREATE INDEX CONCURRENTLY ${quoteIdent(name)} ON ${quoteQualified(index.schema, index.table)} USING ${index.method} (${quoteIdent(index.column)} ${quoteIdent(operatorClass(index, vectorType))})${renderWith(index)};`
}

export function renderDropIndexConcurrently(schema: string, name: string): string {
  return `DROP INDEX CONCURRENTLY IF EXISTS ${quoteQualified(schema, name)};`
}

export function renderRenameIndex(schema: string, from: string, to: string): string {
  return `ALTER INDEX ${quoteQualified(schema, from)} RENAME TO ${quoteIdent(to)};`
}
