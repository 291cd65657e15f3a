import type pg from 'pg'
import { PgmlKitError } from '../errors.js'
import type { DesiredState, VectorIndexNode, VectorType } from '../model/ir.js'
import { EMPTY_STATE, columnKey, columnLabel } from '../model/ir.js'
import { readSizing, sizeAutoParameters } from './sizing.js'
import { operatorClass, rebuildIndexName, renderBuildSettings, renderCreateIndexConcurrently, type BuildColumn, renderDropIndexConcurrently, renderRenameIndex, renderVerifyIndex } from '../sql/render-index.js'
import { renderInteger } from '../sql/quote.js'
import { VECTOR_SCHEMA } from '../sql/render-vector-schema.js'

/**
 * What a vector index the config declares looks like in the database:
 * - `ok`: there, valid, with the config's method, operator class and parameters;
 * - `missing`: no index of that name (a migration not applied yet, or dropped by hand);
 * - `invalid`: a build failed or was cancelled and left it INVALID (queries ignore it);
 * - `differs`: an index of that name with another method, operator class or parameters.
 */
export interface IndexHealth {
  readonly index: string
  /** `schema.table.column`. */
  readonly column: string
  readonly state: 'ok' | 'missing' | 'invalid' | 'differs'
  /** What differs, or what a missing/invalid index means for searches. */
  readonly detail: string
  /** Size on disk, bytes (null when missing). */
  readonly sizeBytes: number | null
}

/** One row per declared index (by position): what the catalog says about the index of that name. */
const READ_INDEXES = `SELECT d.n, i.indisvalid AS valid, am.amname::text AS method, oc.opcname::text AS opclass,
       coalesce(c.reloptions, '{}') AS options, pg_catalog.pg_relation_size(c.oid) AS size
FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) WITH ORDINALITY AS d(schema, name, n)
LEFT JOIN pg_catalog.pg_namespace ns ON ns.nspname = d.schema
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid AND c.relname = d.name AND c.relkind = 'i'
LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
LEFT JOIN pg_catalog.pg_opclass oc ON oc.oid = i.indclass[0]
ORDER BY d.n`

function columnOf(state: DesiredState, index: VectorIndexNode): BuildColumn {
  const column = state.embeddingColumns.find((c) => columnKey(c) === columnKey(index))
  if (!column) throw new Error(`no embedding column for index ${index.name}`)
  return { vectorType: column.vectorType, dimensions: column.model.dimensions }
}

function vectorTypeOf(state: DesiredState, index: VectorIndexNode): VectorType {
  return columnOf(state, index).vectorType
}

/** The health of every vector index `state` declares. */
export async function readIndexHealth(client: pg.ClientBase, state: DesiredState): Promise<IndexHealth[]> {
  if (state.indexes.length === 0) return []
  const { rows } = await client.query<{ n: string; valid: boolean | null; method: string | null; opclass: string | null; options: string[]; size: string | null }>(
    READ_INDEXES, [state.indexes.map((i) => i.schema), state.indexes.map((i) => i.name)])
  return state.indexes.map((index, i) => {
    const row = rows[i]
    const base = { index: `${index.schema}.${index.name}`, column: columnLabel(index) }
    if (!row || row.valid === null) {
      return { ...base, state: 'missing', detail: 'no index of this name: searches scan the table', sizeBytes: null } as const
    }
    const sizeBytes = Number(row.size)
    const wanted = { method: index.method, opclass: operatorClass(index, vectorTypeOf(state, index)), options: Object.entries(index.params).map(([k, v]) => `${k}=${renderInteger(v)}`) }
    // An 'auto' parameter may have any value (it was sized from the table when the index was built); only its presence is checked.
    const comparable = (options: readonly string[]) => options.map((o) => (index.auto.includes(o.split('=')[0]!) ? `${o.split('=')[0]}=auto` : o)).join(',')
    const differences: string[] = []
    if (row.method !== wanted.method) differences.push(`method ${row.method}, the config says ${wanted.method}`)
    if (row.opclass !== wanted.opclass) differences.push(`operator class ${row.opclass}, the config says ${wanted.opclass}`)
    if (comparable(row.options) !== comparable(wanted.options)) differences.push(`parameters (${row.options.join(', ') || 'none'}), the config says (${wanted.options.map((o) => (index.auto.includes(o.split('=')[0]!) ? `${o.split('=')[0]}=auto` : o)).join(', ') || 'none'})`)
    if (differences.length > 0) return { ...base, state: 'differs', detail: differences.join('; '), sizeBytes } as const
    if (!row.valid) return { ...base, state: 'invalid', detail: 'INVALID: a build failed or was cancelled; searches ignore it', sizeBytes } as const
    return { ...base, state: 'ok', detail: '', sizeBytes } as const
  })
}

