import { quoteIdent, quoteLiteral, quoteQualified, renderField } from './quote.js'

/**
 * How pgml-kit names a row outside its table (a queue job, a backfill checkpoint, a parity
 * report): a jsonb object of its key columns. And how it finds the row again: each key column
 * compared with the value read back as the column's own type, so the comparison can use the
 * primary key index and keys of every type (bigint beyond 2^53, numeric, uuid, text) stay exact.
 */
export interface KeyedTable {
  readonly schema: string
  readonly table: string
  readonly keyColumns: readonly string[]
}

/** `pg_catalog.jsonb_build_object('id', t."id", ...)`: the row's key as jsonb. */
export function renderRowKey(table: KeyedTable, rowRef: string): string {
  return `pg_catalog.jsonb_build_object(${table.keyColumns.map((k) => `${quoteLiteral(k)}, ${renderField(rowRef, k)}`).join(', ')})`
}

/** `(pg_catalog.jsonb_populate_record(NULL::"s"."t", key))."col"`: a key value read back as the column's type. */
function keyValue(table: KeyedTable, keyExpr: string, column: string): string {
  return `(pg_catalog.jsonb_populate_record(NULL::${quoteQualified(table.schema, table.table)}, ${keyExpr})).${quoteIdent(column)}`
}

/** `t."id" = (pg_catalog.jsonb_populate_record(NULL::"public"."documents", key))."id" AND ...`: the row with that key. */
export function renderKeyMatch(table: KeyedTable, alias: string, keyExpr: string): string {
  return table.keyColumns.map((k) => `${alias}.${quoteIdent(k)} = ${keyValue(table, keyExpr, k)}`).join(' AND ')
}

/** `(t."a", t."b") > (key's a, key's b)`: rows after that key, in key order (keyset pagination). */
export function renderAfterKey(table: KeyedTable, alias: string, keyExpr: string): string {
  const columns = table.keyColumns.map((k) => `${alias}.${quoteIdent(k)}`).join(', ')
  const values = table.keyColumns.map((k) => keyValue(table, keyExpr, k)).join(', ')
  return `(${columns}) > (${values})`
}

/** `(t."a", t."b") <= (key's a, key's b)`: rows up to that key, in key order. */
export function renderUpToKey(table: KeyedTable, alias: string, keyExpr: string): string {
  const columns = table.keyColumns.map((k) => `${alias}.${quoteIdent(k)}`).join(', ')
  const values = table.keyColumns.map((k) => keyValue(table, keyExpr, k)).join(', ')
  return `(${columns}) <= (${values})`
}

/** `t."a", t."b"`: the key columns, for ORDER BY (`t."a" DESC, …` descending). */
export function renderKeyColumns(table: KeyedTable, alias: string, direction: '' | ' DESC' = ''): string {
  return table.keyColumns.map((k) => `${alias}.${quoteIdent(k)}${direction}`).join(', ')
}
