import type pg from 'pg'
import { embedIsolating, toVectorLiteral, type Embedder } from '../embed/embedder.js'
import { localEmbedderLoader } from '../embed/embedder-for-config.js'
import { sourceTextOf } from '../embed/source-text.js'
import { PgmlKitError } from '../errors.js'
import type { PgmlKitConfig } from '../config/schema.js'
import { embedderSettingsAt, resolveConfig } from '../model/resolve.js'
import type { ChunkedColumnNode, EmbeddingColumnNode } from '../model/ir.js'
import type { KeyedTable } from '../sql/render-row-key.js'
import { chunkInputsOf, embedChunksAhead, isChunkInput, syncRowChunks, type ChunkVectors } from '../chunking/app-sync.js'
import { renderChunkInputs, renderReadChunkInputs } from '../sql/render-chunks.js'
import { lockedChunkTables, servedChunkedColumns } from '../chunking/served.js'
import { sameChunkSettings } from '../model/chunk-rollout.js'
import { INSIDE_TRANSACTION, MAX_PARAMETERS, renderEndWrite, renderInsertRows, renderLockForInsert, renderLockSources, renderOpenWrite, renderUndoWrite, renderUpdatePatch } from '../sql/render-app-writer.js'
import { liveColumnsOf, readLiveColumns, type CatalogRead } from '../db/live-catalog.js'
import { columnsOfConfig, type LiveColumn } from '../model/catalog-column.js'

type SourceOf<S> = S extends readonly (infer U)[] ? U : S
type Tables<C extends PgmlKitConfig> = C['tables']
/** Table names the config declares. */
export type ConfiguredTable<C extends PgmlKitConfig> = keyof Tables<C> & string
/** Source columns of every embedding column of a table. */
export type SourceColumnOf<C extends PgmlKitConfig, T extends ConfiguredTable<C>> = {
  [E in keyof Tables<C>[T]['embeddings']]: SourceOf<Tables<C>[T]['embeddings'][E]['source']>
}[keyof Tables<C>[T]['embeddings']] & string
/** A row to insert: every source column must be given (string or null); other columns are free. */
export type InsertRow<C extends PgmlKitConfig, T extends ConfiguredTable<C>> = { [K in SourceColumnOf<C, T>]: string | null } & Record<string, unknown>

export interface EmbeddingWriterOptions {
  /**
   * A node-postgres pool, or a client. With a pool, or a client outside a transaction, each insert
   * and update runs in a transaction of its own. A client inside the caller's transaction: each
   * write joins it under a savepoint — it commits or rolls back with the caller's transaction, and
   * a write that fails undoes only itself, leaving the caller's transaction usable.
   */
  readonly db: pg.Pool | pg.ClientBase
  /** Embedder per column; default: the local ONNX model, as configured under `embedder`. */
  readonly loadEmbedder?: (column: EmbeddingColumnNode) => Promise<Embedder>
  /** Embedder per chunked column; default: as `loadEmbedder`, else the local ONNX model. */
  readonly loadChunkEmbedder?: (column: ChunkedColumnNode) => Promise<Embedder>
  /** Base directory for a relative `embedder.modelsDir` (default: the current directory). */
  readonly cwd?: string
}

export interface EmbeddingWriter<C extends PgmlKitConfig> {
  /**
   * Inserts rows and the vectors of their `app`-mode embedding columns, computed locally in
   * batches, in one statement. Returns the inserted rows (the `returning` columns, default all).
   */
  insert<T extends ConfiguredTable<C>>(table: T, rows: readonly InsertRow<C, T>[], options?: { readonly returning?: readonly string[] }): Promise<Record<string, unknown>[]>
  /**
   * Updates one row by key. When the patch changes a source column, the row is locked, its other
   * source columns read, and its vectors recomputed and written in the same statement.
   */
  update<T extends ConfiguredTable<C>>(table: T, key: Readonly<Record<string, unknown>>, patch: Readonly<Record<string, unknown>>): Promise<number>
}