export interface RepairStep {
  readonly index: string
  readonly sql: string
}

/**
 * The statements that put one index right without blocking writes: build the config's index
 * concurrently under a temporary name, drop the old one concurrently, rename the new one into
 * place, and check it. Each is safe to run again after an interruption (the temporary index is
 * dropped first if a previous repair left it behind).
 */
export function repairSteps(index: VectorIndexNode, column: BuildColumn, vectorSchema: string | null = null): string[] {
  const temporary = rebuildIndexName(index)
  const { vectorType } = column
  const build = renderBuildSettings(index, column)
  return [
    renderDropIndexConcurrently(index.schema, temporary),
    ...build.set,
    renderCreateIndexConcurrently(index, vectorType, temporary, vectorSchema),
    ...build.reset,
    renderDropIndexConcurrently(index.schema, index.name),
    renderRenameIndex(index.schema, temporary, index.name),
    renderVerifyIndex(index, vectorType),
  ]
}

export interface RepairResult {
  readonly repaired: readonly IndexHealth[]
  /** The indexes that were already right. */
  readonly ok: readonly string[]
}

/**
 * Rebuilds every declared index that is missing, INVALID or differs from the config (or only the
 * indexes of `column`, `schema.table.column` or `table.column`), one at a time, each statement on
 * its own (CONCURRENTLY cannot run in a transaction). `onStep` is told each statement before it runs.
 */
export async function repairIndexes(client: pg.ClientBase, state: DesiredState, options: { column?: string; onStep?: (step: RepairStep) => void } = {}): Promise<RepairResult> {
  const selected = state.indexes.filter((i) => options.column === undefined || columnLabel(i) === options.column || `${i.table}.${i.column}` === options.column)
  if (options.column !== undefined && selected.length === 0) {
    throw new PgmlKitError('UNKNOWN_COLUMN', `the config declares no vector index on ${options.column}`, {
      hint: `indexed columns: ${[...new Set(state.indexes.map((i) => `${i.table}.${i.column}`))].join(', ') || 'none'}`,
    })
  }
  const health = await readIndexHealth(client, { ...state, indexes: selected })
  // 'auto' parameters of an index rebuilt now are sized from the table as it is now.
  const sized = sizeAutoParameters(EMPTY_STATE, { ...state, indexes: selected }, await readSizing(client, { ...state, indexes: selected }, 'this database')).indexes
  const repaired: IndexHealth[] = []
  const ok: string[] = []
  // The operator class qualified with pgvector's schema: found whatever this session's search_path.
  const vectorSchema = (await client.query<{ schema: string }>(VECTOR_SCHEMA)).rows[0]?.schema ?? null
  for (const [i, index] of sized.entries()) {
    const h = health[i]!
    if (h.state === 'ok') {
      ok.push(h.index)
      continue
    }
    for (const sql of repairSteps(index, columnOf(state, index), vectorSchema)) {
      options.onStep?.({ index: h.index, sql })
      await client.query(sql)
    }
    repaired.push(h)
  }
  return { repaired, ok }
}
