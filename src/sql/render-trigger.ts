import { deriveIdentifier, dollarQuote, quoteIdent, quoteLiteral, quoteQualified, renderAssignField, renderField } from './quote.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import { renderRowEmbedCall } from './render-source.js'

export const RUNTIME_SCHEMA = 'pgml_kit'

/** The column's trigger function in `pgml_kit` (the `trigger` mode's embedder, the `queue` mode's enqueuer), qualified. */
export function triggerFunctionOf(column: EmbeddingColumnNode): string {
  if (!column.triggerFunction) throw new TypeError(`${column.table}.${column.column} has no trigger function in mode "${column.mode}"`)
  return quoteQualified(RUNTIME_SCHEMA, column.triggerFunction)
}

export function embedTriggerName(column: EmbeddingColumnNode): string {
  return deriveIdentifier(['pgml_kit_embed', column.column])
}

/**
 * The `trigger` mode function: computes the vector in the writing transaction. On UPDATE it keeps
 * the stored vector when no source column changed (and one is stored), so touching other columns
 * never pays for inference, while `UPDATE t SET body = body` still fills a missing vector.
 * The search_path is pinned; everything it calls is schema-qualified or in pg_catalog, and the
 * real[] → vector assignment cast is found through pg_cast, not the search_path.
 */
export function renderCreateEmbedFunction(column: EmbeddingColumnNode): string {
  return renderTriggerFunction(column, embedFunctionBody(column))
}

function embedFunctionBody(column: EmbeddingColumnNode): string {
  const unchanged = column.sourceColumns
    .map((name) => `${renderField('NEW', name)} IS NOT DISTINCT FROM ${renderField('OLD', name)}`)
    .join('\n     AND ')
  const body = `
BEGIN
  IF TG_OP = 'UPDATE'
     AND ${unchanged}
     AND ${renderField('NEW', column.column)} IS NOT NULL THEN
    RETURN NEW;
  END IF;
  ${renderAssignField('NEW', column.column, renderRowEmbedCall(column, 'NEW'))}
  RETURN NEW;
END
`
  return body
}

/**
 * The column's PL/pgSQL trigger function in the runtime schema. SECURITY DEFINER, owned by the
 * role that runs the migrations: an application role that may write the table needs nothing else
 * (not pgml_kit's queue, not pgml). It does only what the mode needs with the row being written,
 * with its search_path pinned and every name qualified; trigger functions cannot be called directly.
 */
export function renderTriggerFunction(column: EmbeddingColumnNode, body: string): string {
  return `CREATE OR REPLACE FUNCTION ${triggerFunctionOf(column)}()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS ${dollarQuote(guardedBody(column, body))};
REVOKE EXECUTE ON FUNCTION ${triggerFunctionOf(column)}() FROM PUBLIC;`
}

/**
 * The source (`pg_proc.prosrc`) of the column's trigger function as pgml-kit renders it for its
 * mode, or null for a mode without one: what `status --drift` compares the live function with.
 */
export function triggerFunctionSource(column: EmbeddingColumnNode, enqueueBody: (column: EmbeddingColumnNode) => string): string | null {
  if (column.mode === 'trigger') return guardedBody(column, embedFunctionBody(column))
  if (column.mode === 'queue') return guardedBody(column, enqueueBody(column))
  return null
}

/** The source (`pg_proc.prosrc`) renderTriggerFunction gives a body: with the table check and, when asked, the type guard. */
export function guardedBody(column: EmbeddingColumnNode, body: string): string {
  // Only for the table it was made for: attached to another table (a role's own TEMP table, say),
  // it would write the queue or embed as its owner on that role's behalf. EXECUTE is revoked from
  // PUBLIC too, so no other role can attach it (a trigger fires without it).
  if (!body.startsWith('\nBEGIN\n')) throw new TypeError('a trigger function body starts with BEGIN')
  const guarded = `${column.typeGuard ? '\nDECLARE\n  pgml_kit_foreign text;' : ''}
BEGIN
  IF TG_TABLE_SCHEMA <> ${quoteLiteral(column.schema)} OR TG_TABLE_NAME <> ${quoteLiteral(column.table)} THEN
    RAISE EXCEPTION 'pgml-kit: % is the trigger function of %, not of %.%', TG_NAME, ${quoteLiteral(`${column.schema}.${column.table}`)}, TG_TABLE_SCHEMA, TG_TABLE_NAME;
  END IF;${column.typeGuard ? typeGuard(column) : ''}${body.slice('\nBEGIN'.length)}`
  return guarded
}

