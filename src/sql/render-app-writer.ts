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
export function renderInsertRows(table: KeyedTable, columns: readonly string[], present: readonly (readonly boolean[])[], returning: readonly string[] | null, extra: readonly string[] = []): string {
  let n = 0
  const rows = present.map((row) => `(${columns.map((_, c) => (row[c] ? `$${++n}` : 'DEFAULT')).join(', ')})`)
  const returned = [returning === null ? 't.*' : returning.map((c) => `t.${quoteIdent(c)}`).join(', '), ...extra].filter((x) => x !== '').join(', ')
  return `INSERT INTO ${quoteQualified(table.schema, table.table)} AS t (${columns.map(quoteIdent).join(', ')}) VALUES ${rows.join(', ')} RETURNING ${returned}`
}

/** $1 the row's key (jsonb): locks the row and reads the given source columns. */
export function renderLockSources(table: KeyedTable, sources: readonly string[]): string {
  return `SELECT ${sources.map((c) => `t.${quoteIdent(c)}`).join(', ')} FROM ${quoteQualified(table.schema, table.table)} AS t WHERE ${renderKeyMatch(table, 't', '$1::jsonb')} FOR UPDATE`
}

/** $1 the row's key (jsonb), $2 the new values (jsonb, read as the table's row type). */
export function renderUpdatePatch(table: KeyedTable, columns: readonly string[], returning: readonly string[] = []): string {
  const name = quoteQualified(table.schema, table.table)
  return `UPDATE ${name} AS t SET (${columns.map(quoteIdent).join(', ')}) = (SELECT ${columns.map((c) => `p.${quoteIdent(c)}`).join(', ')} FROM pg_catalog.jsonb_populate_record(NULL::${name}, $2::jsonb) AS p) WHERE ${renderKeyMatch(table, 't', '$1::jsonb')}${returning.length > 0 ? ` RETURNING ${returning.join(', ')}` : ''}`
}

/**
 * What an insert runs in the round trip that opens its transaction (simple protocol, no
 * parameters): takes the lock the INSERT would take anyway — so no migration can add, switch or
 * drop an embedding column of the table until the transaction ends — and reads the table's catalog
 * rows, which then hold for the insert.
 */
export function renderLockForInsert(table: KeyedTable): string {
  return `LOCK TABLE ${quoteQualified(table.schema, table.table)} IN ROW EXCLUSIVE MODE; ${renderReadCatalog([table])}`
}

/** The savepoint a write opens inside the caller's transaction, so that a failed write undoes only itself. */
export const WRITE_SAVEPOINT = 'pgml_kit_write'

/**
 * Whether the session is inside a transaction block: a statement on its own runs in a transaction
 * that starts with it, so its start and the transaction's are the same instant; inside a block the
 * transaction started with an earlier message. (Unlike BEGIN's "already in progress" WARNING, this
 * holds whatever client_min_messages says, and logs nothing.)
 */
export const INSIDE_TRANSACTION = 'SELECT pg_catalog.transaction_timestamp() <> pg_catalog.statement_timestamp() AS inside'

/** Opens a write: a transaction, or a savepoint inside the caller's; `then` runs in the same round trip. */
export function renderOpenWrite(inside: boolean, then?: string): string {
  const open = inside ? `SAVEPOINT ${WRITE_SAVEPOINT}` : 'BEGIN'
  return then ? `${open}; ${then}` : open
}

/** Ends a write that succeeded: its transaction commits, or its savepoint joins the caller's transaction. */
export function renderEndWrite(inside: boolean): string {
  return inside ? `RELEASE SAVEPOINT ${WRITE_SAVEPOINT}` : 'COMMIT'
}

/** Undoes a write that failed — and only it, inside the caller's transaction, which stays usable. */
export function renderUndoWrite(inside: boolean): string {
  return inside ? `ROLLBACK TO SAVEPOINT ${WRITE_SAVEPOINT}; RELEASE SAVEPOINT ${WRITE_SAVEPOINT}` : 'ROLLBACK'
}
