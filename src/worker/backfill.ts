import type pg from 'pg'
import { embedForColumn, type Embedder } from '../embed/embedder.js'
import { encodeVectorBatch } from '../sql/vector-batch.js'
import { PgmlKitError } from '../errors.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import {
  CLEAR_CHECKPOINT, READ_CHECKPOINT, SAVE_CHECKPOINT,
  renderCountRows, renderDatabaseBackfill, renderLastKey, renderSelectBatch, renderWriteBackfill,
} from '../sql/render-backfill.js'
import { VECTOR_SCHEMA } from '../sql/render-worker.js'
import { detectCapabilities, canEmbedInDatabase } from '../db/capabilities.js'
import { isConnectionLost, toConnector, type Connector } from '../db/connect.js'
import { CatalogChanged, backoffMs, errorText, isRenamedAway, retryTransient, sleep, writeIsolating } from './resilience.js'
import { readLiveColumns } from '../db/live-catalog.js'
import { columnKey, columnLabel } from '../model/ir.js'
import { renderCatalogUnchanged } from '../sql/render-catalog.js'

export interface BackfillOptions {
  /** The database: a connection string, or a `Target`. */
  readonly url: string | Connector
  /**
   * The column to fill. It is filled as the `pgml_kit` catalog describes it (during a staged model
   * change the config names the new model while the live column still holds the old one), and
   * every write checks that the catalog still says so; a role that cannot read the catalog fills
   * it as given.
   */
  readonly column: EmbeddingColumnNode
  /** Needed for `queue` and `app` columns (vectors are computed locally); called with the column as the catalog has it. */
  readonly loadEmbedder?: (column: EmbeddingColumnNode) => Promise<Embedder>
  /** Every row, not only rows without a vector. Resumes an interrupted `all` run unless `restart`. */
  readonly all?: boolean
  readonly restart?: boolean
  readonly batchSize?: number
  readonly signal?: AbortSignal
  readonly onProgress?: (progress: BackfillProgress) => void
  /** Told when the connection was lost and backfill connects again to go on (from the first row not yet written). */
  readonly onReconnect?: (error: Error) => void
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
  /** Rows that could not be embedded or written, with the error (first 20); `key` is the row's key as JSON text. */
  readonly failed: readonly { readonly key: string; readonly error: string }[]
  readonly failedCount: number
  readonly interrupted: boolean
  readonly seconds: number
}

/** A row to embed; `key` is jsonb text, so keys of any type stay exact. */
interface Row { key: string; source_text: string | null; source_md5: string | null }
interface Ready { key: string; md5: string | null; vector: Float32Array | null }

/** Embeds a batch's texts; a row the model refuses (or whose vector cannot be stored) is reported through `fail` and left out. */
async function embedRows(embedder: Embedder, rows: readonly Row[], dimensions: number, fail: (key: string, error: string) => void): Promise<Ready[]> {
  const vectors = await embedForColumn(embedder, rows.map((r) => r.source_text), dimensions)
  const ready: Ready[] = []
  rows.forEach((row, i) => {
    const vector = vectors[i] ?? null
    if (vector instanceof Error) fail(row.key, errorText(vector))
    else ready.push({ key: row.key, md5: row.source_md5, vector })
  })
  return ready
}

/**
 * Fills missing vectors (or, with `all`, recomputes every vector) in committed batches, in key
 * order. Without `all` it is resumable by nature (done rows no longer match); with `all` a
 * checkpoint in `pgml_kit.backfill_checkpoints` records where to resume.
 * `queue`/`app` columns are embedded locally; `trigger`/`generated` columns by the database's
 * pgml.embed. A row the model or the database refuses is reported and skipped; the others go on.
 */
