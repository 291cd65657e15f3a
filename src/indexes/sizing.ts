import type pg from 'pg'
import type { ChunkedColumnNode, DesiredState, EmbeddingColumnNode, VectorIndexNode } from '../model/ir.js'
import type { ColumnRename, TableRename } from '../model/resolve.js'
import { columnKey, columnLabel, deepFreeze, objectKey } from '../model/ir.js'
import { quoteIdent } from '../sql/quote.js'
import { sameFixedParams } from '../plan/compare.js'
import { renderReadFill } from '../sql/render-rollout.js'
import { READ_CHUNK_TABLES, renderReadChunkFill } from '../sql/render-chunks.js'
import { COLUMNS_EXIST } from '../sql/render-introspection.js'
import { adviseBuild, adviseHnsw, adviseIvfflat, DEFAULT_MAINTENANCE_WORK_MEM, formatBytes, formatCount } from './advice.js'

/**
 * What a database says about the size of the tables a plan builds indexes on, read when a plan
 * is made with a database (`plan`/`generate --database-url`). Rows come from `pg_class.reltuples`
 * (a count when the table was never analysed); a column's filled rows from `pg_stats.null_frac`
 * (a count when it has no statistics).
 */
export interface TableSizing {
  readonly rows: number
  /** Rows whose embedding column is not NULL, per column that exists. */
  readonly filled: Readonly<Record<string, number>>
}

export interface Sizing {
  /** Where the sizes came from (a redacted URL or "embedded database"), for notes. */
  readonly source: string
  /** By `schema.table`; a table that does not exist yet is absent. */
  readonly tables: ReadonlyMap<string, TableSizing>
  /**
   * How far the extra columns of staged model changes are filled, by `schema.table.column`
   * (exact counts); a column the database does not have yet is absent.
   */
  readonly fill?: ReadonlyMap<string, ColumnFill>
}

export interface ColumnFill {
  readonly withText: number
  /** Rows with text, no vector, and no queued job that would write one. */
  readonly missing: number
  readonly deadLetters: number
  /** Chunk tables: rows with chunks in the live chunk table and none in this copy (switching now would hide them from searches). */
  readonly hidden?: number
}

/**
 * What `plan` and `generate` read from a database: the sizes of the tables `state` (the config's)
 * uses, and how far the copies that `recorded` (the snapshot's) staged model changes would switch
 * to are filled. Read-only.
 */
export async function readPlanSizing(client: pg.ClientBase, state: DesiredState, recorded: DesiredState, source: string): Promise<Sizing> {
  const sizing = await readSizing(client, state, source)
  const copies = recorded.embeddingColumns.filter((c) => c.rollout)
  const chunkCopies = (recorded.chunkedColumns ?? []).filter((c) => c.rollout)
  return copies.length + chunkCopies.length > 0 ? { ...sizing, fill: new Map([...await readFill(client, copies), ...await readChunkFill(client, chunkCopies, recorded)]) } : sizing
}

/** Exact fill counts (one scan each) of the chunk tables a staged chunking change switches to, those the database has. */
export async function readChunkFill(client: pg.ClientBase, columns: readonly ChunkedColumnNode[], recorded: DesiredState): Promise<Map<string, ColumnFill>> {
  const out = new Map<string, ColumnFill>()
  if (columns.length === 0) return out
  const { rows } = await client.query<{ present: boolean }>(READ_CHUNK_TABLES, [columns.map((c) => c.schema), columns.map((c) => c.chunkTable)])
  for (const [i, row] of rows.entries()) {
    const column = columns[i]
    const live = (recorded.chunkedColumns ?? []).find((c) => !c.rollout && c.schema === column?.schema && c.table === column.table && c.column === column.rollout?.of)
    if (!column || !live || !row.present) continue
    const fill = (await client.query<{ with_text: string; missing: string; dead_letters: string; hidden: string }>(renderReadChunkFill(column, live.chunkTable))).rows[0]
    out.set(columnLabel(column), { withText: Number(fill?.with_text ?? 0), missing: Number(fill?.missing ?? 0), deadLetters: Number(fill?.dead_letters ?? 0), hidden: Number(fill?.hidden ?? 0) })
  }
  return out
}

/**
 * Exact fill counts (one scan each) of the given columns that the database has: the copies a
 * staged model change switches to. Read when a plan is made against a database.
 */
