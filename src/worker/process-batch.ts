import type pg from 'pg'
import type { Embedder } from '../embed/embedder.js'
import { embedIsolating, toVectorLiteral } from '../embed/embedder.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import {
  DEAD_LETTER_JOBS, DELETE_LEASED_JOBS, FAIL_JOBS, RELEASE_LEASES,
  renderClaimJobs, renderFetchSources, renderWriteVectors,
} from '../sql/render-worker.js'

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

function errorText(error: unknown): string {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  return message.slice(0, 2000)
}

/**
 * One round of the queue protocol for one column: lease due jobs (FOR UPDATE SKIP LOCKED),
 * read their rows' current source text, embed it outside any transaction, then write every vector
 * and complete the jobs in one statement that skips rows whose source changed meanwhile.
 * Failures are recorded with back-off; a job that has failed `maxAttempts` times is dead-lettered.
 * A worker killed at any point loses no job: its lease simply expires.
 */
export async function processBatch(client: pg.ClientBase, column: EmbeddingColumnNode, embedder: Embedder, settings: BatchSettings): Promise<BatchResult> {
  const { workerId } = settings
  const claimed = (await client.query<{ id: string; generation: string }>(renderClaimJobs(column), [settings.batchSize, settings.leaseSeconds, workerId])).rows
  if (claimed.length === 0) return EMPTY_BATCH
  const ids = claimed.map((j) => j.id)
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
    if (gone.length > 0) completed += (await client.query(DELETE_LEASED_JOBS, [gone, workerId])).rowCount ?? 0

    const withText = jobs.filter((j) => j.text !== null)
    const vectors = await embedIsolating(embedder, withText.map((j) => j.text as string))
    const results = new Map<string, Float32Array | Error>(withText.map((j, i) => [j.id, vectors[i] ?? new Error('embedder returned too few vectors')]))

    const ok: { job: Job; vector: string | null }[] = []
    const failures: { id: string; error: string }[] = []
    for (const job of jobs) {
      const result = job.text === null ? null : results.get(job.id)
      if (result instanceof Error) failures.push({ id: job.id, error: errorText(result) })
      else if (result && result.length !== column.model.dimensions) failures.push({ id: job.id, error: `model returned ${result.length} dimensions, column has ${column.model.dimensions}` })
      else ok.push({ job, vector: result ? toVectorLiteral(result) : null })
    }

    let written = 0
    if (ok.length > 0) {
      const { rows } = await client.query<{ written: number; completed: number }>(renderWriteVectors(column, settings.vectorSchema), [
        ok.map((o) => o.job.id), ok.map((o) => o.job.generation), ok.map((o) => o.job.md5), ok.map((o) => o.vector), workerId,
      ])
      written = rows[0]?.written ?? 0
      completed += rows[0]?.completed ?? 0
    }
    let deadLettered = 0
    if (failures.length > 0) {
      await client.query('BEGIN')
      try {
        await client.query(FAIL_JOBS, [failures.map((f) => f.id), failures.map((f) => f.error), workerId, settings.backoffBaseSeconds, settings.backoffMaxSeconds])
        deadLettered = (await client.query(DEAD_LETTER_JOBS, [failures.map((f) => f.id), settings.maxAttempts])).rowCount ?? 0
        await client.query('COMMIT')
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined)
        throw error
      }
    }
    return { claimed: claimed.length, written, completed, stale: ok.length - written, failed: failures.length, deadLettered }
  } finally {
    // Whatever is still leased (stale writes, or an error above) is given back at once.
    await client.query(RELEASE_LEASES, [ids, workerId]).catch(() => undefined)
  }
}