export async function backfill(options: BackfillOptions): Promise<BackfillResult> {
  const all = options.all ?? false
  const started = performance.now()
  const connector = toConnector(options.url)
  // A lost connection — a server restarting, a backend terminated, the process serving the embedded
  // database gone (the target then takes it over) — is not the end: every batch before it is
  // committed, so backfill connects again and goes on. Without `all`, the rows done no longer
  // match; with `all`, the checkpoint says where. What each run did adds up.
  let sum: BackfillResult | null = null
  let endKey: string | null | undefined
  for (let failuresInARow = 0; ; failuresInARow++) {
    let client: pg.Client | undefined
    try {
      client = await connector.connect('pgml-kit backfill')
      const result: BackfillResult = await fill(client, { ...options, restart: sum === null && options.restart === true }, all, started, sum, endKey, (key) => { endKey = key })
      return result
    } catch (error) {
      const partial = error instanceof PartialBackfill ? error : null
      const lost = partial !== null || isConnectionLost(error) || isConnectionLost((error as { cause?: unknown }).cause)
      if (!lost) {
        if (!(error instanceof CatalogChanged)) throw error
        throw new PgmlKitError('CATALOG_CHANGED', `${columnLabel(options.column)} was changed by a migration while it was being filled (a staged model change switched it, say); every batch before was written`, {
          hint: 'run pgml-kit backfill again: it fills the column as the catalog has it now', cause: error,
        })
      }
      if (partial) sum = partial.sofar
      if (options.signal?.aborted) {
        if (sum) return { ...sum, interrupted: true }
        throw partial?.cause ?? error
      }
      options.onReconnect?.((partial?.cause ?? error) as Error)
      await sleep(backoffMs(Math.min(failuresInARow, 5), 250, 5_000), options.signal)
    } finally {
      await client?.end().catch(() => undefined)
    }
  }
}

/** Thrown by `fill` when the connection is lost: what was committed so far, to go on from. */
class PartialBackfill extends Error {
  constructor(readonly sofar: BackfillResult, cause: unknown) {
    super('the connection was lost', { cause })
  }
}

/**
 * One run of backfill on one connection. `before` is what earlier runs (ended by a lost
 * connection) committed; `endKey` where the first run decided to end (undefined: decide now).
 */