export async function readFill(client: pg.ClientBase, columns: readonly EmbeddingColumnNode[]): Promise<Map<string, ColumnFill>> {
  const out = new Map<string, ColumnFill>()
  if (columns.length === 0) return out
  const { rows } = await client.query<{ n: number; ok: boolean }>(COLUMNS_EXIST, [columns.map((c) => c.schema), columns.map((c) => c.table), columns.map((c) => c.column)])
  for (const row of rows) {
    const column = columns[row.n - 1]
    if (!column || !row.ok) continue
    const fill = (await client.query<{ with_text: string; missing: string; dead_letters: string }>(renderReadFill(column))).rows[0]
    out.set(columnLabel(column), { withText: Number(fill?.with_text ?? 0), missing: Number(fill?.missing ?? 0), deadLetters: Number(fill?.dead_letters ?? 0) })
  }
  return out
}

const READ_TABLES = `SELECT d.schema, d.name, c.reltuples::float8 AS reltuples, c.oid::regclass::text AS rel
FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS d(schema, name)
JOIN pg_catalog.pg_namespace n ON n.nspname = d.schema
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = d.name AND c.relkind IN ('r', 'p')`

const READ_NULL_FRACTION = `SELECT a.attname AS column, s.null_frac::float8 AS null_frac
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_stats s ON s.schemaname = $1 AND s.tablename = $2 AND s.attname = a.attname
WHERE a.attrelid = $3::regclass::oid AND a.attname = ANY($4::text[]) AND a.attnum > 0 AND NOT a.attisdropped`

/** `pg_class.reltuples` of the given tables (`schema.table` → estimate; -1: never analysed), one catalog query; tables that do not exist are absent. */
export async function readRowEstimates(client: pg.ClientBase, tables: readonly { schema: string; table: string }[]): Promise<Map<string, { reltuples: number; rel: string }>> {
  if (tables.length === 0) return new Map()
  const { rows } = await client.query<{ schema: string; name: string; reltuples: number; rel: string }>(READ_TABLES, [tables.map((t) => t.schema), tables.map((t) => t.table)])
  return new Map(rows.map((r) => [`${r.schema}.${r.name}`, { reltuples: r.reltuples, rel: r.rel }]))
}

/** Reads the sizes of every table `state` declares an embedding column, index or full-text column on. Read-only, catalog look-ups plus counts of never-analysed tables. */
export async function readSizing(client: pg.ClientBase, state: DesiredState, source: string): Promise<Sizing> {
  const tables = [...new Map([...state.embeddingColumns, ...state.indexes, ...state.fullText].map((i) => [`${i.schema}.${i.table}`, { schema: i.schema, table: i.table }])).values()]
  const out = new Map<string, TableSizing>()
  if (tables.length === 0) return { source, tables: out }
  for (const [key, { reltuples, rel }] of await readRowEstimates(client, tables)) {
    const row = { ...tables.find((t) => `${t.schema}.${t.table}` === key)!, reltuples, rel }
    const counted = row.reltuples > 0 ? row.reltuples : Number((await client.query<{ n: string }>(`SELECT pg_catalog.count(*) AS n FROM ${row.rel}`)).rows[0]?.n ?? 0)
    const columns = [...new Set([...state.indexes, ...state.embeddingColumns].filter((i) => i.schema === row.schema && i.table === row.table).map((i) => i.column))]
    const stats = await client.query<{ column: string; null_frac: number | null }>(READ_NULL_FRACTION, [row.schema, row.table, row.rel, columns])
    const filled: Record<string, number> = {}
    for (const stat of stats.rows) {
      filled[stat.column] = stat.null_frac !== null && row.reltuples > 0
        ? Math.round(counted * (1 - stat.null_frac))
        : Number((await client.query<{ n: string }>(`SELECT pg_catalog.count(*) AS n FROM ${row.rel} WHERE ${quoteIdent(stat.column)} IS NOT NULL`)).rows[0]?.n ?? 0)
    }
    out.set(key, { rows: Math.round(counted), filled })
  }
  return { source, tables: out }
}

/**
 * Puts numbers on the config's `'auto'` index parameters: an index that exists already keeps the
 * values it was built with (a plan never rebuilds an index only because the table grew); a new
 * one gets the advice for the table's rows when `sizing` knows them, else pgvector's defaults.
 */
