import { hostname } from 'node:os'
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import type { Embedder } from '../embed/embedder.js'
import { columnKey, type EmbeddingColumnNode } from '../model/ir.js'
import { VECTOR_SCHEMA } from '../sql/render-worker.js'
import { PgmlKitError } from '../errors.js'
import { EMPTY_BATCH, processBatch, type BatchResult, type BatchSettings } from './process-batch.js'

export interface WorkerOptions {
  /** Connection string of the target. */
  readonly url: string
  /** The `queue`-mode columns to serve. */
  readonly columns: readonly EmbeddingColumnNode[]
  /** Returns the embedder for a column (called once per column, before any job is claimed). */
  readonly loadEmbedder: (column: EmbeddingColumnNode) => Promise<Embedder>
  readonly batchSize?: number
  readonly leaseSeconds?: number
  readonly maxAttempts?: number
  readonly backoffBaseSeconds?: number
  readonly backoffMaxSeconds?: number
  /** Pause between polls of an empty queue. */
  readonly pollIntervalMs?: number
  /** Stop as soon as no job is due (drain and exit) instead of polling forever. */
  readonly once?: boolean
  /** Aborting finishes the batch in progress, then stops. */
  readonly signal?: AbortSignal
  readonly workerId?: string
  readonly onBatch?: (column: EmbeddingColumnNode, result: BatchResult) => void
}

export interface WorkerTotals extends BatchResult {
  readonly batches: number
}

function add(a: WorkerTotals, b: BatchResult): WorkerTotals {
  return {
    batches: a.batches + (b.claimed > 0 ? 1 : 0), claimed: a.claimed + b.claimed, written: a.written + b.written,
    completed: a.completed + b.completed, stale: a.stale + b.stale, failed: a.failed + b.failed, deadLettered: a.deadLettered + b.deadLettered,
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * Runs the queue worker: claims due jobs in batches (`FOR UPDATE SKIP LOCKED` plus a lease, so
 * any number of workers can run at once), embeds them with the local model, and writes them back.
 * Returns when `once` and the queue has nothing due, or when `signal` aborts (after the batch in
 * progress is written).
 *
 * @example
 * const controller = new AbortController()
 * process.once('SIGTERM', () => controller.abort())
 * await runWorker({ url, columns, loadEmbedder, signal: controller.signal })
 */
export async function runWorker(options: WorkerOptions): Promise<WorkerTotals> {
  if (options.columns.length === 0) {
    throw new PgmlKitError('NO_QUEUE_COLUMNS', 'the config has no embedding column with mode "queue", so the worker has nothing to do', { hint: 'set mode: "queue" on an embedding column, generate and migrate' })
  }
  // Load every model first: a wrong model or dimension stops the worker before it writes anything.
  const embedders = new Map<string, Embedder>()
  for (const column of options.columns) embedders.set(columnKey(column), await options.loadEmbedder(column))

  const client = new pg.Client({ connectionString: options.url, application_name: 'pgml-kit worker' })
  await client.connect()
  let totals: WorkerTotals = { batches: 0, ...EMPTY_BATCH }
  try {
    const { rows } = await client.query<{ schema: string }>(VECTOR_SCHEMA)
    const vectorSchema = rows[0]?.schema
    if (!vectorSchema) throw new PgmlKitError('PGVECTOR_MISSING', 'the target has no pgvector extension installed', { hint: 'run pgml-kit migrate first' })
    const settings: BatchSettings = {
      workerId: options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
      batchSize: options.batchSize ?? 32,
      leaseSeconds: options.leaseSeconds ?? 300,
      maxAttempts: options.maxAttempts ?? 5,
      backoffBaseSeconds: options.backoffBaseSeconds ?? 2,
      backoffMaxSeconds: options.backoffMaxSeconds ?? 600,
      vectorSchema,
    }
    while (!options.signal?.aborted) {
      let claimed = 0
      for (const column of options.columns) {
        if (options.signal?.aborted) break
        const embedder = embedders.get(columnKey(column)) as Embedder
        const result = await processBatch(client, column, embedder, settings)
        claimed += result.claimed
        totals = add(totals, result)
        if (result.claimed > 0) options.onBatch?.(column, result)
      }
      if (claimed === 0) {
        if (options.once) break
        await sleep(options.pollIntervalMs ?? 1000, options.signal)
      }
    }
    return totals
  } finally {
    await client.end().catch(() => undefined)
  }
}
