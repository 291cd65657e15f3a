import type { EmbeddingColumnNode } from '../model/ir.js'
import { dollarQuote, quoteIdent, quoteLiteral, quoteLiteralOrNull, quoteQualified } from './quote.js'
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

/**
 * A table renamed within its schema (`tables.<to>.renamedFrom`), and everything pgml-kit keeps
 * about it: its embedding columns (each before and after: the same columns, their trigger
 * functions possibly renamed), the indexes whose names were derived from the table's, and which
 * runtime tables the recorded runtime version has.
 */
export interface TableMove {
  readonly schema: string
  readonly from: string
  readonly to: string
  readonly columns: readonly (readonly [EmbeddingColumnNode, EmbeddingColumnNode])[]
  /** Indexes (vector and GIN) that take a new name: `[from, to]`. */
  readonly indexes: readonly (readonly [string, string])[]
  readonly runtimeVersion: number
  /** The config path that asks for it. */
  readonly path: string
}

/** The same move, backwards: what the down migration does. */
export function reverseTableMove(move: TableMove): TableMove {
  return {
    ...move, from: move.to, to: move.from,
    columns: move.columns.map(([a, b]) => [b, a] as const),
    indexes: move.indexes.map(([a, b]) => [b, a] as const),
  }
}

function relationExists(schema: string, name: string, kinds: string | null): string {
  return `EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${quoteLiteral(schema)} AND c.relname = ${quoteLiteral(name)}${kinds === null ? '' : ` AND c.relkind IN (${kinds})`})`
}

/** Refuses, naming the config path, when the table to rename is missing or its new name is taken. */
function renderRefuseTableMove(move: TableMove): string {
  const body = `
BEGIN
  IF NOT ${relationExists(move.schema, move.from, `'r', 'p'`)} THEN
    RAISE EXCEPTION 'pgml-kit: table %.% does not exist, so it cannot be renamed to % (config: %)', ${quoteLiteral(move.schema)}, ${quoteLiteral(move.from)}, ${quoteLiteral(move.to)}, ${quoteLiteral(move.path)}
      USING HINT = 'renamedFrom names the table as the last migration left it; check the name, or remove renamedFrom';
  END IF;
  IF ${relationExists(move.schema, move.to, null)} THEN
    RAISE EXCEPTION 'pgml-kit: %.% already exists, so % cannot be renamed to it (config: %)', ${quoteLiteral(move.schema)}, ${quoteLiteral(move.to)}, ${quoteLiteral(move.from)}, ${quoteLiteral(move.path)}
      USING HINT = 'drop or rename the other relation in a migration of your own first';
  END IF;
END
`
  return `DO ${dollarQuote(body)};`
}

/** Runtime tables that name tables, by the runtime version that created them. */
const TABLES_NAMING_TABLES = [['embedding_columns', 1], ['embedding_jobs', 2], ['embedding_dead_letters', 2], ['backfill_checkpoints', 2]] as const

/**
 * Renames the table (first: its ACCESS EXCLUSIVE lock waits out writers and workers before any
 * job row is touched, so the migration never holds a job row a worker's write is waiting for),
 * then the indexes named after it, the trigger functions (renamed, and their bodies again: their
 * guard and the queue's jobs name the table), and every runtime row that names it. Triggers keep
 * their names and follow the table; privileges stay on it.
 */
export function renderRenameTable(move: TableMove): string[] {
  const statements = [
    renderRefuseTableMove(move),
    `${squawkIgnore(['renaming-table'], 'renamedFrom in the config: application code that names the table ships with this migration')}ALTER TABLE ${quoteQualified(move.schema, move.from)} RENAME TO ${quoteIdent(move.to)};`,
    ...move.indexes.map(([from, to]) => `ALTER INDEX ${quoteQualified(move.schema, from)} RENAME TO ${quoteIdent(to)};`),
  ]
  for (const [from, to] of move.columns) {
    if (triggerNames(from).length > 0 && from.triggerFunction && to.triggerFunction && from.triggerFunction !== to.triggerFunction) {
      statements.push(`ALTER FUNCTION ${triggerFunctionOf(from)}() RENAME TO ${quoteIdent(to.triggerFunction)};`)
    }
    statements.push(...renderTriggerFunctionOf(to))
  }
  const where = `table_schema = ${quoteLiteral(move.schema)} AND table_name = ${quoteLiteral(move.from)}`
  for (const [runtimeTable, since] of TABLES_NAMING_TABLES) {
    if (move.runtimeVersion >= since) statements.push(`UPDATE pgml_kit.${runtimeTable} SET table_name = ${quoteLiteral(move.to)} WHERE ${where};`)
  }
  // The last `index check` of each index is kept under the index's name (runtime version 4).
  if (move.runtimeVersion >= 4) {
    for (const [from, to] of move.indexes) {
      statements.push(`UPDATE pgml_kit.embedding_columns
SET index_checks = (index_checks OPERATOR(pg_catalog.-) ${quoteLiteral(from)}::text) OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(${quoteLiteral(to)}::text, index_checks OPERATOR(pg_catalog.->) ${quoteLiteral(from)}::text)
WHERE table_schema = ${quoteLiteral(move.schema)} AND table_name = ${quoteLiteral(move.to)} AND index_checks OPERATOR(pg_catalog.?) ${quoteLiteral(from)}::text;`)
    }
  }
  return statements
}
