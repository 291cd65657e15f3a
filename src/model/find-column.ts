import { PgmlKitError } from '../errors.js'
import { columnKey, type EmbeddingColumnNode } from './ir.js'

/** Finds `<table>.<column>` or `<schema>.<table>.<column>` among the config's embedding columns. */
export function findColumn(columns: readonly EmbeddingColumnNode[], arg: string): EmbeddingColumnNode {
  const parts = arg.split('.')
  const matches = columns.filter((c) => (parts.length === 3 ? columnKey(c) === arg : parts.length === 2 && `${c.table}.${c.column}` === arg))
  const [match] = matches
  if (matches.length === 1 && match) return match
  const known = columns.map((c) => `${c.table}.${c.column}`).join(', ') || '(none)'
  throw new PgmlKitError(matches.length > 1 ? 'COLUMN_AMBIGUOUS' : 'COLUMN_UNKNOWN',
    matches.length > 1 ? `"${arg}" matches columns in several schemas; write <schema>.<table>.<column>` : `"${arg}" is not an embedding column in the config`,
    { hint: `embedding columns: ${known}` })
}
