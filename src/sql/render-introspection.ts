import { quoteQualified } from './quote.js'

/**
 * Read-only statements that look at the live database: capabilities, the catalog, migration
 * history, privileges. Names are always compared as text values (parameters), never parsed.
 */

/** What a target can do: server version, pgvector, pgml or pgml_compat. */
export const CAPABILITIES = `SELECT pg_catalog.current_setting('server_version') AS server_version,
    pg_catalog.current_setting('server_version_num') AS server_version_num,
    (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector') AS vector_installed,
    (SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = 'vector') AS vector_available,
    (SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector') AS vector_schema,
    (SELECT pg_catalog.has_schema_privilege(e.extnamespace, 'USAGE') FROM pg_catalog.pg_extension e WHERE e.extname = 'vector') AS vector_usable,
    current_user AS role,
    (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pgml') AS pgml,
    (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pgml_compat') AS pgml_compat,
    EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'pgml' AND p.proname = 'embed') AS has_embed,
    EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pgml') AS pgml_available,
    EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pgml_compat') AS compat_available,
    (SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE') FROM pg_catalog.pg_namespace n WHERE n.nspname = 'pgml') AS pgml_usage,
    (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) AS superuser`

/** Whether a relation exists ($1: schema, $2: name). */
export const RELATION_EXISTS = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relname = $2) AS ok`

/**
 * Whether each column exists ($1 schemas, $2 tables, $3 columns) → n, ok, in order; ok is false too
 * when the runtime's queue tables are missing (the fill counts read them).
 */
export const COLUMNS_EXIST = `SELECT d.n::int AS n, (a.attnum IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_class k JOIN pg_catalog.pg_namespace s ON s.oid = k.relnamespace
    WHERE s.nspname = 'pgml_kit' AND k.relname = 'embedding_dead_letters')) AS ok
FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) WITH ORDINALITY AS d(schema_name, table_name, column_name, n)
LEFT JOIN pg_catalog.pg_namespace ns ON ns.nspname = d.schema_name
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid AND c.relname = d.table_name
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = d.column_name AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY d.n`

/**
 * For each of the tables ($1 schemas, $2 names) that exists: its columns (name, type, whether it
 * is a text type) and its unique, not-null keys without predicate or expression — what the checks
 * at the top of a generated migration (render-preflight.ts) look at.
 */
export const TABLE_SHAPES = `SELECT d.schema_name AS schema, d.table_name AS table,
  (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object('name', a.attname::text, 'type', pg_catalog.format_type(a.atttypid, a.atttypmod), 'text', t.typcategory = 'S') ORDER BY a.attnum), '[]')
     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
  (SELECT coalesce(pg_catalog.json_agg((SELECT pg_catalog.json_agg(a.attname::text) FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey))), '[]')
     FROM pg_catalog.pg_index i
     WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey) AND NOT a.attnotnull)) AS keys
FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS d(schema_name, table_name)
JOIN pg_catalog.pg_namespace n ON n.nspname = d.schema_name
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = d.table_name AND c.relkind IN ('r', 'p')`

/** Which of the roles $1 exist. */
export const EXISTING_ROLES = `SELECT rolname::text AS name FROM pg_catalog.pg_roles WHERE rolname = ANY ($1::text[])`

/** The embedding columns the pgml_kit catalog records. */
export const CATALOG_COLUMNS = `SELECT table_schema, table_name, column_name, model_id, dimensions, vector_type, mode, source_columns, pg_catalog.to_jsonb(c)::text AS row
FROM pgml_kit.embedding_columns AS c ORDER BY 1, 2, 3`

/** Queue-mode columns in the catalog. */
export const CATALOG_QUEUE_COLUMNS = `SELECT table_schema, table_name, column_name FROM pgml_kit.embedding_columns WHERE mode = 'queue'`

/**
 * Whether roles have privileges: $1 roles, $2 kinds ('schema' | 'table'), $3 schemas, $4 tables,
 * $5 columns (NULL: the whole table), $6 privileges → per input row, in order: 'ok', 'missing',
 * 'no role' or 'no object'. Objects are looked up by name and checked by OID.
 */
export const CHECK_PRIVILEGES = `SELECT i.n::int AS n,
  CASE
    WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = i.role) THEN 'no role'
    WHEN i.kind = 'schema' THEN
      CASE WHEN ns.oid IS NULL THEN 'no object' WHEN pg_catalog.has_schema_privilege(i.role, ns.oid, i.privilege) THEN 'ok' ELSE 'missing' END
    WHEN rel.oid IS NULL THEN 'no object'
    WHEN i.column_name IS NULL THEN
      CASE WHEN pg_catalog.has_table_privilege(i.role, rel.oid, i.privilege) THEN 'ok' ELSE 'missing' END
    WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel.oid AND a.attname = i.column_name AND a.attnum > 0 AND NOT a.attisdropped) THEN 'no object'
    WHEN pg_catalog.has_column_privilege(i.role, rel.oid, i.column_name, i.privilege) THEN 'ok'
    ELSE 'missing'
  END AS state
FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[]), pg_catalog.unnest($6::text[])) WITH ORDINALITY AS i(role, kind, schema_name, table_name, column_name, privilege, n)
LEFT JOIN pg_catalog.pg_namespace ns ON ns.nspname = i.schema_name
LEFT JOIN pg_catalog.pg_class rel ON rel.relnamespace = ns.oid AND rel.relname = i.table_name AND i.kind = 'table'
ORDER BY i.n`

/**
 * What the migration's backend ($1 its pid) is doing and waiting for: the progress of an index
 * build, and the sessions it waits on (a concurrent build waits for every older transaction).
 */
export const MIGRATION_WAITS = `SELECT p.phase, p.tuples_done::float8 AS tuples_done, p.tuples_total::float8 AS tuples_total,
  p.blocks_done::float8 AS blocks_done, p.blocks_total::float8 AS blocks_total,
  CASE WHEN p.index_relid <> 0::oid THEN p.index_relid::regclass::text END AS index_name,
  (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
      'pid', a.pid, 'state', a.state, 'application', a.application_name,
      'seconds', extract(epoch FROM pg_catalog.now() - coalesce(a.xact_start, a.query_start))::int,
      'query', pg_catalog.left(pg_catalog.regexp_replace(a.query, '\\s+', ' ', 'g'), 80)) ORDER BY a.pid), '[]'::json)
   FROM pg_catalog.pg_stat_activity a WHERE a.pid = ANY (pg_catalog.pg_blocking_pids($1))
     -- Not this monitor: its own short query holds a snapshot for a moment, never what the build waits out.
     AND a.pid <> pg_catalog.pg_backend_pid()) AS blockers
FROM (SELECT 1) AS one
LEFT JOIN pg_catalog.pg_stat_progress_create_index p ON p.pid = $1`

/** The vector and halfvec types' OIDs, for client-side type parsers. */
export const VECTOR_TYPE_OIDS = `SELECT oid::int AS oid FROM pg_catalog.pg_type
WHERE typname IN ('vector', 'halfvec') AND typnamespace IN (SELECT extnamespace FROM pg_catalog.pg_extension WHERE extname = 'vector')`

/** The migration history, oldest first (node-pg-migrate's table). */
export function renderAppliedMigrations(schema: string, table: string): string {
  return `SELECT name, run_on FROM ${quoteQualified(schema, table)} ORDER BY run_on, id`
}

/** node-pg-migrate's migration lock ($1 its id): taken by polling, see migrate(). */
export const TRY_MIGRATION_LOCK = 'SELECT pg_catalog.pg_try_advisory_lock($1) AS ok'
export const RELEASE_MIGRATION_LOCK = 'SELECT pg_catalog.pg_advisory_unlock($1)'
export const BACKEND_PID = 'SELECT pg_catalog.pg_backend_pid() AS pid'

/** The session holding the migration lock ($1: node-pg-migrate's lock id, a bigint advisory key) in this database. */
export const MIGRATION_LOCK_HOLDER = `SELECT a.pid, a.application_name AS application, a.state,
  extract(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) a.query_start)::int AS seconds,
  pg_catalog.left(pg_catalog.regexp_replace(a.query, '\\s+', ' ', 'g'), 80) AS query
FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid
WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted AND l.objsubid OPERATOR(pg_catalog.=) 1
  AND l.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
  AND ((l.classid::int8 OPERATOR(pg_catalog.<<) 32) OPERATOR(pg_catalog.|) l.objid::int8) OPERATOR(pg_catalog.=) $1::int8
LIMIT 1`

/**
 * Whether the role that runs pgml-kit's migrations here (the owner of schema pgml_kit, else the
 * connected role) may pass USAGE on schema pgml on: NULL where there is no schema pgml.
 */
export const PGML_GRANTABLE_BY_MIGRATOR = `SELECT CASE WHEN pg_catalog.to_regnamespace('pgml') IS NULL THEN NULL
  ELSE pg_catalog.has_schema_privilege(coalesce((SELECT nspowner FROM pg_catalog.pg_namespace WHERE nspname = 'pgml_kit'),
    (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)), 'pgml', 'USAGE WITH GRANT OPTION') END AS ok`

/**
 * Objects whose SQL a migration runs with the migrating role's rights that someone else could have
 * put there ($1, $2: the migration history table's schema and name): schema pgml_kit and what is in
 * it, the history table, and the functions of triggers on any of those. Returns those owned by a
 * role that does not already hold every privilege of the connected role (it is not that role, a
 * superuser, or a member of it): running such a role's code with the connected role's rights
 * would give it more than it has.
 */
export const UNTRUSTED_RUNTIME_OBJECTS = `WITH me AS (SELECT oid, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
runtime AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pgml_kit'),
history AS (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2),
objects AS (
  SELECT 'schema pgml_kit' AS what, n.nspowner AS owner FROM pg_catalog.pg_namespace n WHERE n.oid IN (SELECT oid FROM runtime)
  UNION ALL
  SELECT pg_catalog.format('%s %s', CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'i' THEN 'index' ELSE 'table' END, c.oid::pg_catalog.regclass), c.relowner
  FROM pg_catalog.pg_class c WHERE c.relnamespace IN (SELECT oid FROM runtime) OR c.oid IN (SELECT oid FROM history)
  UNION ALL
  SELECT pg_catalog.format('function %s', p.oid::pg_catalog.regprocedure), p.proowner FROM pg_catalog.pg_proc p WHERE p.pronamespace IN (SELECT oid FROM runtime)
  UNION ALL
  SELECT pg_catalog.format('trigger %I on %s (function %s)', t.tgname, t.tgrelid::pg_catalog.regclass, t.tgfoid::pg_catalog.regprocedure), p.proowner
  FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
  WHERE NOT t.tgisinternal AND (c.relnamespace IN (SELECT oid FROM runtime) OR c.oid IN (SELECT oid FROM history))
)
SELECT o.what, r.rolname AS owner, me.rolsuper AS superuser
FROM objects o JOIN pg_catalog.pg_roles r ON r.oid = o.owner CROSS JOIN me
WHERE o.owner <> me.oid AND NOT pg_catalog.pg_has_role(o.owner, me.oid, 'USAGE')
ORDER BY 1`
