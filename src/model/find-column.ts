import { PgmlKitError } from '../errors.js'
import { columnLabel, type EmbeddingColumnNode } from './ir.js'

/**
 * Finds `<table>.<column>` or `<schema>.<table>.<column>` among the config's embedding columns.
 * Names may contain dots, so the argument is not split: every column that reads so is a match,
 * and more than one is ambiguous.
 */
export function findColumn(columns: readonly EmbeddingColumnNode[], arg: string, chunked: readonly { table: string; column: string }[] = []): EmbeddingColumnNode {
  const matches = columns.filter((c) => columnLabel(c) === arg || `${c.table}.${c.column}` === arg)
  const [match] = matches
  if (matches.length === 1 && match) return match
  const known = columns.map((c) => `${c.table}.${c.column}`).join(', ') || '(none)'
  const full = matches.some((c) => columnLabel(c) === arg)
  throw new PgmlKitError(matches.length > 1 ? 'COLUMN_AMBIGUOUS' : 'COLUMN_UNKNOWN',
    matches.length > 1
      ? full
        ? `"${arg}" names several columns (${matches.map((c) => JSON.stringify([c.schema, c.table, c.column])).join(', ')}): their names contain dots`
        : `"${arg}" matches columns in several schemas; write <schema>.<table>.<column>`
      : `"${arg}" is not an embedding column in the config`,
    { hint: full ? `name one as <table>.<column>: ${matches.map((c) => `${c.table}.${c.column}`).join(', ')}` : `embedding columns: ${known}${chunked.length > 0 ? `; chunked columns: ${chunked.map((c) => `${c.table}.${c.column}`).join(', ')}` : ''}` })
}