/**
 * Writes rows of tables with `app`-mode embedding columns, computing their vectors locally.
 *
 * It writes the columns the `pgml_kit` catalog says the table has in mode `app`, with the model the
 * catalog says — not the config's: during a staged model change the config names the new model
 * while the live column still holds the old one, and the new model's column is filled beside it
 * (then, after the switch, the previous model's column is kept in sync until it is dropped). Each
 * write holds the table's lock and checks the catalog in the same transaction, so a migration that
 * adds, switches or drops a column cannot slip between what was embedded and what is written. A
 * role that cannot read the catalog writes the config's columns, as the config says.
 *
 * @example
 * const writer = createEmbeddingWriter(config, { db: pool })
 * await writer.insert('documents', [{ title: 'Parks', body: 'Opening hours of city parks' }])
 */
export function createEmbeddingWriter<const C extends PgmlKitConfig>(config: C, options: EmbeddingWriterOptions): EmbeddingWriter<C> {
  const resolved = resolveConfig(config)
  const load = options.loadEmbedder ?? localEmbedderLoader(embedderSettingsAt(resolved.embedder, options.cwd ?? process.cwd()))
  const declaredOf = (table: string) => resolved.state.embeddingColumns.filter((c) => c.table === table)
  /** The table's chunked columns in mode `app`: the writer syncs their chunks in the write's transaction. */
  const chunkedOf = (table: string) => (resolved.state.chunkedColumns ?? []).filter((c) => c.table === table && c.mode === 'app')
  const tableOf = (table: string): KeyedTable => {
    const first = declaredOf(table)[0] ?? (resolved.state.chunkedColumns ?? []).find((c) => c.table === table)
    if (!first) throw new PgmlKitError('TABLE_UNKNOWN', `table "${table}" has no embedding columns in the config`)
    return first
  }
  const chunkEmbedders = new Map<string, Promise<Embedder>>()
  const chunkEmbedderOf = (node: ChunkedColumnNode) => {
    const key = JSON.stringify(node.model)
    if (!chunkEmbedders.has(key)) chunkEmbedders.set(key, (options.loadChunkEmbedder ?? load)(node))
    return chunkEmbedders.get(key)!
  }
  /** Columns a row's chunks are made from: its key, sources and the template's columns. */
  const chunkColumns = (node: ChunkedColumnNode) => [...node.keyColumns, ...node.sourceColumns, ...node.templateColumns]
  /** What each chunked column needs read back from a written row (renderChunkInputs), numbered as `nodes`. */
  const chunkReturning = (nodes: readonly ChunkedColumnNode[]) => nodes.flatMap((node, i) => renderChunkInputs(node, i))
  /** Syncs the chunks of written rows, from what the database read back of them. */
  // Each chunk table with the settings it records (a staged chunking change keeps two): the
  // config's, read back with the write, or the row's inputs read again for the other's.
  const syncChunks = async (db: pg.ClientBase, nodes: readonly ChunkedColumnNode[], rows: readonly Record<string, unknown>[], ahead: ChunkVectors) => {
    for (const [i, node] of nodes.entries()) {
      const embedder = await chunkEmbedderOf(node)
      for (const served of await lockedChunkTables(db, node)) {
        const own = sameChunkSettings(served.node, node)
        for (const row of rows) {
          const inputs = chunkInputsOf(row, i)
          const read = own ? [row] : (await db.query(renderReadChunkInputs(served.node), [inputs.key])).rows
          if (read[0]) await syncRowChunks(db, served.node, own ? inputs : chunkInputsOf(read[0], 0), embedder, ahead)
        }
      }
    }
  }
  /** The chunked columns an update of `patch` re-chunks: those with a chunk table made from a column it touches. */
  const chunkedTouched = async (db: pg.ClientBase, table: string, patch: Readonly<Record<string, unknown>>) => {
    const out: ChunkedColumnNode[] = []
    for (const node of chunkedOf(table)) {
      const served = await servedChunkedColumns(db, [node])
      if (served.some((s) => chunkColumns(s.node).some((c) => c in patch))) out.push(node)
    }
    return out
  }
  const withoutChunkInputs = (row: Record<string, unknown>) => Object.fromEntries(Object.entries(row).filter(([name]) => !isChunkInput(name)))
  /** Per table, what the catalog said last (null: it cannot be read; undefined: not read yet). */
  const known = new Map<string, { readonly fingerprints: string; readonly columns: readonly EmbeddingColumnNode[] } | null>()
  const appColumnsFrom = (table: string, live: readonly LiveColumn[] | null) => live === null
    ? declaredOf(table).filter((c) => c.mode === 'app')
    : columnsOfConfig(declaredOf(table), live).map((l) => l.node).filter((c) => c.mode === 'app')
  const remember = (table: string, live: readonly LiveColumn[] | null) => {
    const entry = live === null ? null : { fingerprints: JSON.stringify(live.map((l) => [l.node.column, l.fingerprint])), columns: appColumnsFrom(table, live) }
    known.set(table, entry)
    return entry
  }
  const query = (db: pg.Pool | pg.ClientBase) => (sql: string, parameters: readonly unknown[]) => db.query(sql, [...parameters])

  async function vectorsFor(column: EmbeddingColumnNode, rows: readonly Readonly<Record<string, unknown>>[]): Promise<(string | null)[]> {
    const texts = rows.map((row) => sourceTextOf(column, row))
    const present = texts.filter((t): t is string => t !== null)
    const embedder = await load(column)
    const vectors = await embedIsolating(embedder, present)
    const failed = vectors.findIndex((v) => v instanceof Error)
    if (failed >= 0) {
      throw new PgmlKitError('EMBED_FAILED', `could not embed ${column.table}.${column.column} for a row: ${(vectors[failed] as Error).message}; nothing was written`, { cause: vectors[failed] })
    }
    let i = 0
    return texts.map((t) => (t === null ? null : toVectorLiteral(vectors[i++] as Float32Array)))
  }

  /**
   * Runs `fn` on one client in a transaction (a pool lends one for it) — or, on a client the caller
   * gave that is inside the caller's transaction, under a savepoint in it. `then` runs in the round
   * trip that opens it; `fn` is given its results.
   */
  async function inTransaction<T>(fn: (db: pg.ClientBase, opened: readonly pg.QueryResult[]) => Promise<T>, then?: string): Promise<T> {
    const client = 'totalCount' in options.db ? await (options.db as pg.Pool).connect() : undefined
    const db = client ?? (options.db as pg.ClientBase)
    try {
      // A client the pool just lent is outside any transaction; one the caller gave may be inside theirs.
      const inside = client ? false : (await db.query<{ inside: boolean }>(INSIDE_TRANSACTION)).rows[0]?.inside === true
      try {
        const opened = (await db.query(renderOpenWrite(inside, then))) as unknown as pg.QueryResult | pg.QueryResult[]
        const result = await fn(db, Array.isArray(opened) ? opened.slice(1) : [])
        await db.query(renderEndWrite(inside))
        return result
      } catch (error) {
        await db.query(renderUndoWrite(inside)).catch(() => undefined)
        throw error
      }
    } finally {
      client?.release()
    }
  }

  return {
    async insert(table, rows, insertOptions = {}) {
      if (rows.length === 0) return []
      const ref = tableOf(table)
      if (!known.has(table)) remember(table, await readLiveColumns(query(options.db), declaredOf(table)))
      const records = rows.map((row) => ({ ...row }) as Record<string, unknown>)
      // Embedded before the transaction, with what the catalog said last; checked under the table's lock below.
      const embedded = new Map<string, (string | null)[]>()
      const embedAll = async (columns: readonly EmbeddingColumnNode[]) => {
        for (const column of columns) {
          const key = `${column.column}\0${JSON.stringify(column.model)}\0${column.sourceColumns.join('\0')}\0${column.separator}`
          if (!embedded.has(key)) embedded.set(key, await vectorsFor(column, rows))
          const vectors = embedded.get(key)!
          records.forEach((record, i) => { record[column.column] = vectors[i] })
        }
      }
      const before = known.get(table)
      await embedAll(before?.columns ?? appColumnsFrom(table, null))
      const chunked = chunkedOf(table)
      const ahead: ChunkVectors = new Map()
      for (const node of chunked) await embedChunksAhead(node, rows, await chunkEmbedderOf(node), ahead)
      const asked = insertOptions.returning ?? null
      const write = async (db: pg.ClientBase) => {
        const columns = [...new Set(records.flatMap((r) => Object.keys(r)))]
        const present = records.map((r) => columns.map((c) => c in r && r[c] !== undefined))
        // Chunking reads the rows back as written (a default may make their key or a template column).
        const returning = asked
        // One statement unless the rows need more parameters than PostgreSQL allows in one (one transaction either way).
        const perRow = Math.max(1, columns.length)
        const inserted: Record<string, unknown>[] = []
        for (let start = 0; start < records.length; start += Math.floor(MAX_PARAMETERS / perRow)) {
          const end = Math.min(records.length, start + Math.floor(MAX_PARAMETERS / perRow))
          const values = records.slice(start, end).flatMap((r, i) => columns.filter((_, c) => present[start + i]![c]).map((c) => r[c]))
          const { rows: out } = await db.query(renderInsertRows(ref, columns, present.slice(start, end), returning, chunkReturning(chunked)), values)
          inserted.push(...(out as Record<string, unknown>[]))
        }
        if (chunked.length === 0) return inserted
        await syncChunks(db, chunked, inserted, ahead)
        return inserted.map(withoutChunkInputs)
      }
      if (before === null) {
        // The catalog cannot be read by this role: the config's columns, as before.
        return inTransaction(write)
      }
      // BEGIN, the table's lock and its catalog rows in one round trip; they hold until the transaction ends.
      return inTransaction(async (db, [, catalog]) => {
        const now = remember(table, liveColumnsOf(catalog!.rows as CatalogRead[], declaredOf(table)))!
        if (now.fingerprints !== before?.fingerprints) {
          // A migration added, switched or dropped a column since: write what the catalog says now.
          for (const column of before?.columns ?? []) if (!now.columns.some((c) => c.column === column.column)) records.forEach((r) => { delete r[column.column] })
          await embedAll(now.columns)
        }
        return write(db)
      }, renderLockForInsert(ref))
    },

    async update(table, key, patch) {
      const ref = tableOf(table)
      const keyColumns = ref.keyColumns
      const missing = keyColumns.filter((k) => !(k in key))
      if (missing.length > 0) throw new PgmlKitError('KEY_INCOMPLETE', `update of ${table} needs its key column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`)
      return inTransaction(async (db) => {
        const record: Record<string, unknown> = { ...patch }
        const touches = (c: EmbeddingColumnNode) => c.sourceColumns.some((s) => s in patch)
        if (declaredOf(table).some(touches) || (known.get(table)?.columns ?? []).some(touches)) {
          // The row's lock holds off migrations of the table until the transaction ends: the catalog read after it holds for the write.
          const { rows: current } = await db.query(renderLockSources(ref, [...new Set(declaredOf(table).flatMap((c) => c.sourceColumns))]), [JSON.stringify(key)])
          const entry = remember(table, await readLiveColumns(query(db), declaredOf(table)))
          const affected = (entry?.columns ?? appColumnsFrom(table, null)).filter(touches)
          if (current[0] && affected.length > 0) {
            const sources = [...new Set(affected.flatMap((c) => c.sourceColumns))]
            const { rows: full } = sources.every((s) => s in (current[0] as Record<string, unknown>)) ? { rows: current } : await db.query(renderLockSources(ref, sources), [JSON.stringify(key)])
            const merged = { ...(full[0] as Record<string, unknown>), ...patch }
            for (const column of affected) record[column.column] = (await vectorsFor(column, [merged]))[0]
          }
        }
        const columns = Object.keys(record)
        if (columns.length === 0) return 0
        // Chunked columns whose key, sources or template columns the patch touches: the row as updated, read back, re-chunked.
        const chunked = await chunkedTouched(db, table, patch)
        const { rowCount, rows: updated } = await db.query(renderUpdatePatch(ref, columns, chunkReturning(chunked)), [JSON.stringify(key), JSON.stringify(record)])
        if (chunked.length > 0) await syncChunks(db, chunked, updated as Record<string, unknown>[], new Map())
        return rowCount ?? 0
      })
    },
  }
}
