/**
 * pgvector may live in any schema: `CREATE EXTENSION vector SCHEMA extensions` (Supabase does
 * so) puts its types, operators and operator classes there, outside most roles' search_path.
 * Statements pgml-kit runs at run time name them qualified with the schema read from the catalog;
 * migration files, written without a database, name them plainly, and migrate puts pgvector's
 * schema on its session's search_path (migrations/run.ts).
 */

/** The schema pgvector is installed in (no row: it is not installed). */
export const VECTOR_SCHEMA = `SELECT n.nspname AS schema FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'`

/**
 * The session's search_path now (`previous`) and with pgvector's schema appended (`wanted`): one
 * row only when pgvector is installed in a schema the session does not search. Appended, so it
 * never changes what a name found in an earlier schema means.
 */
export const SEARCH_PATH_WITH_VECTOR = `SELECT n.nspname AS schema, pg_catalog.current_setting('search_path') AS previous,
  CASE WHEN pg_catalog.btrim(pg_catalog.current_setting('search_path')) = '' THEN pg_catalog.quote_ident(n.nspname)
       ELSE pg_catalog.current_setting('search_path') || ', ' || pg_catalog.quote_ident(n.nspname) END AS wanted
FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'vector' AND n.nspname <> ALL (pg_catalog.current_schemas(true))`

/** $1 the search_path for the rest of the session. */
export const SET_SEARCH_PATH = `SELECT pg_catalog.set_config('search_path', $1, false) AS search_path`

/**
 * The session's search_path now (`previous`), then pg_catalog alone for the session: statements
 * that run next find no function or operator outside pg_catalog by an unqualified name.
 */
export const PIN_SEARCH_PATH = `SELECT pg_catalog.current_setting('search_path') AS previous, pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false) AS pinned`

/** pg_catalog alone for the rest of the current transaction (put back by its end). */
export const PIN_SEARCH_PATH_LOCAL = `SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true) AS pinned`
