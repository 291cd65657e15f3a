import type pg from 'pg'
import type { Embedder } from '../embed/embedder.js'
import { embedForColumn } from '../embed/embedder.js'
import { encodeVectorBatch } from '../sql/vector-batch.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import {
  DEAD_LETTER_JOBS, DELETE_LEASED_JOBS, FAIL_JOBS, RELEASE_LEASES,
  renderClaimJobs, renderFetchSources, renderWriteVectors,
} from '../sql/render-worker.js'
import { CatalogChanged, errorText, isRenamedAway, retryTransient, writeIsolating } from './resilience.js'

export interface BatchSettings {
  readonly workerId: string
  readonly batchSize: number
  /** How long a claimed job stays reserved for this worker; after that another worker may take it. */
  readonly leaseSeconds: number
  readonly maxAttempts: number
  readonly backoffBaseSeconds: number
  readonly backoffMaxSeconds: number
  /** Schema of the pgvector extension (types are qualified with it). */
  readonly vectorSchema: string
  /**
   * Told which jobs this worker holds, so a heartbeat can keep their leases alive, and which leases
   * it could not give back (another transaction held the job), so they are given back later.
   */
  readonly leases?: {
    hold(ids: readonly string[]): void
    drop(ids: readonly string[]): void
    releaseLater?(ids: readonly string[]): void
  }
}

export interface BatchResult {
  readonly claimed: number
  /** Vectors written. */
  readonly written: number
  /** Jobs finished (written, or their row is gone). */
  readonly completed: number
  /** Jobs left for a newer change (the source changed while this batch embedded). */
  readonly stale: number
  readonly failed: number
  readonly deadLettered: number
  /**
   * The column's catalog row changed between the claim and the write (a migration switched or
   * changed the column): nothing was written, the jobs stay queued, and the worker reads the
   * catalog again before its next claim.
   */
  readonly catalogChanged?: boolean
  /** Why each failed job failed (its id in pgml_kit.embedding_jobs, or the dead letters when dead-lettered). */
  readonly failures?: readonly { readonly jobId: string; readonly error: string }[]
}

export const EMPTY_BATCH: BatchResult = { claimed: 0, written: 0, completed: 0, stale: 0, failed: 0, deadLettered: 0 }

export interface Job { readonly id: string; readonly generation: string; readonly text: string | null; readonly md5: string | null }
export interface Ready { readonly job: Job; readonly vector: Float32Array | null }


/** Jobs leased for one column, with their rows' current source text. Their leases are held until `finishBatch`. */
export interface ClaimedBatch {
  readonly column: EmbeddingColumnNode
  /**
   * The fingerprint of the column's catalog row the column was read from (null: the catalog has
   * no row for it), or undefined: not read from the catalog, the write is not guarded.
   */
  readonly fingerprint?: string | null
  readonly ids: readonly string[]
  readonly jobs: readonly Job[]
  /** Jobs finished at claim time because their row is gone. */
  readonly completed: number
  /**
   * Jobs whose row could not be read: a key the table's key cannot take (written by hand into the
   * queue, or the key's type changed since). They fail like a text the model fails on — retried
   * with back-off, then dead-lettered — and never hold up the rest of the queue.
   */
  readonly unreadable?: readonly { readonly id: string; readonly error: string }[]
}

/** A claimed batch after the model: vectors ready to write, and the jobs that failed. */
export interface EmbeddedBatch {
  readonly claimed: ClaimedBatch
  readonly ready: readonly Ready[]
  readonly failures: readonly { readonly id: string; readonly error: string }[]
}

