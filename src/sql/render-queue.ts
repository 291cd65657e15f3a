import type { EmbeddingColumnNode } from '../model/ir.js'
import { dollarQuote, deriveIdentifier, quoteIdent, quoteLiteral, quoteQualified, renderField } from './quote.js'
import { renderTriggerFunction, triggerFunctionOf } from './render-trigger.js'
import { renderRowKey } from './render-row-key.js'

/**
 * The `queue` mode's database side: triggers that keep `pgml_kit.embedding_jobs` in step with the
 * table. A worker outside the database does the embedding (src/worker).
 */

export function enqueueTriggerName(column: EmbeddingColumnNode, event: 'write' | 'delete'): string {
  return deriveIdentifier(['pgml_kit_enqueue', column.column, event])
}

/**
 * On INSERT, and on UPDATE when a source column really changed, upserts the row's job (a newer
 * change bumps its generation and makes it due now); on DELETE, removes it. Runs in the writer's
 * transaction, so a job exists exactly when the write commits.
 */
export function renderCreateEnqueueFunction(column: EmbeddingColumnNode): string {
  return renderTriggerFunction(column, enqueueFunctionBody(column))
}

/** The queue-mode trigger function's body, before renderTriggerFunction guards it. */
export function enqueueFunctionBody(column: EmbeddingColumnNode): string {
  const changed = column.sourceColumns.map((name) => `${renderField('NEW', name)} IS DISTINCT FROM ${renderField('OLD', name)}`).join('\n        OR ')
  const identity = `${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}, ${quoteLiteral(column.column)}`
  const body = `
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM pgml_kit.embedding_jobs
    WHERE table_schema = ${quoteLiteral(column.schema)} AND table_name = ${quoteLiteral(column.table)} AND column_name = ${quoteLiteral(column.column)}
      AND row_key = ${renderRowKey(column, 'OLD')};
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND NOT (${changed}) THEN
    RETURN NEW;
  END IF;
  INSERT INTO pgml_kit.embedding_jobs AS job (table_schema, table_name, column_name, row_key)
  VALUES (${identity}, ${renderRowKey(column, 'NEW')})
  ON CONFLICT (table_schema, table_name, column_name, row_key) DO UPDATE
    SET generation = job.generation + 1, enqueued_at = pg_catalog.now(), attempts = 0, next_attempt_at = pg_catalog.now(), last_error = NULL;
  RETURN NEW;
END
`
  return body
}

export function renderDropEnqueueFunction(column: EmbeddingColumnNode): string {
  return `DROP FUNCTION ${triggerFunctionOf(column)}();`
}

export function renderCreateEnqueueTriggers(column: EmbeddingColumnNode): string[] {
  const table = quoteQualified(column.schema, column.table)
  const fn = triggerFunctionOf(column)
  return [
    `CREATE TRIGGER ${quoteIdent(enqueueTriggerName(column, 'write'))}
AFTER INSERT OR UPDATE OF ${column.sourceColumns.map(quoteIdent).join(', ')} ON ${table}
FOR EACH ROW EXECUTE FUNCTION ${fn}();`,
    `CREATE TRIGGER ${quoteIdent(enqueueTriggerName(column, 'delete'))}
AFTER DELETE ON ${table}
FOR EACH ROW EXECUTE FUNCTION ${fn}();`,
  ]
}

export function renderDropEnqueueTriggers(column: EmbeddingColumnNode): string[] {
  const table = quoteQualified(column.schema, column.table)
  return [
    `DROP TRIGGER ${quoteIdent(enqueueTriggerName(column, 'delete'))} ON ${table};`,
    `DROP TRIGGER ${quoteIdent(enqueueTriggerName(column, 'write'))} ON ${table};`,
  ]
}

export function renderDeleteJobs(column: EmbeddingColumnNode): string {
  return `DELETE FROM pgml_kit.embedding_jobs WHERE table_schema = ${quoteLiteral(column.schema)} AND table_name = ${quoteLiteral(column.table)} AND column_name = ${quoteLiteral(column.column)};`
}

/** Refuses (and so rolls back the migration) while jobs of the column are still queued: dropping it would lose them. */
export function renderRefusePendingJobs(column: EmbeddingColumnNode): string {
  const where = `table_schema = ${quoteLiteral(column.schema)} AND table_name = ${quoteLiteral(column.table)} AND column_name = ${quoteLiteral(column.column)}`
  const body = `
DECLARE
  pending bigint;
BEGIN
  SELECT pg_catalog.count(*) INTO pending FROM pgml_kit.embedding_jobs WHERE ${where};
  IF pending > 0 THEN
    RAISE EXCEPTION 'pgml-kit: % job(s) are still queued for %.%.%; dropping its queue now would lose them', pending, ${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}, ${quoteLiteral(column.column)}
      USING HINT = 'run pgml-kit worker until the queue is empty (pgml-kit status shows its depth), then migrate again';
  END IF;
END
`
  return `DO ${dollarQuote(body)};`
}
