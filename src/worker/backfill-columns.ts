import { PgmlKitError } from '../errors.js'
import type { Connector } from '../db/connect.js'
import { readCatalogColumns } from '../db/live-catalog.js'
import { columnsOfConfig } from '../model/catalog-column.js'
import { findColumn } from '../model/find-column.js'
import { columnLabel, type EmbeddingColumnNode } from '../model/ir.js'
import { cliColumn } from '../plan/operations.js'
import { rolloutColumnName } from '../plan/rollout.js'

/**
 * The columns `pgml-kit backfill <arg>` fills, in order. The database's catalog decides, not the
 * config: the hints of a staged model change (the switch's refusal at migrate time, `status`) name
 * columns as the database has them, and are followed with whatever config is checked out — one of
 * an earlier or a later stage, or one that does not declare the column at all.
 *
 * - `<table>.<column>` of a live column: that column, then the extra column of its staged model
 *   change (the shadow being filled, or the previous model's column), each with its own model;
 * - `<table>.<column>__next` / `__previous`: only that column, in every stage where it exists;
 * - a column the config declares and the catalog does not have yet (not migrated): as the config says.
 *
 * An extra column the database does not have now (`__next` after the switch, `__previous` before
 * it) is refused, saying the stage and what to run. When the catalog cannot be read (a role without
 * access to it), the config alone decides, as before.
 */
export async function columnsToBackfill(url: string | Connector, declared: readonly EmbeddingColumnNode[], arg: string): Promise<EmbeddingColumnNode[]> {
  const live = await readCatalogColumns(url, declared)
  // `t.c__next` (or `__previous`) of a declared column: the config knows it by the name of its live column.
  const copies = declared.flatMap((c) => (['next', 'previous'] as const).map((role) => ({ ...c, column: rolloutColumnName(c.column, role), rollout: { role, of: c.column } })))
  const fromConfig = (): EmbeddingColumnNode => copies.find((c) => arg === `${c.table}.${c.column}` || arg === columnLabel(c)) ?? findColumn(declared, arg)
  if (live === null) return [fromConfig()]

  const nodes = live.map((l) => l.node)
  const named = nodes.filter((n) => columnLabel(n) === arg || `${n.table}.${n.column}` === arg)
  if (named.length > 0) {
    const column = findColumn(named, arg)
    return column.rollout ? [column] : columnsOfConfig([column], live).map((l) => l.node)
  }
  let column: EmbeddingColumnNode
  try {
    column = fromConfig()
  } catch (error) {
    if (!(error instanceof PgmlKitError) || error.code !== 'COLUMN_UNKNOWN') throw error
    const known = [...new Set([...nodes, ...declared].map((c) => cliColumn(c)))].join(', ') || '(none)'
    throw new PgmlKitError('COLUMN_UNKNOWN', `"${arg}" is not an embedding column in the database or in the config`, { hint: `embedding columns: ${known}` })
  }
  if (!column.rollout) return [column]
  // An extra column of a staged model change that the database does not have in this stage.
  const of = column.rollout.of
  const extras = nodes.filter((n) => n.rollout && n.schema === column.schema && n.table === column.table && n.rollout.of === of)
  const main = cliColumn({ ...column, column: of })
  const stage = extras.some((e) => e.rollout?.role === 'previous')
    ? `the model change of ${main} has been switched: its new model's vectors are in ${main} itself now, the old model's in ${extras.map((e) => e.column).join(', ')}`
    : extras.some((e) => e.rollout?.role === 'next')
      ? `the model change of ${main} has not been switched yet: the new model's vectors go into ${extras.map((e) => e.column).join(', ')}`
      : `${main} has no staged model change in this database`
  throw new PgmlKitError('COLUMN_NOT_IN_DATABASE', `${cliColumn(column)} does not exist in the database: ${stage}`, {
    hint: `run pgml-kit backfill ${main}: it fills ${main}${extras.length > 0 ? ` and ${extras.map((e) => e.column).join(', ')}` : ''}, each with the model the catalog says it holds`,
  })
}
