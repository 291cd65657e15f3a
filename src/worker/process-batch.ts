import type pg from 'pg'
import type { Embedder } from '../embed/embedder.js'
import { embedIsolating } from '../embed/embedder.js'
import { encodeVectorBatch, vectorProblem } from '../sql/vector-batch.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import {
  DEAD_LETTER_JOBS, DELETE_LEASED_JOBS, FAIL_JOBS, RELEASE_LEASES,
  renderClaimJobs, renderFetchSources, renderWriteVectors,
} from '../sql/render-worker.js'
import { errorText, retryTransient, writeIsolating } from './resilience.js'

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
  /** Told which jobs this worker holds, so a heartbeat can keep their leases alive. */
  readonly leases?: { hold(ids: readonly string[]): void; drop(ids: readonly string[]): void }
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
}

export const EMPTY_BATCH: BatchResult = { claimed: 0, written: 0, completed: 0, stale: 0, failed: 0, deadLettered: 0 }

interface Job { id: string; generation: string; text: string | null; md5: string | null }
interface Ready { job: Job; vector: Float32Array | null }

/** The vector, or why the model's output cannot be stored. */
function vectorOrError(result: Float32Array, dimensions: number): Float32Array | Error {
  return vectorProblem(result, dimensions) ?? result
}

/**
 * One round of the queue protocol for one column: lease due jobs (FOR UPDATE SKIP LOCKED),
 * read their rows' current source text, embed it outside any transaction, then write every vector
 * and complete the jobs in one statement that skips rows whose source changed meanwhile.
 *
 * Nothing a single row does can stall the others: a text the model fails on, a vector it returns
 * with NaN, a row the database refuses (a constraint, a user trigger) fails alone — the batch is
 * split until the row at fault is isolated — and is retried with back-off, then dead-lettered
 * after `maxAttempts`. Deadlocks and serialisation failures are retried. A lost connection is
 * thrown to the caller; the jobs' leases expire, or the caller gives them back when it reconnects.
 */
export async function processBatch(client: pg.ClientBase, column: EmbeddingColumnNode, embedder: Embedder, settings: BatchSettings): Promise<BatchResult> {
  const { workerId } = settings
  const claimed = (await retryTransient(() => client.query<{ id: string; generation: string }>(renderClaimJobs(column), [settings.batchSize, settings.leaseSeconds, workerId]))).rows
  if (claimed.length === 0) return EMPTY_BATCH
  const ids = claimed.map((j) => j.id)
  settings.leases?.hold(ids)
  try {
    const sources = new Map((await client.query<{ id: string; source_text: string | null; source_md5: string | null }>(renderFetchSources(column), [ids])).rows.map((r) => [r.id, r]))
    const jobs: Job[] = []
    const gone: string[] = []
    for (const job of claimed) {
      const source = sources.get(job.id)
      if (!source) gone.push(job.id)
      else jobs.push({ id: job.id, generation: job.generation, text: source.source_text, md5: source.source_md5 })
    }
    let completed = 0
    if (gone.length > 0) completed += (await retryTransient(() => client.query(DELETE_LEASED_JOBS, [gone, workerId]))).rowCount ?? 0

    const withText = jobs.filter((j) => j.text !== null)
    const vectors = await embedIsolating(embedder, withText.map((j) => j.text as string))
    const results = new Map<string, Float32Array | Error>(withText.map((j, i) => [j.id, vectors[i] ?? new Error('embedder returned too few vectors')]))

    const ready: Ready[] = []
    const failures: { id: string; error: string }[] = []
    for (const job of jobs) {
      const result = job.text === null ? null : results.get(job.id)
      const vector = result === null || result === undefined ? null : result instanceof Error ? result : vectorOrError(result, column.model.dimensions)
      if (vector instanceof Error) failures.push({ id: job.id, error: errorText(vector) })
      else ready.push({ job, vector })
    }

    const write = (items: readonly Ready[]) => {
      const batch = encodeVectorBatch(items.map((o) => o.vector), column.model.dimensions)
      return client.query<{ written: number; completed: number }>(renderWriteVectors(column, settings.vectorSchema), [
        items.map((o) => o.job.id), items.map((o) => o.job.generation), items.map((o) => o.job.md5), batch.flat, workerId, batch.present,
      ]).then((r) => r.rows[0] ?? { written: 0, completed: 0 })
    }
    const outcome = await writeIsolating(ready, write)
    const written = outcome.results.reduce((n, r) => n + r.written, 0)
    completed += outcome.results.reduce((n, r) => n + r.completed, 0)
    for (const { item, error } of outcome.failed) failures.push({ id: item.job.id, error })

    let deadLettered = 0
    if (failures.length > 0) {
      deadLettered = await retryTransient(async () => {
        await client.query('BEGIN')
        try {
          await client.query(FAIL_JOBS, [failures.map((f) => f.id), failures.map((f) => f.error), workerId, settings.backoffBaseSeconds, settings.backoffMaxSeconds])
          const dead = (await client.query(DEAD_LETTER_JOBS, [failures.map((f) => f.id), settings.maxAttempts])).rowCount ?? 0
          await client.query('COMMIT')
          return dead
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined)
          throw error
        }
      })
    }
    return { claimed: claimed.length, written, completed, stale: ready.length - written - outcome.failed.length, failed: failures.length, deadLettered }
  } finally {
    settings.leases?.drop(ids)
    // Whatever is still leased (stale writes, or an error above) is given back at once.
    await client.query(RELEASE_LEASES, [ids, workerId]).catch(() => undefined)
  }
}
