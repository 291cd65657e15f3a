import type pg from 'pg'
import { columnFromCatalog, columnsOfConfig, type CatalogRow, type LiveColumn } from '../model/catalog-column.js'
import { toConnector, type Connector } from './connect.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import { CATALOG_READABLE, renderReadCatalog } from '../sql/render-catalog.js'

/** A node-postgres client, or anything that runs a statement with parameters and returns its rows. */
export type Query = Pick<pg.ClientBase, 'query'> | ((sql: string, parameters: readonly unknown[]) => Promise<{ readonly rows: readonly unknown[] }>)

async function rowsOf<R>(query: Query, sql: string, parameters: readonly unknown[] = []): Promise<R[]> {
  const result = typeof query === 'function' ? await query(sql, parameters) : await query.query(sql, [...parameters])
  return result.rows as R[]
}

/**
 * The embedding columns of the given tables as the `pgml_kit` catalog describes them, or null when
 * this role cannot read the catalog (or there is none yet). `declared` are the config's columns,
 * which fill what an older runtime's rows lack.
 */
export async function readLiveColumns(query: Query, declared: readonly EmbeddingColumnNode[]): Promise<LiveColumn[] | null> {
  return (await readSearchCatalog(query, declared)).live
}

/**
 * What searches read from the database before their first query, in two statements: the columns
 * as readLiveColumns gives them, and the schema pgvector is installed in (null: not installed).
 */
export async function readSearchCatalog(query: Query, declared: readonly EmbeddingColumnNode[]): Promise<{ live: LiveColumn[] | null; vectorSchema: string | null }> {
  const first = (await rowsOf<{ readable: boolean; vector_schema: string | null }>(query, CATALOG_READABLE))[0]
  const vectorSchema = first?.vector_schema ?? null
  if (!first?.readable) return { live: null, vectorSchema }
  const tables = [...new Map(declared.map((c) => [`${c.schema}\0${c.table}`, c])).values()]
  return { live: liveColumnsOf(await rowsOf<CatalogRead>(query, renderReadCatalog('parameters'), [tables.map((t) => t.schema), tables.map((t) => t.table)]), declared), vectorSchema }
}

/** A row of renderReadCatalog. */
export interface CatalogRead { readonly row: string; readonly fingerprint: string }

/** The columns the rows of renderReadCatalog describe. */
export function liveColumnsOf(rows: readonly CatalogRead[], declared: readonly EmbeddingColumnNode[]): LiveColumn[] {
  return rows.map((r) => {
    const row = JSON.parse(r.row) as CatalogRow
    const own = declared.find((c) => c.schema === row.table_schema && c.table === row.table_name && c.column === (row.rollout_of ?? row.column_name))
    return { node: columnFromCatalog(row, own), fingerprint: r.fingerprint }
  })
}

/**
 * Every embedding column the catalog has — live ones, and the extra columns of staged model changes
 * — or null when this role cannot read the catalog (or there is none yet). `declared` (the config's
 * columns) fill what an older runtime's rows lack.
 */
export async function readCatalogColumns(url: string | Connector, declared: readonly EmbeddingColumnNode[]): Promise<LiveColumn[] | null> {
  const client = await toConnector(url).connect('pgml-kit')
  try {
    const first = (await rowsOf<{ readable: boolean }>(client, CATALOG_READABLE))[0]
    if (!first?.readable) return null
    return liveColumnsOf(await rowsOf<CatalogRead>(client, renderReadCatalog('all')), declared)
  } finally {
    await client.end().catch(() => undefined)
  }
}

/**
 * A config column as the catalog has it, then the extra columns of its staged model change (the
 * shadow being filled with the new model, or the previous one): what `pgml-kit backfill <column>`
 * fills, in order, and whose first entry `parity` compares. Just the column when the catalog
 * cannot be read.
 */
export async function readColumnWithCopies(url: string | Connector, column: EmbeddingColumnNode): Promise<EmbeddingColumnNode[]> {
  const client = await toConnector(url).connect('pgml-kit')
  try {
    const live = await readLiveColumns(client, [column])
    return live === null ? [column] : columnsOfConfig([column], live).map((l) => l.node)
  } finally {
    await client.end().catch(() => undefined)
  }
}