export function sizeAutoParameters(previous: DesiredState, next: DesiredState, sizing: Sizing | undefined, renames: readonly ColumnRename[] = [], tableRenames: readonly TableRename[] = []): DesiredState {
  const before = new Map(previous.indexes.map((i) => [objectKey(i.schema, i.name), i]))
  // A column declared renamed: its indexes are found under the old column name (and, if derived from it, the old index name).
  const renamedFrom = new Map(renames.map((r) => [columnKey({ ...r, column: r.to }), r.from]))
  // A table declared renamed: its indexes are found under its old name (and, if derived from it, their old names).
  const tableFrom = new Map(tableRenames.map((r) => [objectKey(r.schema, r.to), r.from]))
  const indexes = next.indexes.map((index) => {
    if (index.auto.length === 0) return index
    const from = renamedFrom.get(columnKey(index))
    const table = tableFrom.get(objectKey(index.schema, index.table))
    // The recorded indexes, a renamed table's under its new name.
    const recorded = table === undefined ? previous.indexes : previous.indexes.map((o) => (o.schema === index.schema && o.table === table ? { ...o, table: index.table } : o))
    const moved = from === undefined && table === undefined ? [] : recorded.filter((o) => o.schema === index.schema && o.table === index.table && (o.column === index.column || o.column === from))
    const old = [before.get(objectKey(index.schema, index.name)), ...moved]
      .find((o) => o !== undefined && (columnKey(o) === columnKey(index) || (from !== undefined && o.column === from)) && sameFixedParams(o, index))
    if (old) {
      return { ...index, params: { ...index.params, ...Object.fromEntries(index.auto.map((k) => [k, old.params[k] ?? index.params[k]!])) } }
    }
    const rows = sizing?.tables.get(`${index.schema}.${index.table}`)?.rows
    if (rows === undefined) return index
    const advice: Record<string, number> = index.method === 'ivfflat' ? { lists: adviseIvfflat(rows).lists } : { m: adviseHnsw(rows).m, ef_construction: adviseHnsw(rows).efConstruction }
    const params = { ...index.params }
    for (const key of index.auto) params[key] = advice[key]!
    // An explicit ef_construction below 2 × an advised m would be refused by pgvector.
    if (index.method === 'hnsw' && params.ef_construction! < 2 * params.m!) params.m = Math.floor(params.ef_construction! / 2)
    return { ...index, params }
  })
  return deepFreeze({ ...next, indexes })
}

/** Notes for `plan`: what the table's size means for this index's parameters, build and searches. */
export function sizingNotes(index: VectorIndexNode, column: EmbeddingColumnNode, sizing: Sizing | undefined): string[] {
  const table = sizing?.tables.get(`${index.schema}.${index.table}`)
  if (!table) {
    return index.auto.length > 0
      ? [`${index.auto.join(', ')} 'auto': no database to size them from, so pgvector's defaults are used (plan/generate --database-url <url> sizes them from the table)`]
      : []
  }
  const notes = [`${formatCount(table.rows)} rows in ${index.schema}.${index.table} (${sizing!.source}), ${formatCount(table.filled[index.column] ?? 0)} with a vector`]
  if (index.method === 'ivfflat') {
    const advice = adviseIvfflat(table.rows)
    const lists = index.params.lists ?? 100
    if (index.auto.includes('lists')) notes.push(`lists ${lists} (auto: ${advice.reason}); search with probes ${advice.probes} to start`)
    else if (lists !== advice.lists) notes.push(`advice for this size: lists ${advice.lists}, probes ${advice.probes} (${advice.reason}); the config says lists ${lists}`)
  } else {
    const advice = adviseHnsw(table.rows)
    if (index.auto.length > 0) notes.push(`m ${index.params.m}, ef_construction ${index.params.ef_construction} (auto: ${advice.reason})`)
    else if (index.params.m !== advice.m || index.params.ef_construction !== advice.efConstruction) notes.push(`advice for this size: m ${advice.m}, ef_construction ${advice.efConstruction}`)
    notes.push(`start searches at ef_search ${advice.efSearch}; \`pgml-kit index check ${index.table}.${index.column}\` measures the recall of each setting on your data`)
  }
  const build = adviseBuild(index.method, table.rows, column.model.dimensions, column.vectorType, { m: index.params.m, lists: index.params.lists })
  const workers = build.parallelWorkers > 0 ? ` and up to ${build.parallelWorkers} parallel workers` : ''
  if (index.build?.memory === 'auto') notes.push(`build: ${build.reason}; maintenance_work_mem is set from the table's rows when the build runs (at most ${index.build.memoryLimit})${workers && index.build.parallelWorkers === 'auto' ? `,${workers}` : ''}`)
  else if (index.build?.memory) notes.push(`build: ${build.reason}; the config sets maintenance_work_mem ${index.build.memory}`)
  else if (build.memoryBytes > DEFAULT_MAINTENANCE_WORK_MEM) notes.push(`build: ${build.reason}: set build: 'auto' (maintenance_work_mem ${formatBytes(build.memoryBytes)}${workers}) for a build several times faster`)
  return notes
}
