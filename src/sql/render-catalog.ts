import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteLiteral, quoteLiteralOrNull, renderBoolean, renderInteger, renderTextArray } from './quote.js'
import { renderSourceText } from './render-source.js'

const CATALOG = 'pgml_kit.embedding_columns'

function whereKey(column: EmbeddingColumnNode): string {
  return `table_schema = ${quoteLiteral(column.schema)} AND table_name = ${quoteLiteral(column.table)} AND column_name = ${quoteLiteral(column.column)}`
}

export function renderRegisterEmbeddingColumn(column: EmbeddingColumnNode): string {
  const m = column.model
  return `INSERT INTO ${CATALOG}
  (table_schema, table_name, column_name, model_id, model_revision, dimensions, vector_type, mode,
   source_columns, source_separator, source_expression, document_prefix, query_prefix, normalize, key_columns)
VALUES
  (${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}, ${quoteLiteral(column.column)}, ${quoteLiteral(m.id)}, ${quoteLiteralOrNull(m.revision)}, ${renderInteger(m.dimensions)}, ${quoteLiteral(column.vectorType)}, ${quoteLiteral(column.mode)},
   ${renderTextArray(column.sourceColumns)}, ${quoteLiteral(column.separator)}, ${quoteLiteral(renderSourceText(column))}, ${quoteLiteral(m.documentPrefix)}, ${quoteLiteral(m.queryPrefix)}, ${renderBoolean(m.normalize)}, ${renderTextArray(column.keyColumns)});`
}

export function renderUnregisterEmbeddingColumn(column: EmbeddingColumnNode): string {
  return `DELETE FROM ${CATALOG} WHERE ${whereKey(column)};`
}

export function renderUpdateEmbeddingSource(column: EmbeddingColumnNode): string {
  return `UPDATE ${CATALOG}
SET source_columns = ${renderTextArray(column.sourceColumns)}, source_separator = ${quoteLiteral(column.separator)},
    source_expression = ${quoteLiteral(renderSourceText(column))}, updated_at = now()
WHERE ${whereKey(column)};`
}

export function renderUpdateQueryPrefix(column: EmbeddingColumnNode): string {
  return `UPDATE ${CATALOG} SET query_prefix = ${quoteLiteral(column.model.queryPrefix)}, updated_at = now() WHERE ${whereKey(column)};`
}
