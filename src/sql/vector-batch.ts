import type { EmbeddingColumnNode } from '../model/ir.js'
import { renderInteger } from './quote.js'
import { renderVectorType } from './render-source.js'

/**
 * Vectors of a batch travel to the server as one `real[]` parameter in PostgreSQL's binary array
 * format (node-postgres sends a Buffer parameter in binary), sliced per row in SQL and cast with
 * pgvector's real[] → vector (or halfvec) cast. The server then copies floats instead of parsing
 * decimal text: on PGlite, parsing a 384-wide vector's text was most of a backfill write's cost.
 */

const FLOAT4_OID = 700

/**
 * The batch as parameters: `flat`, a one-dimensional real[] of every vector's components in
 * order (a row without a vector takes zeros), and `present`, whether each row has one. Every
 * vector must have passed `vectorProblem` (embedder.ts; `embedForColumn` applies it).
 */
export function encodeVectorBatch(vectors: readonly (ArrayLike<number> | null)[], dimensions: number): { flat: Buffer; present: boolean[] } {
  const count = vectors.length * dimensions
  const flat = Buffer.allocUnsafe(20 + 8 * count)
  flat.writeInt32BE(1, 0) // one dimension
  flat.writeInt32BE(0, 4) // no NULL elements
  flat.writeInt32BE(FLOAT4_OID, 8)
  flat.writeInt32BE(count, 12)
  flat.writeInt32BE(1, 16) // lower bound
  let at = 20
  for (const vector of vectors) {
    if (vector !== null && vector.length !== dimensions) throw new RangeError(`a vector of ${vector.length} dimensions in a batch of ${dimensions}`)
    for (let i = 0; i < dimensions; i++) {
      flat.writeInt32BE(4, at)
      flat.writeFloatBE(vector === null ? 0 : (vector[i] as number), at + 4)
      at += 8
    }
  }
  return { flat, present: vectors.map((v) => v !== null) }
}

/** The row's vector from the batch: `flat` ($n::real[]), the row's 1-based position, and whether it has one. */
export function renderVectorFromBatch(column: EmbeddingColumnNode, vectorSchema: string, flat: string, position: string, present: string): string {
  const d = renderInteger(column.model.dimensions)
  return `CASE WHEN ${present} THEN (${flat}::real[])[(${position} - 1) * ${d} + 1 : ${position} * ${d}]::${renderVectorType(column, vectorSchema)} END`
}
