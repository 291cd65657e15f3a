import pg from 'pg'
import { embedIsolating, toVectorLiteral, type Embedder } from '../embed/embedder.js'
import { PgmlKitError } from '../errors.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import {
  CLEAR_CHECKPOINT, READ_CHECKPOINT, SAVE_CHECKPOINT,
  renderCountRows, renderDatabaseBackfill, renderSelectBatch, renderWriteBackfill,
} from '../sql/render-backfill.js'
import { VECTOR_SCHEMA } from '../sql/render-worker.js'
import { detectCapabilities, canEmbedInDatabase } from '../db/capabilities.js'

export interface BackfillOptions {
  readonly url: string
  readonly column: EmbeddingColumnNode
  /** Needed for `queue` and `app` columns (vectors are computed locally). */
  readonly loadEmbedder?: () => Promise<Embedder>
  /** Every row, not only rows without a vector. Resumes an interrupted `all` run unless `restart`. */
  readonly all?: boolean
  readonly restart?: boolean
  readonly batchSize?: number
  readonly signal?: AbortSignal
  readonly onProgress?: (progress: BackfillProgress) => void
}

export interface BackfillProgress {
  readonly total: number
  readonly done: number
}

export interface BackfillResult {
  readonly column: string
  readonly how: 'local' | 'database'
  readonly total: number
  readonly done: number
  readonly written: number
  /** Rows left as they were because their source changed while the batch was embedded. */
  readonly skipped: number
  /** Rows the model failed on, with the error (first 20). */
  readonly failed: readonly { readonly key: unknown; readonly error: string }[]
  readonly failedCount: number
  readonly interrupted: boolean
  readonly seconds: number
}

interface Row { key: Record<string, unknown>; source_text: string | null; source_md5: string | null }

/**
 * Fills missing vectors (or, with `all`, recomputes every vector) in committed batches, in key
 * order. Without `all` it is resumable by nature (done rows no longer match); with `all` a
 * checkpoint in `pgml_kit.backfill_checkpoints` records where to resume.
 * `queue`/`app` columns are embedded locally; `trigger`/`generated` columns by the database's
 * pgml.embed.
 */
export async function backfill(options: BackfillOptions): Promise<BackfillResult> {
  const { column } = options
  const all = options.all ?? false
  const started = performance.now()
  const inDatabase = column.mode === 'trigger' || column.mode === 'generated'
  const client = new pg.Client({ connectionString: options.url, application_name: 'pgml-kit backfill' })
  await client.connect()
  try {
    if (inDatabase && !canEmbedInDatabase(await detectCapabilities(client))) {
      throw new PgmlKitError('PGML_MISSING', `${column.table}.${column.column} (mode "${column.mode}") is embedded by pgml.embed, which this target does not have`, { hint: 'run it against a server with PostgresML or pgml_compat' })
    }
    const embedder = inDatabase ? undefined : await (options.loadEmbedder ?? (() => { throw new PgmlKitError('EMBEDDER_REQUIRED', 'a local embedder is needed for this column') }))()
    const vectorSchema = (await client.query<{ schema: string }>(VECTOR_SCHEMA)).rows[0]?.schema ?? 'public'
    const identity = [column.schema, column.table, column.column]

    let lastKey: Record<string, unknown> | null = null
    let done = 0
    if (all) {
      if (options.restart) await client.query(CLEAR_CHECKPOINT, identity)
      const checkpoint = (await client.query<{ last_key: Record<string, unknown>; rows_done: string }>(READ_CHECKPOINT, identity)).rows[0]
      if (checkpoint) {
        lastKey = checkpoint.last_key
        done = Number(checkpoint.rows_done)
      }
    }
    const remaining = Number((await client.query<{ n: string }>(renderCountRows(column, all), [lastKey])).rows[0]?.n ?? 0)
    const total = done + remaining
    options.onProgress?.({ total, done })
    let written = 0
    let skipped = 0
    const failed: { key: unknown; error: string }[] = []
    let failedCount = 0
    const batchSize = options.batchSize ?? 64

    while (!options.signal?.aborted) {
      const rows = (await client.query<Row>(renderSelectBatch(column, all), [lastKey, batchSize])).rows
      if (rows.length === 0) break
      let batchWritten = 0
      if (embedder) {
        const withText = rows.filter((r) => r.source_text !== null)
        const vectors = await embedIsolating(embedder, withText.map((r) => r.source_text as string))
        const keys: string[] = []
        const md5s: (string | null)[] = []
        const values: (string | null)[] = []
        for (const row of rows) {
          const index = withText.indexOf(row)
          const vector = index >= 0 ? vectors[index] : null
          if (vector instanceof Error) {
            failedCount++
            if (failed.length < 20) failed.push({ key: row.key, error: vector.message })
            continue
          }
          keys.push(JSON.stringify(row.key))
          md5s.push(row.source_md5)
          values.push(vector ? toVectorLiteral(vector) : null)
        }
        await client.query('BEGIN')
        try {
          if (keys.length > 0) batchWritten = (await client.query(renderWriteBackfill(column, vectorSchema), [keys, md5s, values])).rowCount ?? 0
          skipped += keys.length - batchWritten
          if (all) await client.query(SAVE_CHECKPOINT, [...identity, JSON.stringify(rows.at(-1)?.key), done + rows.length])
          await client.query('COMMIT')
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined)
          throw error
        }
      } else {
        await client.query('BEGIN')
        try {
          batchWritten = (await client.query(renderDatabaseBackfill(column), [rows.map((r) => JSON.stringify(r.key))])).rowCount ?? 0
          if (all) await client.query(SAVE_CHECKPOINT, [...identity, JSON.stringify(rows.at(-1)?.key), done + rows.length])
          await client.query('COMMIT')
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined)
          throw error
        }
      }
      written += batchWritten
      done += rows.length
      lastKey = rows.at(-1)?.key ?? lastKey
      options.onProgress?.({ total, done })
    }
    const interrupted = options.signal?.aborted ?? false
    if (all && !interrupted) await client.query(CLEAR_CHECKPOINT, identity)
    return {
      column: `${column.schema}.${column.table}.${column.column}`, how: inDatabase ? 'database' : 'local',
      total, done, written, skipped, failed, failedCount, interrupted, seconds: (performance.now() - started) / 1000,
    }
  } finally {
    await client.end().catch(() => undefined)
  }
}