/**
 * This function runs as the role that migrates, on a table another role may own and whose column
 * types that role may change later (to its own enum with a cast to json, a domain whose check
 * calls its function, ...). Before any value is touched, each column the function reads or writes
 * must be of a built-in type, an extension's type (pgvector's vector, citext: casts need the type's
 * owner) or one a superuser or this function's owner owns; `pg_typeof` itself runs nothing of the
 * type's.
 */
function typeGuard(column: EmbeddingColumnNode): string {
  const columns = (row: 'NEW' | 'OLD') => [...new Set([
    ...(column.mode === 'queue' ? column.keyColumns : []),
    ...column.sourceColumns,
    ...(column.mode === 'trigger' && row === 'NEW' ? [column.column] : []),
  ])]
  const foreign = (row: 'NEW' | 'OLD') => columns(row).map((name) => `(${quoteLiteral(name)}, pg_catalog.pg_typeof(${renderField(row, name)}))`).join(', ')
  // Built-in types (OIDs below FirstNormalObjectId, 16384) pass without a query.
  const builtIn = (row: 'NEW' | 'OLD') => columns(row).map((name) => `pg_catalog.pg_typeof(${renderField(row, name)})::pg_catalog.oid < 16384`).join(' AND ')
  const check = (row: 'NEW' | 'OLD', indent: string) => `
IF NOT (${builtIn(row)}) THEN
  SELECT pg_catalog.format('%I (%s)', c.name, pg_catalog.format_type(c.type::pg_catalog.oid, NULL)) INTO pgml_kit_foreign
  FROM (VALUES ${foreign(row)}) AS c(name, type)
  JOIN pg_catalog.pg_type AS t ON t.oid = c.type::pg_catalog.oid
  WHERE t.oid >= 16384 AND NOT (t.typowner = (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = CURRENT_USER)
                                OR (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.oid = t.typowner)
                                OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.objid = t.oid AND d.deptype = 'e'))
  LIMIT 1;
END IF;`.replace(/\n/g, `\n${indent}`)
  // The queue's function also runs on DELETE (reading OLD); the trigger mode's only BEFORE INSERT OR UPDATE.
  const checks = column.mode === 'queue'
    ? `
  IF TG_OP = 'DELETE' THEN${check('OLD', '    ')}
  ELSE${check('NEW', '    ')}
  END IF;`
    : check('NEW', '  ')
  return `
  -- Values of types a role other than a superuser or this function's owner owns are refused untouched (see typeGuard in src/sql/render-trigger.ts).${checks}
  IF pgml_kit_foreign IS NOT NULL THEN
    RAISE EXCEPTION 'pgml-kit: %.% column % is of a type owned by a role that is neither a superuser nor the owner of %: pgml-kit''s trigger function (SECURITY DEFINER) does not handle it', TG_TABLE_SCHEMA, TG_TABLE_NAME, pgml_kit_foreign, TG_NAME
      USING HINT = 'use a built-in type for the key and source columns (text, varchar, bigint, uuid, ...), or have the type owned by the role that runs the migrations';
  END IF;`
}

export function renderDropEmbedFunction(column: EmbeddingColumnNode): string {
  return `DROP FUNCTION ${triggerFunctionOf(column)}();`
}

export function renderCreateEmbedTrigger(column: EmbeddingColumnNode): string {
  const sources = column.sourceColumns.map(quoteIdent).join(', ')
  return `CREATE TRIGGER ${quoteIdent(embedTriggerName(column))}
BEFORE INSERT OR UPDATE OF ${sources} ON ${quoteQualified(column.schema, column.table)}
FOR EACH ROW EXECUTE FUNCTION ${triggerFunctionOf(column)}();`
}

export function renderDropEmbedTrigger(column: EmbeddingColumnNode): string {
  return `DROP TRIGGER ${quoteIdent(embedTriggerName(column))} ON ${quoteQualified(column.schema, column.table)};`
}
