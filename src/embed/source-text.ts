import type { EmbeddingColumnNode } from '../model/ir.js'

/**
 * The text a row is embedded from, computed in JavaScript with exactly the semantics of the SQL
 * expression the migrations use (`renderSourceText`): source columns joined with the separator, a
 * NULL column counting as empty text, NULL when every source column is NULL.
 */
export function sourceTextOf(column: EmbeddingColumnNode, row: Readonly<Record<string, unknown>>): string | null {
  const values = column.sourceColumns.map((name) => row[name])
  if (values.every((v) => v === null || v === undefined)) return null
  return values.map((v) => (v === null || v === undefined ? '' : String(v))).join(column.separator)
}