/** Leases due jobs of `column` (FOR UPDATE SKIP LOCKED) and reads their rows' source text; null when none are due (or a migration just renamed the table or a column away from a guarded claim). */
export async function claimBatch(client: pg.ClientBase, column: EmbeddingColumnNode, settings: BatchSettings, fingerprint?: string | null): Promise<ClaimedBatch | null> {
  const { workerId } = settings
  const claimed = (await retryTransient(() => client.query<{ id: string; generation: string }>(renderClaimJobs(column), [settings.batchSize, settings.leaseSeconds, workerId]))).rows
  if (claimed.length === 0) return null
  const ids = claimed.map((j) => j.id)
  settings.leases?.hold(ids)
  try {
    type Source = { id: string; source_text: string | null; source_md5: string | null }
    const fetch = async (batch: readonly string[]) => (await client.query<Source>(renderFetchSources(column), [batch])).rows
    const unreadable: { id: string; error: string }[] = []
    let rows: Source[]
    try {
      rows = await fetch(ids)
    } catch (error) {
      if (!isRowError(error)) throw error
      // One job's key fails the whole read: read them one by one, and fail only those that fail alone.
      rows = []
      for (const id of ids) {
        try {
          rows.push(...await fetch([id]))
        } catch (alone) {
          if (!isRowError(alone)) throw alone
          unreadable.push({ id, error: `its row could not be read: ${errorText(alone)}` })
        }
      }
    }
    const sources = new Map(rows.map((r) => [r.id, r]))
    const failedIds = new Set(unreadable.map((u) => u.id))
    const jobs: Job[] = []
    const gone: string[] = []
    for (const job of claimed) {
      const source = sources.get(job.id)
      if (failedIds.has(job.id)) continue
      if (!source) gone.push(job.id)
      else jobs.push({ id: job.id, generation: job.generation, text: source.source_text, md5: source.source_md5 })
    }
    const completed = gone.length > 0 ? (await retryTransient(() => client.query(DELETE_LEASED_JOBS, [gone, workerId]))).rowCount ?? 0 : 0
    return { column, ids, jobs, completed, ...(unreadable.length > 0 ? { unreadable } : {}), ...(fingerprint === undefined ? {} : { fingerprint }) }
  } catch (error) {
    await releaseBatch(client, ids, settings)
    // A migration renamed the table (or a column) between the claim and the read: the jobs, given
    // back, wait under the new name; the worker reads the catalog again before it claims more.
    if (fingerprint !== undefined && isRenamedAway(error)) return null
    throw error
  }
}

/**
 * An error one row's data can cause (a data exception, SQLSTATE class 22: a key that does not
 * cast, a value out of range) as opposed to a lost connection, a missing table or a type mismatch
 * in the statement, which no job is to blame for.
 */
function isRowError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('22')
}

/** Runs the model on a claimed batch; touches no database. A text the model fails on fails alone. */
export async function embedBatch(claimed: ClaimedBatch, embedder: Embedder): Promise<EmbeddedBatch> {
  const { jobs, column } = claimed
  const vectors = await embedForColumn(embedder, jobs.map((j) => j.text), column.model.dimensions)
  const ready: Ready[] = []
  const failures: { id: string; error: string }[] = [...(claimed.unreadable ?? [])]
  jobs.forEach((job, i) => {
    const vector = vectors[i] ?? null
    if (vector instanceof Error) failures.push({ id: job.id, error: errorText(vector) })
    else ready.push({ job, vector })
  })
  return { claimed, ready, failures }
}

/**
 * Gives back whatever leases of these jobs this worker still holds, without waiting for a job
 * another transaction holds (a writer re-queuing it): those are handed to `settings.leases`
 * to give back later, or otherwise run out. Returns the ids not given back.
 */
export async function releaseBatch(client: pg.ClientBase, ids: readonly string[], settings: BatchSettings): Promise<readonly string[]> {
  settings.leases?.drop(ids)
  if (ids.length === 0) return []
  try {
    const held = (await client.query<{ id: string }>(RELEASE_LEASES, [ids, settings.workerId])).rows.map((r) => r.id)
    if (held.length > 0) settings.leases?.releaseLater?.(held)
    return held
  } catch {
    // A lost connection: the leases run out, or the worker gives all of them back when it reconnects.
    return ids
  }
}

/**
 * Writes an embedded batch's vectors and completes its jobs in one statement that skips rows whose
 * source changed meanwhile; records failures (retry with back-off, then the dead-letter table);
 * gives back every lease it still holds.
 */
