import type { EmbeddingColumnNode, FullTextNode } from '../model/ir.js'
import { embeddingPath, fullTextPath, fullTextSourcePath, primaryKeyPath, sourcePath, tablePath } from '../model/config-path.js'
import { dollarQuote, quoteLiteral } from './quote.js'

/**
 * A check of the live database that runs first in a migration file, before anything changes, so a
 * config that does not match the database fails with a message that names what is wrong — instead
 * of a migration that applies and a worker or trigger that fails on every row afterwards.
 * Names are compared as text against the catalog, never parsed as identifiers. Each message names
 * the config path to fix (`(config: tables.documents.primaryKey)`, `… at tables.documents.fullText.source[0]`).
 */
export interface PreflightChecks {
  /** Roles that will be granted privileges, and where the config names them: they must exist. */
  readonly roles: readonly { readonly role: string; readonly path: string }[]
  /** Embedding columns being added: their table, source and key columns must be as the config says. */
  readonly added: readonly EmbeddingColumnNode[]
  /** Embedding columns whose source columns change: the new source columns must be text. */
  readonly resourced: readonly EmbeddingColumnNode[]
  /** Full-text columns being added: their table must exist, their source columns be text, their column be free. */
  readonly fullText: readonly FullTextNode[]
  /** Full-text columns re-added with other sources or language: the source columns must be text. */
  readonly fullTextChanged: readonly FullTextNode[]
  /**
   * Tables the plan renames first (`renamedFrom`): the checks above run after the rename, and so
   * name the new table; `generate --database-url` looks a table up under its old name.
   */
  readonly renamedTables?: readonly { readonly schema: string; readonly from: string; readonly to: string }[]
}

const textArray = (values: readonly string[]) => `ARRAY[${values.map(quoteLiteral).join(', ')}]::text[]`

function tableLookup(node: { readonly schema: string; readonly table: string }): string {
  return `  SELECT c.oid INTO rel FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = ${quoteLiteral(node.schema)} AND c.relname = ${quoteLiteral(node.table)} AND c.relkind IN ('r', 'p');
  IF rel IS NULL THEN
    RAISE EXCEPTION 'pgml-kit: table %.% does not exist (config: %)', ${quoteLiteral(node.schema)}, ${quoteLiteral(node.table)}, ${quoteLiteral(tablePath(node))}
      USING HINT = 'create it in a migration that runs before this one, or fix tables.<table>(.schema) in the config';
  END IF;`
}

/** Sets `problem` to the source columns (with their config paths) that are missing or not text, or NULL. */
function findNonText(columns: readonly string[], paths: readonly string[]): string {
  return `  SELECT pg_catalog.string_agg(pg_catalog.format('%I (%s) at %s', s.name, CASE WHEN a.attnum IS NULL THEN 'no such column' ELSE pg_catalog.format_type(a.atttypid, a.atttypmod) END, s.path), ', ' ORDER BY s.n)
    INTO problem
    FROM ROWS FROM (pg_catalog.unnest(${textArray(columns)}), pg_catalog.unnest(${textArray(paths)})) WITH ORDINALITY AS s(name, path, n)
    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = rel AND a.attname = s.name AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    WHERE a.attnum IS NULL OR t.typcategory <> 'S';`
}

function sourceCheck(column: EmbeddingColumnNode): string {
  return `${findNonText(column.sourceColumns, column.sourceColumns.map((_, i) => sourcePath(column, i)))}
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION 'pgml-kit: the source of %.%.% must be text columns, and these are not: %', ${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}, ${quoteLiteral(column.column)}, problem
      USING HINT = 'list text (or varchar) columns in source, or add a text column (a generated one, say) holding what should be embedded';
  END IF;`
}

function fullTextSourceCheck(node: FullTextNode): string {
  return `${findNonText(node.sources.map((s) => s.column), node.sources.map((_, i) => fullTextSourcePath(node, i)))}
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION 'pgml-kit: the full-text source of %.% must be text columns, and these are not: %', ${quoteLiteral(node.schema)}, ${quoteLiteral(node.table)}, problem
      USING HINT = 'list text (or varchar) columns of the table in fullText.source';
  END IF;`
}

function fullTextColumnCheck(node: FullTextNode): string {
  return `  IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = rel AND attname = ${quoteLiteral(node.column)} AND attnum > 0 AND NOT attisdropped) THEN
    RAISE EXCEPTION 'pgml-kit: %.% already has a column % (config: %)', ${quoteLiteral(node.schema)}, ${quoteLiteral(node.table)}, ${quoteLiteral(node.column)}, ${quoteLiteral(`${fullTextPath(node)}.column`)}
      USING HINT = 'choose another name in fullText.column, or drop the existing column in a migration of its own';
  END IF;`
}

function keyCheck(column: EmbeddingColumnNode): string {
  return `  IF NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_index i
    WHERE i.indrelid = rel AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
      AND (SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attnum = ANY (i.indkey))
          OPERATOR(pg_catalog.=) (SELECT pg_catalog.array_agg(k ORDER BY k) FROM pg_catalog.unnest(${textArray(column.keyColumns)}) AS k)
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attnum = ANY (i.indkey) AND NOT a.attnotnull)
  ) THEN
    RAISE EXCEPTION 'pgml-kit: (%) is not the primary key (nor a unique, not-null key) of %.% (config: %)', pg_catalog.array_to_string(${textArray(column.keyColumns)}, ', '), ${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}, ${quoteLiteral(primaryKeyPath(column))}
      USING HINT = 'set primaryKey of the table in the config to the columns of its primary key; pgml-kit finds rows again by it';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = rel AND attname = ${quoteLiteral(column.column)} AND attnum > 0 AND NOT attisdropped) THEN
    RAISE EXCEPTION 'pgml-kit: %.% already has a column % (config: %)', ${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}, ${quoteLiteral(column.column)}, ${quoteLiteral(embeddingPath(column))}
      USING HINT = 'choose another name for the embedding column, or drop the existing one in a migration of its own';
  END IF;`
}

export function isEmptyPreflight(checks: PreflightChecks): boolean {
  return checks.roles.length + checks.added.length + checks.resourced.length + checks.fullText.length + checks.fullTextChanged.length === 0
}

export function renderPreflight(checks: PreflightChecks): string {
  const parts: string[] = []
  for (const { role, path } of checks.roles) {
    parts.push(`  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = ${quoteLiteral(role)}) THEN
    RAISE EXCEPTION 'pgml-kit: role % does not exist (config: %)', ${quoteLiteral(role)}, ${quoteLiteral(path)}
      USING HINT = 'create it first (CREATE ROLE ... LOGIN), or remove it from roles in the config';
  END IF;`)
  }
  for (const column of checks.added) parts.push(`  rel := NULL;\n${tableLookup(column)}\n${sourceCheck(column)}\n${keyCheck(column)}`)
  for (const column of checks.resourced) parts.push(`  rel := NULL;\n${tableLookup(column)}\n${sourceCheck(column)}`)
  for (const node of checks.fullText) parts.push(`  rel := NULL;\n${tableLookup(node)}\n${fullTextSourceCheck(node)}\n${fullTextColumnCheck(node)}`)
  for (const node of checks.fullTextChanged) parts.push(`  rel := NULL;\n${tableLookup(node)}\n${fullTextSourceCheck(node)}`)
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