async function fill(client: pg.Client, options: BackfillOptions, all: boolean, started: number, before: BackfillResult | null,
  endKeyBefore: string | null | undefined, setEndKey: (key: string | null) => void): Promise<BackfillResult> {
  const live = await readLiveColumns(client, [options.column])
  const own = live?.find((l) => columnKey(l.node) === columnKey(options.column))
  const column = own?.node ?? options.column
  // The catalog row the vectors are computed for (null: none yet); undefined: the catalog cannot be read, writes are not guarded.
  const fingerprint = live === null ? undefined : own?.fingerprint ?? null
  const guarded = fingerprint !== undefined
  const inDatabase = column.mode === 'trigger' || column.mode === 'generated'
  /** A batch wrote nothing: was it because a migration changed the column's catalog row? */
  const catalogMoved = async () => guarded && (await client.query<{ ok: boolean }>(renderCatalogUnchanged(column), [fingerprint])).rows[0]?.ok === false
  const write = <R>(run: () => Promise<R>) => run().catch((error: unknown) => {
    throw guarded && isRenamedAway(error) ? new CatalogChanged(error) : error
  })
  if (inDatabase && !canEmbedInDatabase(await detectCapabilities(client))) {
    throw new PgmlKitError('PGML_MISSING', `${column.table}.${column.column} (mode "${column.mode}") is embedded by pgml.embed, which this target does not have`, { hint: 'run it against a server with PostgresML or pgml_compat' })
  }
  if (!inDatabase && !options.loadEmbedder) throw new PgmlKitError('EMBEDDER_REQUIRED', 'a local embedder is needed for this column')
  const embedder = inDatabase ? undefined : await options.loadEmbedder!(column)
  const vectorSchema = (await client.query<{ schema: string }>(VECTOR_SCHEMA)).rows[0]?.schema ?? 'public'
  const identity = [column.schema, column.table, column.column]

  let lastKey: string | null = null
  let done = 0
  if (all) {
    if (options.restart) await client.query(CLEAR_CHECKPOINT, identity)
    const checkpoint = (await client.query<{ last_key: string; rows_done: string }>(READ_CHECKPOINT, identity)).rows[0]
    if (checkpoint) {
      lastKey = checkpoint.last_key
      done = Number(checkpoint.rows_done)
    }
  }
  // Where this run ends: the last row when the first run started. Rows inserted meanwhile have their own path.
  const endKey = endKeyBefore !== undefined ? endKeyBefore : (await client.query<{ key: string }>(renderLastKey(column))).rows[0]?.key ?? null
  setEndKey(endKey)
  const remaining = Number((await client.query<{ n: string }>(renderCountRows(column, all), [lastKey, endKey])).rows[0]?.n ?? 0)
  // Without `all` the rows earlier runs filled no longer count as remaining: they count as done.
  if (!all && before) done = before.done
  const total = done + remaining
  options.onProgress?.({ total, done })
  let written = before?.written ?? 0
  let skipped = before?.skipped ?? 0
  const failed: { key: string; error: string }[] = [...(before?.failed ?? [])]
  let failedCount = before?.failedCount ?? 0
  const fail = (key: string, error: string) => {
    failedCount++
    if (failed.length < 20) failed.push({ key, error })
  }
  const batchSize = options.batchSize ?? 64

  const select = (after: string | null) => retryTransient(() => client.query<Row>(renderSelectBatch(column, all), [after, batchSize, endKey])).then((r) => r.rows)
  /** Writes one embedded (or, in the database, to-be-embedded) batch, then records it done. */
  const commit = async (rows: readonly Row[], ready: readonly Ready[] | null) => {
    const last = rows.at(-1) as Row
    let attempted: number
    let batchWritten: number
    if (ready) {
      const outcome = await writeIsolating(ready, (items) => {
        const batch = encodeVectorBatch(items.map((r) => r.vector), column.model.dimensions)
        return write(() => client.query(renderWriteBackfill(column, vectorSchema, guarded), [items.map((r) => r.key), items.map((r) => r.md5), batch.flat, batch.present, ...(guarded ? [fingerprint] : [])]).then((r) => r.rowCount ?? 0))
      })
      for (const f of outcome.failed) fail(f.item.key, f.error)
      batchWritten = outcome.results.reduce((n, r) => n + r, 0)
      attempted = ready.length - outcome.failed.length
    } else {
      const outcome = await writeIsolating(rows, (items) => write(() => client.query(renderDatabaseBackfill(column, vectorSchema, guarded), [items.map((r) => r.key), ...(guarded ? [fingerprint] : [])]).then((r) => r.rowCount ?? 0)))
      for (const f of outcome.failed) fail(f.item.key, f.error)
      batchWritten = outcome.results.reduce((n, r) => n + r, 0)
      // A trigger column's row whose source changed while its vector was computed keeps the one its own trigger wrote.
      attempted = column.mode === 'trigger' ? rows.length - outcome.failed.length : batchWritten
    }
    if (batchWritten === 0 && attempted > 0 && await catalogMoved()) throw new CatalogChanged()
    skipped += attempted - batchWritten
    if (all) await retryTransient(() => client.query(SAVE_CHECKPOINT, [...identity, last.key, done + rows.length]))
    written += batchWritten
    done += rows.length
    options.onProgress?.({ total, done })
  }

  const sofar = (): BackfillResult => ({
    column: `${column.schema}.${column.table}.${column.column}`, how: inDatabase ? 'database' : 'local',
    total, done, written, skipped, failed, failedCount, interrupted: false, seconds: (performance.now() - started) / 1000,
  })
  try {
    await runBatches()
  } catch (error) {
    if (isConnectionLost(error)) throw new PartialBackfill(sofar(), error)
    throw error
  }
  const interrupted = options.signal?.aborted ?? false
  if (all && !interrupted) await client.query(CLEAR_CHECKPOINT, identity)
  return { ...sofar(), interrupted }

  async function runBatches(): Promise<void> {
  if (!embedder) {
    // pgml.embed runs in the database: one batch at a time, nothing to overlap.
    while (!options.signal?.aborted) {
      const rows = await select(lastKey)
      if (rows.length === 0) break
      await commit(rows, null)
      lastKey = (rows.at(-1) as Row).key
    }
  } else {
    // A pipeline: while the model embeds one batch (on onnxruntime's threads), the connection
    // writes the batch before it and reads the batch after it. Keys are read in order, so the
    // next batch is known before this one is written; a failed write stops the run with every
    // earlier batch committed (and, with `all`, checkpointed).
    let next: Promise<Row[]> | null = select(lastKey)
    let writing: Promise<void> = Promise.resolve()
    try {
      while (next) {
        const rows: Row[] = await next
        next = null
        if (rows.length === 0) break
        const embedding = embedRows(embedder, rows, column.model.dimensions, fail)
        if (!options.signal?.aborted) {
          const after: string = (rows.at(-1) as Row).key
          // Read ahead behind the write in flight (the same connection runs them in order).
          next = writing.then((): Promise<Row[]> => select(after))
          // Not awaited yet: if it fails, the write chain's rejection is what is reported.
          next.catch(() => undefined)
        }
        const ready = await embedding
        await writing
        // Stopped meanwhile: the batch just embedded is not written (it is read again on resume).
        if (options.signal?.aborted) break
        writing = commit(rows, ready)
      }
    } finally {
      await writing.catch(() => undefined)
    }
    await writing
  }
  }
}
