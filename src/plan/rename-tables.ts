import { PlanError } from '../errors.js'
import { objectKey, type DesiredState, type EmbeddingColumnNode, type FullTextNode, type VectorIndexNode } from '../model/ir.js'
import type { ColumnRename, TableRename } from '../model/resolve.js'
import type { TableMove } from '../sql/render-rename.js'
import { sameIndex } from './compare.js'
import type { Operation } from './operation.js'
import { renameTable } from './operations.js'

/** The recorded state after the config's table renames, and the steps that do them. */
export interface RenamedTables {
  /** The recorded state with every renamed table under its new name: what the rest of the plan diffs. */
  readonly state: DesiredState
  readonly operations: readonly Operation[]
  /**
   * For each renamed table (`objectKey(schema, new name)`), its old name: steps that run before the
   * rename (the concurrent index drops, in files of their own) and their downs, which run after the
   * rename is undone, still find it under that name.
   */
  readonly previousNames: ReadonlyMap<string, RenamedTable>
}

/** A table renamed within its schema: `from` as the recorded state had it, `to` as the config has it. */
export interface RenamedTable {
  readonly schema: string
  readonly from: string
  readonly to: string
}

const onTable = (schema: string, table: string) => (n: { readonly schema: string; readonly table: string }) => n.schema === schema && n.table === table

/** The tables a state knows of: those with an embedding column, a vector index or a full-text column. */
function recordedTables(state: DesiredState): { schema: string; table: string }[] {
  const all = [...state.embeddingColumns, ...state.indexes, ...(state.fullText ?? [])]
  return [...new Map(all.map((n) => [objectKey(n.schema, n.table), { schema: n.schema, table: n.table }])).values()]
    .sort((a, b) => a.schema.localeCompare(b.schema) || a.table.localeCompare(b.table))
}

/**
 * Applies `tables.<to>.renamedFrom` to the recorded state. A rename whose old name is gone and new
 * name is recorded was applied already (nothing to do). The table's embedding columns move with
 * it, each trigger function taking the name the config's column would have (same mode); its
 * vector indexes that the config still declares (same column — after `renames` — method,
 * distance and parameters) move with it, renamed when their name was derived from the table's;
 * so does its full-text column's GIN index when the full-text column is unchanged. Any other index
 * stays recorded under the old table: the usual diff drops it before the rename and builds what
 * the config wants after it.
 */
export function applyTableRenames(recorded: DesiredState, next: DesiredState, renames: readonly TableRename[], columnRenames: readonly ColumnRename[] = []): RenamedTables {
  let state = recorded
  const operations: Operation[] = []
  const previousNames = new Map<string, RenamedTable>()
  for (const rename of renames) {
    const { schema, from, to, path } = rename
    const has = (table: string) => recordedTables(state).some((t) => t.schema === schema && t.table === table)
    const old = has(from)
    const already = has(to)
    if (!old && already) continue
    if (!old) {
      const known = recordedTables(state)
      const elsewhere = known.filter((t) => t.table === from && t.schema !== schema)
      throw new PlanError('RENAME_SOURCE_MISSING', `tables.${to} is declared as renamed from ${schema}.${from}, but the last generated state has no table ${schema}.${from}; it has ${known.length === 0 ? 'no tables' : known.map((t) => `${t.schema}.${t.table}`).join(', ')}`, {
        where: path,
        hint: elsewhere.length > 0
          ? `renamedFrom renames a table within its schema (${schema}); moving a table to another schema (${elsewhere.map((t) => t.schema).join(', ')}) is not supported: keep its schema, or remove renamedFrom to add the columns anew`
          : 'renamedFrom names the table as the migrations\' snapshot (migrations/.pgml-kit-snapshot.json) has it; check the name, or remove renamedFrom to add the table\'s columns anew',
      })
    }
    if (already) {
      throw new PlanError('RENAME_TARGET_EXISTS', `the last generated state has both ${schema}.${from} and ${schema}.${to}; ${from} cannot be renamed to ${to}`, {
        where: path, hint: 'remove renamedFrom, or remove the other table from the config (and generate) first',
      })
    }
    const view = (state.featureViews ?? []).find((v) => v.source.kind === 'table' && v.source.schema === schema && v.source.table === from)
    if (view) {
      throw new PlanError('RENAME_FEATURE_SOURCE', `${schema}.${from} is the source of feature view ${view.schema}.${view.name}, whose materialise function and change-capture triggers name it; renaming a feature view's source table is not supported yet`, {
        where: `features.views.${view.name}.source`,
        hint: `remove the feature view (generate --allow-destructive), rename the table in a change of its own, then declare the view again on ${to}`,
      })
    }
    const inChange = state.embeddingColumns.find((c) => c.schema === schema && c.table === from && c.rollout)
    if (inChange) {
      throw new PlanError('ROLLOUT_RENAME', `${schema}.${from} cannot be renamed while the model change of its column ${inChange.rollout!.of} is in progress`, {
        where: path, hint: 'finish the model change first (switch, then drop the previous column), then rename the table in a change of its own',
      })
    }

    const columnAfter = (column: string) => columnRenames.find((r) => r.schema === schema && r.table === to && r.from === column)?.to ?? column
    const columns: (readonly [EmbeddingColumnNode, EmbeddingColumnNode])[] = state.embeddingColumns.filter(onTable(schema, from)).map((c) => {
      const wanted = next.embeddingColumns.find((n) => n.schema === schema && n.table === to && n.column === c.column)
      return [c, { ...c, table: to, ...(wanted && wanted.mode === c.mode ? { triggerFunction: wanted.triggerFunction } : {}) }] as const
    })
    const indexRenames: (readonly [string, string])[] = []
    const indexes = state.indexes.map((index): VectorIndexNode => {
      if (!onTable(schema, from)(index)) return index
      const candidate = { ...index, table: to, column: columnAfter(index.column) }
      const match = next.indexes.find((n) => sameIndex(candidate, n) && (n.name === index.name || !state.indexes.some((o) => o.schema === n.schema && o.name === n.name)))
      if (!match) return index
      if (match.name !== index.name) indexRenames.push([index.name, match.name])
      // Its column keeps the recorded name until the column rename that follows renames it.
      return { ...index, table: to, name: match.name }
    })
    const fullText = (state.fullText ?? []).map((node): FullTextNode => {
      if (!onTable(schema, from)(node)) return node
      const moved = { ...node, table: to }
      const wanted = next.fullText.find(onTable(schema, to))
      if (wanted && JSON.stringify({ ...moved, indexName: wanted.indexName }) === JSON.stringify(wanted)) {
        if (wanted.indexName !== node.indexName) indexRenames.push([node.indexName, wanted.indexName])
        return wanted
      }
      return moved
    })
    const move: TableMove = { schema, from, to, columns, indexes: indexRenames, runtimeVersion: state.runtimeVersion, path }
    operations.push(renameTable(move))
    previousNames.set(objectKey(schema, to), { schema, from, to })
    state = {
      ...state,
      embeddingColumns: state.embeddingColumns.map((c) => columns.find(([was]) => was === c)?.[1] ?? c),
      indexes, fullText,
    }
  }
  return { state, operations, previousNames }
}
