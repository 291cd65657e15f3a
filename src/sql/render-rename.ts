import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteLiteral, quoteQualified } from './quote.js'
import { squawkIgnore } from './squawk.js'
import { embedTriggerName, renderCreateEmbedFunction } from './render-trigger.js'
import { enqueueTriggerName, renderCreateEnqueueFunction } from './render-queue.js'

/** Runtime tables that name embedding columns: the catalog and the queue's bookkeeping. */
const TABLES_NAMING_COLUMNS = ['embedding_columns', 'embedding_jobs', 'embedding_dead_letters', 'backfill_checkpoints'] as const

/**
 * Renames an embedding column from `from.column` to `to.column` (same table): the column, the
 * triggers whose names carry it, the trigger function's body (which writes or records the column
 * by name), and every runtime row that names it. The trigger function keeps its name and the
 * triggers their column lists (PostgreSQL tracks those by attribute number).
 */
export function renderRenameEmbeddingColumn(from: EmbeddingColumnNode, to: EmbeddingColumnNode): string[] {
  const table = quoteQualified(from.schema, from.table)
  const statements = [`${squawkIgnore(['renaming-column'], 'renamedFrom in the config: application code that names the column ships with this migration')}ALTER TABLE ${table} RENAME COLUMN ${quoteIdent(from.column)} TO ${quoteIdent(to.column)};`]
  const triggers: [string, string][] = from.mode === 'trigger'
    ? [[embedTriggerName(from), embedTriggerName(to)]]
    : from.mode === 'queue'
      ? [[enqueueTriggerName(from, 'write'), enqueueTriggerName(to, 'write')], [enqueueTriggerName(from, 'delete'), enqueueTriggerName(to, 'delete')]]
      : []
  for (const [was, now] of triggers) if (was !== now) statements.push(`ALTER TRIGGER ${quoteIdent(was)} ON ${table} RENAME TO ${quoteIdent(now)};`)
  if (to.mode === 'trigger') statements.push(renderCreateEmbedFunction(to))
  if (to.mode === 'queue') statements.push(renderCreateEnqueueFunction(to))
  for (const runtimeTable of TABLES_NAMING_COLUMNS) {
    statements.push(`UPDATE pgml_kit.${runtimeTable} SET column_name = ${quoteLiteral(to.column)}
WHERE table_schema = ${quoteLiteral(from.schema)} AND table_name = ${quoteLiteral(from.table)} AND column_name = ${quoteLiteral(from.column)};`)
  }
  return statements
}
