import type { EmbeddingColumnNode } from '../model/ir.js'
import { dollarQuote, quoteIdent, quoteLiteral, quoteQualified } from './quote.js'
import { renderRenameIndex } from './render-index.js'
import { renderMoveRuntimeRows, renderRenameColumn, renderTriggerFunctionOf } from './render-rename.js'
import { renderRowKey } from './render-row-key.js'
import { renderSourceText } from './render-source.js'

/**
 * The statements of a staged model change (src/plan/rollout.ts): the check that a column is filled
 * before it becomes the one searches use (or before the last other copy of the vectors goes), and
 * the switch itself — two columns trade places in one short transaction.
 */

const SWITCH = 'a staged model change: the column searches use changes in one transaction, and statements that name it keep working'

function identity(column: EmbeddingColumnNode, alias = ''): string {
  const a = alias ? `${alias}.` : ''
  return `${a}table_schema = ${quoteLiteral(column.schema)} AND ${a}table_name = ${quoteLiteral(column.table)} AND ${a}column_name = ${quoteLiteral(column.column)}`
}

/**
 * Refuses (so the migration rolls back, changing nothing) while `column` has rows with text and no
 * vector that nothing is going to fill — a queued job counts as on its way — or dead-lettered jobs.
 * One scan of the table, before the file takes any lock that stops writers. `why` says what would
 * go wrong, for the message.
 */
/**
 * How far a column is filled, as the switch sees it: rows with text, those with no vector that
 * nothing is going to fill (a queued job counts as on its way), and dead-lettered jobs. One scan.
 */
function fillCounts(column: EmbeddingColumnNode): { counts: readonly [string, string, string]; from: string } {
  const source = renderSourceText(column, 't')
  const queued = column.mode === 'queue'
    ? ` AND NOT EXISTS (SELECT 1 FROM pgml_kit.embedding_jobs AS j WHERE ${identity(column, 'j')} AND j.row_key = ${renderRowKey(column, 't')})`
    : ''
  return {
    counts: [
      `pg_catalog.count(*) FILTER (WHERE ${source} IS NOT NULL)`,
      `pg_catalog.count(*) FILTER (WHERE t.${quoteIdent(column.column)} IS NULL AND ${source} IS NOT NULL${queued})`,
      `(SELECT pg_catalog.count(*) FROM pgml_kit.embedding_dead_letters AS d WHERE ${identity(column, 'd')})`,
    ],
    from: `${quoteQualified(column.schema, column.table)} AS t`,
  }
}

/** → with_text, missing, dead_letters (bigint): see fillCounts. */
export function renderReadFill(column: EmbeddingColumnNode): string {
  const { counts: [withText, missing, dead], from } = fillCounts(column)
  return `SELECT ${withText} AS with_text, ${missing} AS missing, ${dead} AS dead_letters FROM ${from}`
}

/**
 * Refuses (so the migration rolls back, changing nothing) while `column` has rows with text and no
 * vector that nothing is going to fill, or dead-lettered jobs. One scan of the table, before the
 * file takes any lock that stops writers. `why` says what would go wrong, `command` what fills it.
 */
export function renderRefuseUnfilled(column: EmbeddingColumnNode, why: string, command: string): string {
  const { counts, from } = fillCounts(column)
  const name = `${column.schema}.${column.table}.${column.column}`
  const body = `
DECLARE
  with_text bigint;
  missing bigint;
  dead bigint;
BEGIN
  SELECT ${counts.join(',\n         ')}
    INTO with_text, missing, dead
    FROM ${from};
  IF missing > 0 THEN
    RAISE EXCEPTION 'pgml-kit: % is % filled: % of % rows with text have no vector yet; %', ${quoteLiteral(name)},
        pg_catalog.to_char(pg_catalog.floor(1000.0 * (with_text - missing)::numeric / with_text::numeric) / 10.0, 'FM990.0') || '%', missing, with_text, ${quoteLiteral(why)}
      USING HINT = ${quoteLiteral(`run ${command}, then migrate again (pgml-kit status shows how far it is)`)};
  END IF;
  IF dead > 0 THEN
    RAISE EXCEPTION 'pgml-kit: % has % dead-lettered job(s): those rows have no current vector; %', ${quoteLiteral(name)}, dead, ${quoteLiteral(why)}
      USING HINT = 'see their errors in pgml_kit.embedding_dead_letters, fix them, then pgml-kit queue retry, run the worker, and migrate again';
  END IF;
END
`
  return `DO ${dollarQuote(body)};`
}

/** The switch's check that the copy becoming live is filled (a scan of the table: run it before any statement that locks writers out). */
export function renderSwitchFilledCheck(live: SwitchSide, other: SwitchSide, command: string): string {
  return renderRefuseUnfilled(other.from, `it would become the column searches use (${live.from.column}) with rows that have no vector`, command)
}

/** Refuses while the table has a column of that name (the switch renames a column to it). */
function renderRefuseTaken(column: EmbeddingColumnNode): string {
  const body = `
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ${quoteLiteral(column.schema)} AND c.relname = ${quoteLiteral(column.table)} AND a.attname = ${quoteLiteral(column.column)} AND a.attnum > 0 AND NOT a.attisdropped) THEN
    RAISE EXCEPTION 'pgml-kit: %.% already has a column %, which the switch needs for the column it keeps', ${quoteLiteral(column.schema)}, ${quoteLiteral(column.table)}, ${quoteLiteral(column.column)}
      USING HINT = 'rename or drop that column in a migration of its own, then migrate again';
  END IF;
END
`
  return `DO ${dollarQuote(body)};`
}

/** One side of a switch: a column as it is, and as it will be (another name, another role). */
export interface SwitchSide {
  readonly from: EmbeddingColumnNode
  readonly to: EmbeddingColumnNode
  /** Its indexes' renames, `[from, to]` names. */
  readonly indexes: readonly (readonly [string, string])[]
}

/**
 * The switch: the live column takes the name (and role) of the other copy, and the other copy —
 * the one checked filled first — becomes the live column. Columns, triggers, the trigger functions'
 * bodies (which name the column), queued jobs, dead letters, checkpoints, catalog rows and indexes
 * all trade places, the live side first so no name is ever taken twice. The trigger functions keep
 * their names; every other statement that names the live column keeps working and now reads the
 * other model's vectors.
 */
export function renderSwitch(live: SwitchSide, other: SwitchSide, command: string, options: { readonly checkFilled: boolean } = { checkFilled: true }): string[] {
  const schema = live.from.schema
  return [
    ...(options.checkFilled ? [renderSwitchFilledCheck(live, other, command)] : []),
    renderRefuseTaken(live.to),
    ...renderRenameColumn(live.from, live.to, SWITCH),
    ...renderRenameColumn(other.from, other.to, SWITCH),
    ...renderTriggerFunctionOf(live.to),
    ...renderTriggerFunctionOf(other.to),
    ...renderMoveRuntimeRows(live.from, live.to),
    ...renderMoveRuntimeRows(other.from, other.to),
    ...live.indexes.map(([a, b]) => renderRenameIndex(schema, a, b)),
    ...other.indexes.map(([a, b]) => renderRenameIndex(schema, a, b)),
  ]
}
