import type { EmbeddingColumnNode } from '../model/ir.js'
import { dollarQuote, quoteLiteral } from './quote.js'

/**
 * A check of the live database that runs first in a migration file, before anything changes, so a
 * config that does not match the database fails with a message that names what is wrong — instead
 * of a migration that applies and a worker or trigger that fails on every row afterwards.
 * Names are compared as text against the catalog, never parsed as identifiers.
 */
export interface PreflightChecks {
  /** Roles that will be granted privileges: they must exist. */
  readonly roles: readonly string[]
  /** Embedding columns being added: their table, source and key columns must be as the config says. */
  readonly added: readonly EmbeddingColumnNode[]
  /** Embedding columns whose source columns change: the new source columns must be text. */
  readonly resourced: readonly EmbeddingColumnNode[]
}

const textArray = (values: readonly string[]) => `ARRAY[${values.map(quoteLiteral).join(', ')}]::text[]`

function tableLookup(column: EmbeddingColumnNode): string {
  return `  SELECT c.oid INTO rel FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = ${quoteLiteral(column.schema)} AND c.relname = ${quoteLiteral(column.table)} AND c.relkind IN ('r', 'p');
  IF rel IS NULL THEN
    RAISE EXCEPTION 'pgml-kit: table %.% does not exist', ${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}
      USING HINT = 'create it in a migration that runs before this one, or fix tables.<table>(.schema) in the config';
  END IF;`
}

function sourceCheck(column: EmbeddingColumnNode): string {
  return `  SELECT string_agg(format('%I (%s)', s.name, CASE WHEN a.attnum IS NULL THEN 'no such column' ELSE pg_catalog.format_type(a.atttypid, a.atttypmod) END), ', ')
    INTO problem
    FROM unnest(${textArray(column.sourceColumns)}) AS s(name)
    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = rel AND a.attname = s.name AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    WHERE a.attnum IS NULL OR t.typcategory <> 'S';
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION 'pgml-kit: the source of %.%.% must be text columns, and these are not: %', ${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}, ${quoteLiteral(column.column)}, problem
      USING HINT = 'list text (or varchar) columns in source, or add a text column (a generated one, say) holding what should be embedded';
  END IF;`
}

function keyCheck(column: EmbeddingColumnNode): string {
  return `  IF NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_index i
    WHERE i.indrelid = rel AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
      AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attnum = ANY (i.indkey))
          = (SELECT array_agg(k ORDER BY k) FROM unnest(${textArray(column.keyColumns)}) AS k)
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attnum = ANY (i.indkey) AND NOT a.attnotnull)
  ) THEN
    RAISE EXCEPTION 'pgml-kit: (%) is not the primary key (nor a unique, not-null key) of %.%', array_to_string(${textArray(column.keyColumns)}, ', '), ${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}
      USING HINT = 'set primaryKey of the table in the config to the columns of its primary key; pgml-kit finds rows again by it';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = rel AND attname = ${quoteLiteral(column.column)} AND attnum > 0 AND NOT attisdropped) THEN
    RAISE EXCEPTION 'pgml-kit: %.% already has a column %', ${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}, ${quoteLiteral(column.column)}
      USING HINT = 'choose another name for the embedding column, or drop the existing one in a migration of its own';
  END IF;`
}

export function isEmptyPreflight(checks: PreflightChecks): boolean {
  return checks.roles.length + checks.added.length + checks.resourced.length === 0
}

export function renderPreflight(checks: PreflightChecks): string {
  const parts: string[] = []
  for (const role of checks.roles) {
    parts.push(`  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = ${quoteLiteral(role)}) THEN
    RAISE EXCEPTION 'pgml-kit: role % does not exist', ${quoteLiteral(role)}
      USING HINT = 'create it first (CREATE ROLE ... LOGIN), or remove it from roles in the config';
  END IF;`)
  }
  for (const column of checks.added) parts.push(`  rel := NULL;\n${tableLookup(column)}\n${sourceCheck(column)}\n${keyCheck(column)}`)
  for (const column of checks.resourced) parts.push(`  rel := NULL;\n${tableLookup(column)}\n${sourceCheck(column)}`)
  const body = `
DECLARE
  rel oid;
  problem text;
BEGIN
${parts.join('\n')}
END
`
  return `DO ${dollarQuote(body)};`
}
