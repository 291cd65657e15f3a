import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteLiteral, quoteLiteralOrNull, quoteQualified } from './quote.js'
import { squawkIgnore } from './squawk.js'
import { embedTriggerName, renderCreateEmbedFunction, triggerFunctionOf } from './render-trigger.js'
import { enqueueTriggerName, renderCreateEnqueueFunction } from './render-queue.js'

/** Runtime tables that name embedding columns: the catalog and the queue's bookkeeping. */
const TABLES_NAMING_COLUMNS = ['embedding_columns', 'embedding_jobs', 'embedding_dead_letters', 'backfill_checkpoints'] as const

function triggerNames(column: EmbeddingColumnNode): string[] {
  if (column.mode === 'trigger') return [embedTriggerName(column)]
  if (column.mode === 'queue') return [enqueueTriggerName(column, 'write'), enqueueTriggerName(column, 'delete')]
  return []
}

/**
 * `ALTER TABLE … RENAME COLUMN` and the renames of the triggers whose names carry the column
 * (same table, same mode). Triggers keep their column lists: PostgreSQL tracks those by attribute number.
 */
export function renderRenameColumn(from: EmbeddingColumnNode, to: EmbeddingColumnNode, reason: string): string[] {
  const table = quoteQualified(from.schema, from.table)
  const statements = [`${squawkIgnore(['renaming-column'], reason)}ALTER TABLE ${table} RENAME COLUMN ${quoteIdent(from.column)} TO ${quoteIdent(to.column)};`]
  const was = triggerNames(from)
  const now = triggerNames(to)
  was.forEach((name, i) => {
    const next = now[i]
    if (next !== undefined && next !== name) statements.push(`ALTER TRIGGER ${quoteIdent(name)} ON ${table} RENAME TO ${quoteIdent(next)};`)
  })
  return statements
}

/** The trigger function's body again: it writes (or records) the column by name. It keeps its name. */
export function renderTriggerFunctionOf(column: EmbeddingColumnNode): string[] {
  if (column.mode === 'trigger') return [renderCreateEmbedFunction(column)]
  if (column.mode === 'queue') return [renderCreateEnqueueFunction(column)]
  return []
}

/** Every runtime row that names the column takes the new name (and, in a staged change, the catalog row its new role). */
export function renderMoveRuntimeRows(from: EmbeddingColumnNode, to: EmbeddingColumnNode): string[] {
  const where = `table_schema = ${quoteLiteral(from.schema)} AND table_name = ${quoteLiteral(from.table)} AND column_name = ${quoteLiteral(from.column)}`
  return TABLES_NAMING_COLUMNS.map((runtimeTable) => {
    const role = runtimeTable === 'embedding_columns' && (from.rollout || to.rollout)
      ? `, rollout_role = ${quoteLiteralOrNull(to.rollout?.role ?? null)}, rollout_of = ${quoteLiteralOrNull(to.rollout?.of ?? null)}, updated_at = pg_catalog.now()`
      : ''
    return `UPDATE pgml_kit.${runtimeTable} SET column_name = ${quoteLiteral(to.column)}${role}
WHERE ${where};`
  })
}

/**
 * Renames an embedding column from `from.column` to `to.column` (same table, `renamedFrom`): the
 * column, its triggers, the trigger function's body, and every runtime row that names it.
 */
export function renderRenameEmbeddingColumn(from: EmbeddingColumnNode, to: EmbeddingColumnNode): string[] {
  // The trigger function's name carries the column's too: renamed with it (its triggers follow it by oid).
  const renameFunction = triggerNames(from).length > 0 && from.triggerFunction && to.triggerFunction && from.triggerFunction !== to.triggerFunction
    ? [`ALTER FUNCTION ${triggerFunctionOf(from)}() RENAME TO ${quoteIdent(to.triggerFunction)};`]
    : []
  return [
    ...renderRenameColumn(from, to, 'renamedFrom in the config: application code that names the column ships with this migration'),
    ...renameFunction,
    ...renderTriggerFunctionOf(to),
    ...renderMoveRuntimeRows(from, to),
  ]
}
