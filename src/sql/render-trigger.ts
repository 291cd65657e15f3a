import { deriveIdentifier, dollarQuote, quoteIdent, quoteQualified } from './quote.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import { renderEmbedCall } from './render-source.js'

export const RUNTIME_SCHEMA = 'pgml_kit'

export function embedFunctionName(column: EmbeddingColumnNode): string {
  return deriveIdentifier(['embed', column.schema, column.table, column.column], '__')
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
  const unchanged = column.sourceColumns
    .map((name) => `NEW.${quoteIdent(name)} IS NOT DISTINCT FROM OLD.${quoteIdent(name)}`)
    .join('\n     AND ')
  const target = quoteIdent(column.column)
  const body = `
BEGIN
  IF TG_OP = 'UPDATE'
     AND ${unchanged}
     AND NEW.${target} IS NOT NULL THEN
    RETURN NEW;
  END IF;
  NEW.${target} := ${renderEmbedCall(column, 'NEW')};
  RETURN NEW;
END
`
  return renderTriggerFunction(embedFunctionName(column), body)
}

/** A PL/pgSQL trigger function in the runtime schema, with its search_path pinned. */
export function renderTriggerFunction(name: string, body: string): string {
  return `CREATE OR REPLACE FUNCTION ${quoteQualified(RUNTIME_SCHEMA, name)}()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS ${dollarQuote(body)};`
}

export function renderDropEmbedFunction(column: EmbeddingColumnNode): string {
  return `DROP FUNCTION ${quoteQualified(RUNTIME_SCHEMA, embedFunctionName(column))}();`
}

export function renderCreateEmbedTrigger(column: EmbeddingColumnNode): string {
  const sources = column.sourceColumns.map(quoteIdent).join(', ')
  return `CREATE TRIGGER ${quoteIdent(embedTriggerName(column))}
BEFORE INSERT OR UPDATE OF ${sources} ON ${quoteQualified(column.schema, column.table)}
FOR EACH ROW EXECUTE FUNCTION ${quoteQualified(RUNTIME_SCHEMA, embedFunctionName(column))}();`
}

export function renderDropEmbedTrigger(column: EmbeddingColumnNode): string {
  return `DROP TRIGGER ${quoteIdent(embedTriggerName(column))} ON ${quoteQualified(column.schema, column.table)};`
}
