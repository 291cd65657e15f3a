import type pg from 'pg'
import { embedIsolating, toVectorLiteral, type Embedder } from '../embed/embedder.js'
import { localEmbedderLoader } from '../embed/embedder-for-config.js'
import { sourceTextOf } from '../embed/source-text.js'
import { PgmlKitError } from '../errors.js'
import type { PgmlKitConfig } from '../config/schema.js'
import { embedderSettingsAt, resolveConfig } from '../model/resolve.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import { MAX_PARAMETERS, renderInsertRows, renderLockSources, renderUpdatePatch } from '../sql/render-app-writer.js'

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
  /** A node-postgres pool or client. */
  readonly db: pg.Pool | pg.ClientBase
  /** Embedder per column; default: the local ONNX model, as configured under `embedder`. */
  readonly loadEmbedder?: (column: EmbeddingColumnNode) => Promise<Embedder>
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
 * @example
 * const writer = createEmbeddingWriter(config, { db: pool })
 * await writer.insert('documents', [{ title: 'Parks', body: 'Opening hours of city parks' }])
 */
export function createEmbeddingWriter<const C extends PgmlKitConfig>(config: C, options: EmbeddingWriterOptions): EmbeddingWriter<C> {
  const resolved = resolveConfig(config)
  const load = options.loadEmbedder ?? localEmbedderLoader(embedderSettingsAt(resolved.embedder, options.cwd ?? process.cwd()))
  const appColumns = (table: string) => resolved.state.embeddingColumns.filter((c) => c.table === table && c.mode === 'app')
  const tableOf = (table: string) => {
    const columns = resolved.state.embeddingColumns.filter((c) => c.table === table)
    const first = columns[0]
    if (!first) throw new PgmlKitError('TABLE_UNKNOWN', `table "${table}" has no embedding columns in the config`)
    return first
  }

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

  return {
    async insert(table, rows, insertOptions = {}) {
      if (rows.length === 0) return []
      const ref = tableOf(table)
      const records = rows.map((row) => ({ ...row }) as Record<string, unknown>)
      for (const column of appColumns(table)) {
        const vectors = await vectorsFor(column, rows)
        records.forEach((record, i) => { record[column.column] = vectors[i] })
      }
      const columns = [...new Set(records.flatMap((r) => Object.keys(r)))]
      const present = records.map((r) => columns.map((c) => c in r && r[c] !== undefined))
      const returning = insertOptions.returning ?? null
      // One statement (all or nothing) unless the rows need more parameters than PostgreSQL allows in one.
      const perRow = Math.max(1, columns.length)
      const inserted: Record<string, unknown>[] = []
      for (let start = 0; start < records.length; start += Math.floor(MAX_PARAMETERS / perRow)) {
        const end = Math.min(records.length, start + Math.floor(MAX_PARAMETERS / perRow))
        const values = records.slice(start, end).flatMap((r, i) => columns.filter((_, c) => present[start + i]![c]).map((c) => r[c]))
        const { rows: out } = await options.db.query(renderInsertRows(ref, columns, present.slice(start, end), returning), values)
        inserted.push(...(out as Record<string, unknown>[]))
      }
      return inserted
    },

    async update(table, key, patch) {
      const ref = tableOf(table)
      const keyColumns = ref.keyColumns
      const missing = keyColumns.filter((k) => !(k in key))
      if (missing.length > 0) throw new PgmlKitError('KEY_INCOMPLETE', `update of ${table} needs its key column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`)
      const affected = appColumns(table).filter((c) => c.sourceColumns.some((s) => s in patch))
      // A pool hands out one client for the transaction; a client is used as it is.
      const client = 'totalCount' in options.db ? await (options.db as pg.Pool).connect() : undefined
      const db = client ?? (options.db as pg.ClientBase)
      try {
        await db.query('BEGIN')
        const record: Record<string, unknown> = { ...patch }
        if (affected.length > 0) {
          const sources = [...new Set(affected.flatMap((c) => c.sourceColumns))]
          const { rows: current } = await db.query(renderLockSources(ref, sources), [JSON.stringify(key)])
          if (current[0]) {
            const merged = { ...(current[0] as Record<string, unknown>), ...patch }
            for (const column of affected) record[column.column] = (await vectorsFor(column, [merged]))[0]
          }
        }
        const columns = Object.keys(record)
        if (columns.length === 0) {
          await db.query('ROLLBACK')
          return 0
        }
        const { rowCount } = await db.query(renderUpdatePatch(ref, columns), [JSON.stringify(key), JSON.stringify(record)])
        await db.query('COMMIT')
        return rowCount ?? 0
      } catch (error) {
        await db.query('ROLLBACK').catch(() => undefined)
        throw error
      } finally {
        client?.release()
      }
    },
  }
}