export async function finishBatch(client: pg.ClientBase, embedded: EmbeddedBatch, settings: BatchSettings): Promise<BatchResult> {
  const { workerId } = settings
  const { column, ids, fingerprint } = embedded.claimed
  const guarded = fingerprint !== undefined
  try {
    const write = async (items: readonly Ready[]) => {
      const batch = encodeVectorBatch(items.map((o) => o.vector), column.model.dimensions)
      const parameters = [items.map((o) => o.job.id), items.map((o) => o.job.generation), items.map((o) => o.job.md5), batch.flat, workerId, batch.present, ...(guarded ? [fingerprint] : [])]
      const result = await client.query<{ written: number; completed: number; catalog_ok?: boolean }>(renderWriteVectors(column, settings.vectorSchema, guarded), parameters).catch((error: unknown) => {
        throw guarded && isRenamedAway(error) ? new CatalogChanged(error) : error
      })
      const row = result.rows[0] ?? { written: 0, completed: 0 }
      if (row.catalog_ok === false) throw new CatalogChanged()
      return row
    }
    let outcome
    try {
      outcome = await writeIsolating(embedded.ready, write)
    } catch (error) {
      if (!(error instanceof CatalogChanged)) throw error
      return { ...EMPTY_BATCH, claimed: ids.length, stale: embedded.ready.length, catalogChanged: true }
    }
    const written = outcome.results.reduce((n, r) => n + r.written, 0)
    const completed = embedded.claimed.completed + outcome.results.reduce((n, r) => n + r.completed, 0)
    const failures = [...embedded.failures]
    for (const { item, error } of outcome.failed) failures.push({ id: item.job.id, error })

    const deadLettered = await recordFailures(client, failures, settings)
    return {
      claimed: ids.length, written, completed, stale: embedded.ready.length - written - outcome.failed.length, failed: failures.length, deadLettered,
      ...(failures.length > 0 ? { failures: failures.map((f) => ({ jobId: f.id, error: f.error })) } : {}),
    }
  } finally {
    // Whatever is still leased (stale writes, or an error above) is given back at once.
    await releaseBatch(client, ids, settings)
  }
}

/**
 * One round of the queue protocol for one column: lease due jobs (FOR UPDATE SKIP LOCKED),
 * read their rows' current source text, embed it outside any transaction, then write every vector
 * and complete the jobs in one statement that skips rows whose source changed meanwhile.
 * (`runWorker` runs the same three steps pipelined: `claimBatch`, `embedBatch`, `finishBatch`.)
 *
 * Nothing a single row does can stall the others: a text the model fails on, a vector it returns
 * with NaN, a row the database refuses (a constraint, a user trigger) fails alone — the batch is
 * split until the row at fault is isolated — and is retried with back-off, then dead-lettered
 * after `maxAttempts`. Deadlocks and serialisation failures are retried. A lost connection is
 * thrown to the caller; the jobs' leases expire, or the caller gives them back when it reconnects.
 */
export async function processBatch(client: pg.ClientBase, column: EmbeddingColumnNode, embedder: Embedder, settings: BatchSettings): Promise<BatchResult> {
  const claimed = await claimBatch(client, column, settings)
  if (!claimed) return EMPTY_BATCH
  let embedded: EmbeddedBatch
  try {
    embedded = await embedBatch(claimed, embedder)
  } catch (error) {
    await releaseBatch(client, claimed.ids, settings)
    throw error
  }
  return finishBatch(client, embedded, settings)
}

/**
 * Records failed jobs in one transaction: each job's error, its next attempt after a back-off,
 * and those past `maxAttempts` moved to the dead letters. Returns how many were dead-lettered.
 */
export async function recordFailures(client: pg.ClientBase, failures: readonly { readonly id: string; readonly error: string }[], settings: BatchSettings): Promise<number> {
  if (failures.length === 0) return 0
  return retryTransient(async () => {
    await client.query('BEGIN')
    try {
      const recorded = (await client.query<{ id: string }>(FAIL_JOBS, [failures.map((f) => f.id), failures.map((f) => f.error), settings.workerId, settings.backoffBaseSeconds, settings.backoffMaxSeconds])).rows.map((r) => r.id)
      const dead = recorded.length === 0 ? 0 : (await client.query(DEAD_LETTER_JOBS, [recorded, settings.maxAttempts])).rowCount ?? 0
      await client.query('COMMIT')
      return dead
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw error
    }
  })
}
