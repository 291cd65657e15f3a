import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteQualified } from './quote.js'

/**
 * What `status --drift` reads (src/drift.ts compares it with the migrations' snapshot), and the
 * statements it prints as fixes that are not the generated ones.
 */

/** The runtime's relations every pgml-kit project with embedding columns needs (queue, dead letters, checkpoints). */
export const RUNTIME_RELATIONS = ['runtime_version', 'embedding_columns', 'embedding_jobs', 'embedding_dead_letters', 'backfill_checkpoints', 'created_extensions', 'embedding_jobs_due_idx']
export const MISSING_RUNTIME_RELATIONS = `SELECT r AS name FROM pg_catalog.unnest($1::text[]) AS r
WHERE pg_catalog.to_regclass(pg_catalog.quote_ident('pgml_kit') OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r)) IS NULL`

/** The live trigger functions of the runtime schema, by name (no arguments). */
export const READ_TRIGGER_FUNCTIONS = `SELECT p.proname::text AS name, p.prosrc AS source, p.prosecdef AS definer, p.proconfig AS config
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'pgml_kit' AND p.pronargs = 0 AND p.proname = ANY ($1::name[])`

export const PGML_EMBED_EXISTS = `SELECT pg_catalog.to_regprocedure('pgml.embed(text,text,jsonb)') IS NOT NULL AS ok`

/**
 * `type`: pgvector's types as \`vector(384)\` wherever pgvector is installed (format_type would
 * qualify them with a schema that is not on the search_path); any other type as format_type says.
 */
export const READ_COLUMNS = `SELECT d.n::int AS n, c.oid IS NOT NULL AS table_exists,
       CASE WHEN a.attnum IS NULL THEN NULL
            WHEN t.typnamespace = (SELECT e.extnamespace FROM pg_catalog.pg_extension e WHERE e.extname = 'vector') AND t.typname IN ('vector', 'halfvec')
              THEN t.typname::text || CASE WHEN a.atttypmod >= 0 THEN '(' || a.atttypmod::text || ')' ELSE '' END
            ELSE pg_catalog.format_type(a.atttypid, a.atttypmod) END AS type,
       a.attgenerated::text AS generated, a.attnotnull AS not_null,
       CASE WHEN a.atthasdef AND a.attgenerated = '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END AS default_expr
FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) WITH ORDINALITY AS d(schema_name, table_name, column_name, n)
LEFT JOIN pg_catalog.pg_namespace ns ON ns.nspname = d.schema_name
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid AND c.relname = d.table_name AND c.relkind IN ('r', 'p')
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = d.column_name AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
ORDER BY d.n`

/** Triggers on the given tables that are pgml-kit's by name or by function. */
export const READ_TRIGGERS = `SELECT n.nspname AS schema_name, c.relname AS table_name, t.tgname AS name, t.tgenabled::text AS enabled,
       pn.nspname AS function_schema, p.proname AS function_name
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
WHERE NOT t.tgisinternal AND (n.nspname, c.relname) IN (SELECT * FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])))
  AND (t.tgname::text LIKE 'pgml\\_kit\\_%' OR pn.nspname = 'pgml_kit')`

/** Every row as jsonb: fields later runtime versions added are compared only where the database has them. */
export const READ_CATALOG = 'SELECT pg_catalog.to_jsonb(c)::text AS row FROM pgml_kit.embedding_columns AS c'

/** The runtime schema's version now. */
export const READ_RUNTIME_VERSION = 'SELECT pg_catalog.max(version)::int AS v FROM pgml_kit.runtime_version'

/** Rows whose text is there and whose vector is not, and all rows, of an embedding column's table (one scan). */
export function renderCountMissingVectors(column: EmbeddingColumnNode): string {
  const hasText = column.sourceColumns.map((s) => `${quoteIdent(s)} IS NOT NULL`).join(' OR ')
  return `SELECT pg_catalog.count(*) FILTER (WHERE ${quoteIdent(column.column)} IS NULL AND (${hasText}))::text AS missing, pg_catalog.count(*)::text AS total FROM ${quoteQualified(column.schema, column.table)}`
}

/** Jobs queued for a column ($1 schema, $2 table, $3 column). */
export const COUNT_QUEUED_JOBS = 'SELECT pg_catalog.count(*)::text AS n FROM pgml_kit.embedding_jobs WHERE table_schema OPERATOR(pg_catalog.=) $1::name AND table_name OPERATOR(pg_catalog.=) $2::name AND column_name OPERATOR(pg_catalog.=) $3::name'

export function renderDropColumnDefault(column: EmbeddingColumnNode): string {
  return `ALTER TABLE ${quoteQualified(column.schema, column.table)} ALTER COLUMN ${quoteIdent(column.column)} DROP DEFAULT;`
}

export function renderDropColumnNotNull(column: EmbeddingColumnNode): string {
  return `ALTER TABLE ${quoteQualified(column.schema, column.table)} ALTER COLUMN ${quoteIdent(column.column)} DROP NOT NULL;`
}

/** A function's body, SECURITY DEFINER flag and settings, by its signature ($1, e.g. `s.f()`); no row when it does not exist. */
export const READ_FUNCTION = 'SELECT p.prosrc AS source, p.prosecdef AS definer, p.proconfig AS config FROM pg_catalog.pg_proc AS p WHERE p.oid = pg_catalog.to_regprocedure($1)'
