import type { KeyedTable } from './render-row-key.js'
import { renderKeyMatch } from './render-row-key.js'
import { quoteIdent, quoteQualified } from './quote.js'
import { renderReadCatalog } from './render-catalog.js'

/** Statements of the `app`-mode writer (src/app). Values are always parameters. */

/** PostgreSQL's limit on parameters per statement. */
export const MAX_PARAMETERS = 65_535

/**
 * `INSERT … VALUES ($1, DEFAULT, …), …`: each row gives the columns it has; a column a row leaves
 * out gets its DEFAULT (an identity, a timestamp), not a NULL. `present[r][c]` says whether row r
 * has column c; parameters are numbered in row order over the present values.
 */
export function renderInsertRows(table: KeyedTable, columns: readonly string[], present: readonly (readonly boolean[])[], returning: readonly string[] | null): string {
  let n = 0
  const rows = present.map((row) => `(${columns.map((_, c) => (row[c] ? `$${++n}` : 'DEFAULT')).join(', ')})`)
  const returned = returning === null ? '*' : returning.map(quoteIdent).join(', ')
  return `INSERT INTO ${quoteQualified(table.schema, table.table)} (${columns.map(quoteIdent).join(', ')}) VALUES ${rows.join(', ')} RETURNING ${returned}`
}

/** $1 the row's key (jsonb): locks the row and reads the given source columns. */
export function renderLockSources(table: KeyedTable, sources: readonly string[]): string {
  return `SELECT ${sources.map((c) => `t.${quoteIdent(c)}`).join(', ')} FROM ${quoteQualified(table.schema, table.table)} AS t WHERE ${renderKeyMatch(table, 't', '$1::jsonb')} FOR UPDATE`
}

/** $1 the row's key (jsonb), $2 the new values (jsonb, read as the table's row type). */
export function renderUpdatePatch(table: KeyedTable, columns: readonly string[]): string {
  const name = quoteQualified(table.schema, table.table)
  return `UPDATE ${name} AS t SET (${columns.map(quoteIdent).join(', ')}) = (SELECT ${columns.map((c) => `p.${quoteIdent(c)}`).join(', ')} FROM jsonb_populate_record(NULL::${name}, $2::jsonb) AS p) WHERE ${renderKeyMatch(table, 't', '$1::jsonb')}`
}

/**
 * One round trip (simple protocol, no parameters) before an insert: opens the transaction, takes the
 * lock the INSERT would take anyway — so no migration can add, switch or drop an embedding column of
 * the table until it commits — and reads the table's catalog rows, which then hold for the insert.
 */
export function renderBeginInsert(table: KeyedTable): string {
  return `BEGIN; LOCK TABLE ${quoteQualified(table.schema, table.table)} IN ROW EXCLUSIVE MODE; ${renderReadCatalog([table])}`
}
