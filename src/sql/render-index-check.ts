/**
 * The statements of `pgml-kit index check` (src/indexes/check.ts). Names and the caller's filter
 * come quoted or as written by the caller; nothing here is run with more privilege than the
 * caller's own.
 */

/**
 * For the check's READ ONLY transaction: pg_catalog first on the search_path (nothing a schema
 * searched before it defines stands in for a built-in; the caller's --where still finds its
 * names after it) and JIT off (a search is short, and a plan costed high by enable_seqscan off
 * would otherwise be compiled at each query).
 */
export const PIN_CHECK_SESSION = `SELECT pg_catalog.set_config('search_path', 'pg_catalog, ' OPERATOR(pg_catalog.||) pg_catalog.current_setting('search_path'), true), pg_catalog.set_config('jit', 'off', true)`

/** For the transaction that keeps a check in the catalog: pg_catalog alone on the search_path. */
export const PIN_CATALOG_ONLY = `SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)`

/**
 * One search of the check ($1 the query vector): the distances of the nearest `limit` rows, with
 * each row's identity (table oid and ctid) so a sampled row can be left out of its own answers.
 * `distance` is the column, pgvector's operator and the cast parameter; `filter` is ` AND (...)` or ''.
 */
export function renderCheckSearch(table: string, column: string, distance: string, filter: string, limit: number): string {
  return `SELECT ${distance} AS d, tableoid::int8::text AS o, ctid::text AS t FROM ${table} WHERE ${column} IS NOT NULL${filter} ORDER BY ${distance} LIMIT ${limit}`
}

/** The plan of one of the check's searches, as JSON (kept apart from render-search.ts, which loads Kysely: the CLI starts without it). */
export function renderCheckPlan(search: string): string {
  return `EXPLAIN (FORMAT JSON) ${search}`
}

/** `n` vectors of the column sampled as queries (after setseed), with each row's identity. */
export function renderSampleQueries(table: string, column: string, n: number): string {
  return `SELECT ${column}::text AS v, tableoid::int8::text AS o, ctid::text AS t FROM ${table} WHERE ${column} IS NOT NULL ORDER BY pg_catalog.random() LIMIT ${n}`
}

/**
 * Whether pgml_kit.embedding_columns has its index_checks column (runtime version 4) and this role
 * may use it so — false, not an error, for a role without USAGE on schema pgml_kit, or without it.
 */
export function renderCatalogColumnUsable(privilege: 'SELECT' | 'UPDATE'): string {
  return `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) n.oid
      JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid
    WHERE n.nspname OPERATOR(pg_catalog.=) 'pgml_kit' AND c.relname OPERATOR(pg_catalog.=) 'embedding_columns'
      AND a.attname OPERATOR(pg_catalog.=) 'index_checks' AND NOT a.attisdropped
      AND pg_catalog.has_schema_privilege(n.oid, 'USAGE') AND pg_catalog.has_column_privilege(c.oid, a.attnum, '${privilege}')) AS ok`
}

/** Merges one index's check ($4 its name, $5 the check as jsonb) into its column's catalog row ($1 schema, $2 table, $3 column). */
export const RECORD_CHECK = `UPDATE pgml_kit.embedding_columns SET index_checks = index_checks || pg_catalog.jsonb_build_object($4::text, $5::jsonb)
      WHERE table_schema = $1 AND table_name = $2 AND column_name = $3`
