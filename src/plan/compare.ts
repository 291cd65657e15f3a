import type { EmbeddingColumnNode, VectorIndexNode } from '../model/ir.js'

/**
 * What two column or index nodes must share to be "the same" to the database — the comparisons
 * the planner and the staged model change decide by.
 */

/** Same model, as far as stored vectors are concerned: changing any of these needs every vector recomputed. */
export function sameModel(a: EmbeddingColumnNode, b: EmbeddingColumnNode): boolean {
  return a.model.id === b.model.id && a.model.revision === b.model.revision && a.model.dimensions === b.model.dimensions
    && a.vectorType === b.vectorType && a.model.normalize === b.model.normalize && a.model.documentPrefix === b.model.documentPrefix
    && a.model.pooling === b.model.pooling
}

/**
 * Whether the vectors stored for `a` are valid for `b` and `b`'s way of keeping them in sync can
 * replace `a`'s in place: the same model, and neither side a generated column (a generated
 * column's expression can neither be added to an existing column nor removed reversibly without
 * rewriting the table).
 */
export function vectorsCarryOver(a: EmbeddingColumnNode, b: EmbeddingColumnNode): boolean {
  return sameModel(a, b) && (a.mode === 'generated') === (b.mode === 'generated')
}

export function sameSource(a: EmbeddingColumnNode, b: EmbeddingColumnNode): boolean {
  return a.separator === b.separator && a.sourceColumns.length === b.sourceColumns.length
    && a.sourceColumns.every((name, i) => name === b.sourceColumns[i])
}

/** Same index as far as the database is concerned ('auto' parameters compare by the values they were given). */
export function sameIndex(a: VectorIndexNode, b: VectorIndexNode): boolean {
  return a.schema === b.schema && a.table === b.table && a.column === b.column && a.method === b.method
    && a.distance === b.distance && JSON.stringify(a.params) === JSON.stringify(b.params) && a.auto.join() === b.auto.join()
}

/** Same method, distance, fixed parameters and 'auto' list: an index built for one serves the other (its 'auto' values kept). */
export function sameFixedParams(a: VectorIndexNode, b: VectorIndexNode): boolean {
  if (a.method !== b.method || a.distance !== b.distance || a.auto.join() !== b.auto.join()) return false
  const keys = new Set([...Object.keys(a.params), ...Object.keys(b.params)])
  return [...keys].every((k) => a.auto.includes(k) || a.params[k] === b.params[k])
}
