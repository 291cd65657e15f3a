import { hostname } from 'node:os'
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import type { Embedder } from '../embed/embedder.js'
import type { ChunkedColumnNode, EmbeddingColumnNode } from '../model/ir.js'
import { processChunkBatch } from '../chunking/worker.js'
import { chunkSettingsGuard, servedChunkedColumns } from '../chunking/served.js'
import { EXTEND_LEASES, QUEUE_OUTLOOK, RELEASE_WORKER_LEASES, VECTOR_SCHEMA } from '../sql/render-worker.js'
import { PgmlKitError } from '../errors.js'
import { isConnectionLost, toConnector, type Connector } from '../db/connect.js'
import { EMPTY_BATCH, claimBatch, embedBatch, finishBatch, releaseBatch, type BatchResult, type BatchSettings, type ClaimedBatch, type EmbeddedBatch } from './process-batch.js'
import { backoffMs, sleep } from './resilience.js'
import { readLiveColumns } from '../db/live-catalog.js'
import { columnsOfConfig } from '../model/catalog-column.js'

export interface WorkerOptions {
  /** The database: a connection string, or a `Target` (which reconnects to the embedded database after its owner changes). */
  readonly url: string | Connector
  /**
   * The config's columns to serve. The worker serves them as the `pgml_kit` catalog describes them
   * (the model the database holds, not necessarily the config's during a staged model change),
   * with the extra columns of their staged model changes, in mode `queue`; it reads the catalog
   * again after every round, and at once when a migration changed a column it was embedding. A
   * role that cannot read the catalog is served the columns as given.
   */
  readonly columns: readonly EmbeddingColumnNode[]
  /** Returns the embedder for a column (called once per model, before any of its jobs is claimed). */
  readonly loadEmbedder: (column: EmbeddingColumnNode) => Promise<Embedder>
  /**
   * The config's chunked columns (mode `queue` ones are served: split, embedded where the text is
   * new, synced), and the embedder for each (`localEmbedderLoader` serves both).
   */
  readonly chunked?: readonly ChunkedColumnNode[]
  readonly loadChunkEmbedder?: (column: ChunkedColumnNode) => Promise<Embedder>
  /** Told after each batch of a chunked column (`written`: chunks embedded). */
  readonly onChunkBatch?: (column: ChunkedColumnNode, result: BatchResult) => void
  readonly batchSize?: number
  /** Seconds a claimed job stays reserved without a heartbeat (default 30); a live worker renews it every third of that. */
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
  /** Told when the connection was lost and the worker reconnects (it goes on by itself). */
  readonly onReconnect?: (error: Error) => void
  /**
   * Seconds the worker keeps trying to reach a database it has not reached yet (nothing listening,
   * a server starting up) before it gives up with that error (default 60; 0 gives up at the first
   * failure). Once it has connected, a lost connection is retried for as long as it takes.
   */
  readonly startupWaitSeconds?: number
  /** Told when the database could not be reached yet at start-up and the worker tries again after `delayMs`. */
  readonly onStartupRetry?: (error: Error, delayMs: number) => void
}

/** Jobs a drained worker (`once`) leaves for later: leased by others, or waiting for a retry. */
export interface QueueOutlook {
  /** Jobs leased by other (possibly dead) workers. */
  readonly leasedElsewhere: number
  /** Seconds until the last of those leases ends (then any worker may take them), or null. */
  readonly leasesEndInSeconds: number | null
  /** Jobs waiting for their next attempt after a failure. */
  readonly waitingForRetry: number
  /** Seconds until the next of those is due, or null. */
  readonly nextRetryInSeconds: number | null
}

export interface WorkerTotals extends Omit<BatchResult, 'catalogChanged' | 'failures'> {
  readonly batches: number
  readonly reconnects: number
  /** Batches that found their column changed by a migration (nothing written; embedded again with the catalog's model). */
  readonly catalogChanges: number
  /** With `once`: what is left that was not due. */
  readonly outlook: QueueOutlook | null
}

function add(a: WorkerTotals, b: BatchResult): WorkerTotals {
  return {
    ...a,
    batches: a.batches + (b.claimed > 0 ? 1 : 0), claimed: a.claimed + b.claimed, written: a.written + b.written,
    completed: a.completed + b.completed, stale: a.stale + b.stale, failed: a.failed + b.failed, deadLettered: a.deadLettered + b.deadLettered,
    catalogChanges: a.catalogChanges + (b.catalogChanged ? 1 : 0),
  }
}

/** Keeps the leases of the jobs a worker is working on alive, on a timer. */
class LeaseHeartbeat {
  readonly #held = new Set<string>()
  #timer: NodeJS.Timeout | undefined
  #client: pg.Client | undefined

  constructor(private readonly workerId: string, private readonly leaseSeconds: number) {}

  start(client: pg.Client): void {
    this.#client = client
    this.#timer ??= setInterval(() => {
      const ids = [...this.#held]
      if (ids.length === 0 || !this.#client) return
      // A failed heartbeat is harmless: the lease runs out later, and the write checks the lease.
      this.#client.query(EXTEND_LEASES, [ids, this.workerId, this.leaseSeconds]).catch(() => undefined)
    }, Math.max(250, (this.leaseSeconds * 1000) / 3))
    this.#timer.unref()
  }

  hold(ids: readonly string[]): void {
    for (const id of ids) this.#held.add(id)
  }

  drop(ids: readonly string[]): void {
    for (const id of ids) this.#held.delete(id)
  }

  /** Leases not given back because a writer held the job at that moment: given back before the next claim. */
  readonly #unreleased = new Set<string>()

  releaseLater(ids: readonly string[]): void {
    for (const id of ids) this.#unreleased.add(id)
  }

  /** The leases to give back now: not those of jobs claimed again since (their lease ran out meanwhile). */
  takeUnreleased(): string[] {
    const ids = [...this.#unreleased].filter((id) => !this.#held.has(id))
    this.#unreleased.clear()
    return ids
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }
}

async function readOutlook(client: pg.Client, columns: readonly Pick<EmbeddingColumnNode, 'schema' | 'table' | 'column'>[]): Promise<QueueOutlook> {
  const { rows } = await client.query<{ leased: number; leases_end_in: number | null; waiting: number; next_due_in: number | null }>(QUEUE_OUTLOOK, [
    columns.map((c) => c.schema), columns.map((c) => c.table), columns.map((c) => c.column),
  ])
  const row = rows[0]
  return {
    leasedElsewhere: row?.leased ?? 0, leasesEndInSeconds: row?.leases_end_in ?? null,
    waitingForRetry: row?.waiting ?? 0, nextRetryInSeconds: row?.next_due_in ?? null,
  }
}

/** Connects again, waiting out a server that is restarting (or an embedded owner being replaced) until `signal` aborts. */
async function reconnect(connector: Connector, signal: AbortSignal | undefined, pause: () => number): Promise<pg.Client> {
  for (;;) {
    await sleep(pause(), signal)
    try {
      return await connector.connect('pgml-kit worker')
    } catch (error) {
      if (signal?.aborted || !isConnectionLost((error as { cause?: unknown }).cause)) throw error
    }
  }
}

/**
 * Runs the queue worker: claims due jobs in batches (`FOR UPDATE SKIP LOCKED` plus a lease, so
 * any number of workers can run at once), embeds them with the local model, and writes them back.
 * Returns when `once` and the queue has nothing due, or when `signal` aborts (after the batch in
 * progress is written). A lost connection is not the end: it reconnects (on the embedded database,
 * to the next owner, or it becomes the owner) and goes on.
 *
 * @example
 * const controller = new AbortController()
 * process.once('SIGTERM', () => controller.abort())
 * await runWorker({ url, columns, loadEmbedder, signal: controller.signal })
 */
export async function runWorker(options: WorkerOptions): Promise<WorkerTotals> {
  const connector = toConnector(options.url)
  const workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
  const leaseSeconds = options.leaseSeconds ?? 30
  const heartbeat = new LeaseHeartbeat(workerId, leaseSeconds)
  let client: pg.Client | undefined
  let totals: WorkerTotals = { batches: 0, reconnects: 0, catalogChanges: 0, outlook: null, ...EMPTY_BATCH }
  // One embedder per model (a staged model change serves two); loaded before any of its jobs is claimed,
  // so a wrong model or dimension stops the worker before it writes anything.
  const embedders = new Map<string, Embedder>()
  const modelKey = (column: { model: unknown }) => JSON.stringify(column.model)
  /** What the worker serves; `fingerprint` undefined: not from the catalog (it cannot be read), the writes are not guarded. */
  let served: readonly { readonly node: EmbeddingColumnNode; readonly fingerprint?: string | null }[] = []
  let catalogChanged = false
  const chunked = (options.chunked ?? []).filter((c) => c.mode === 'queue')
  const chunkEmbedders = new Map<string, Embedder>()
  const loadChunkEmbedders = async () => {
    for (const node of chunked) {
      if (chunkEmbedders.has(modelKey(node))) continue
      if (!options.loadChunkEmbedder) throw new PgmlKitError('NO_CHUNK_EMBEDDER', `the worker serves the chunked column ${node.table}.${node.column} and was given no loadChunkEmbedder`)
      chunkEmbedders.set(modelKey(node), await options.loadChunkEmbedder(node))
    }
  }
  /** The columns as the catalog has them now (and their embedders). */
  const refresh = async (client: pg.Client) => {
    const live = await readLiveColumns(client, options.columns)
    const next = (live === null ? options.columns.map((node) => ({ node })) : columnsOfConfig(options.columns, live))
      .filter((l) => l.node.mode === 'queue')
    for (const l of next) if (!embedders.has(modelKey(l.node))) embedders.set(modelKey(l.node), await options.loadEmbedder(l.node))
    served = next
    catalogChanged = false
  }
  let failuresInARow = 0
  try {
    // Start-up — connect, read the catalog, load the models, find pgvector — is retried like the
    // work itself: a connection lost at any step (a backend terminated, a server restarting, an
    // embedded owner going away) means connect again after a bounded pause, saying so each time.
    // Errors a new connection cannot fix (a config, catalog or model problem, a refused password,
    // a missing database) end the worker.
    let vectorSchema: string | undefined
    const startupDeadline = Date.now() + (options.startupWaitSeconds ?? 60) * 1000
    let everReached = false
    for (;;) {
      try {
        client = await connector.connect('pgml-kit worker')
        await refresh(client)
        await loadChunkEmbedders()
        // Nothing in mode "queue", in the catalog or (not migrated yet) in the config: nothing will ever be queued.
        if (served.length === 0 && !options.columns.some((c) => c.mode === 'queue') && chunked.length === 0) {
          throw new PgmlKitError('NO_QUEUE_COLUMNS', 'the config has no embedding column with mode "queue", so the worker has nothing to do', { hint: 'set mode: "queue" on an embedding column, generate and migrate' })
        }
        vectorSchema = (await client.query<{ schema: string }>(VECTOR_SCHEMA)).rows[0]?.schema
        if (!vectorSchema) throw new PgmlKitError('PGVECTOR_MISSING', 'the target has no pgvector extension installed', { hint: 'run pgml-kit migrate first' })
        break
      } catch (error) {
        if (options.signal?.aborted || !(isConnectionLost(error) || isConnectionLost((error as { cause?: unknown }).cause))) throw error
        const reached = client !== undefined
        await client?.end().catch(() => undefined)
        client = undefined
        const delay = backoffMs(failuresInARow++, 250, 5_000)
        if (reached || everReached) {
          everReached = true
          options.onReconnect?.(error as Error)
          totals = { ...totals, reconnects: totals.reconnects + 1 }
        } else {
          // Not reached yet: a wrong address and a server still starting look the same, so wait a bounded time.
          if (Date.now() + delay > startupDeadline) throw error
          options.onStartupRetry?.(error as Error, delay)
        }
        await sleep(delay, options.signal)
        if (options.signal?.aborted) return totals
      }
    }
    failuresInARow = 0
    // From here on the worker has a connection: `conn`, replaced by a new one after a loss.
    let conn: pg.Client = client as pg.Client
    const settings: BatchSettings = {
      workerId,
      batchSize: options.batchSize ?? 32,
      leaseSeconds,
      maxAttempts: options.maxAttempts ?? 5,
      backoffBaseSeconds: options.backoffBaseSeconds ?? 2,
      backoffMaxSeconds: options.backoffMaxSeconds ?? 600,
      vectorSchema,
      leases: heartbeat,
    }
    heartbeat.start(conn)
    let turn = 0
    const nextColumn = () => served[turn++ % Math.max(1, served.length)]
    const claimOne = async (): Promise<ClaimedBatch | null> => {
      // Jobs a writer held when their batch ended: free now, unless it still holds them (then later).
      const unreleased = heartbeat.takeUnreleased()
      if (unreleased.length > 0) await releaseBatch(conn, unreleased, settings)
      const live = nextColumn()
      return live ? claimBatch(conn, live.node, settings, live.fingerprint) : null
    }
    const embedderOf = (column: EmbeddingColumnNode) => embedders.get(modelKey(column)) as Embedder
    /**
     * Works the queues until a whole round of the columns has nothing due, as a pipeline: while
     * the model embeds one batch, the connection writes the batch before it and claims the one
     * after it (round-robin over the columns). A batch claimed ahead when the worker stops is
     * given back at once.
     */
    const drain = async (): Promise<void> => {
      let pending: Promise<ClaimedBatch | null> | null = claimOne()
      let finishing: Promise<void> = Promise.resolve()
      let empty = 0
      // Batches finished so far, and how many had finished when the claim in `pending` ran: a
      // claim that found nothing while a batch was still being finished (whose failures go back
      // to the queue, due at once without back-off) is not the end of the work.
      let finished = 0
      let claimedAfter = 0
      const claimNext = () => {
        const next = finishing.then(() => {
          claimedAfter = finished
          // A migration changed a column: no claim until the catalog is read again.
          return catalogChanged ? null : claimOne()
        })
        next.catch(() => undefined) // awaited below; an early failure must not be reported as unhandled
        return next
      }
      try {
        while (pending !== null && !options.signal?.aborted) {
          const claimed: ClaimedBatch | null = await pending
          pending = null
          if (!claimed) {
            await finishing
            if (catalogChanged) break
            if (finished > claimedAfter) {
              pending = claimNext()
              continue
            }
            if (++empty >= served.length) break
            pending = claimNext()
            continue
          }
          empty = 0
          const embedding = embedBatch(claimed, embedderOf(claimed.column))
          pending = claimNext()
          let embedded: EmbeddedBatch
          try {
            embedded = await embedding
          } catch (error) {
            await releaseBatch(conn, claimed.ids, settings)
            throw error
          }
          await finishing
          finishing = finishBatch(conn, embedded, settings).then((result) => {
            finished++
            if (result.catalogChanged) catalogChanged = true
            totals = add(totals, result)
            options.onBatch?.(claimed.column, result)
          })
          finishing.catch(() => undefined)
        }
      } finally {
        await finishing.catch(() => undefined)
        const last = pending as Promise<ClaimedBatch | null> | null
        const ahead = last === null ? null : await last.catch(() => null)
        if (ahead) await releaseBatch(conn, ahead.ids, settings)
      }
      await finishing
    }
    /** Works the chunked columns' queues until a whole round of them has nothing due. */
    const drainChunks = async (): Promise<void> => {
      for (let busy = true; busy && !options.signal?.aborted;) {
        busy = false
        // Each round as the database has the chunk tables now: a staged chunking change adds, switches and drops them while workers run.
        for (const served of await servedChunkedColumns(conn, chunked)) {
          if (options.signal?.aborted) break
          const node = served.node
          const result = await processChunkBatch(conn, node, chunkEmbedders.get(modelKey(node)) as Embedder, settings, chunkSettingsGuard(served))
          if (result.claimed === 0) continue
          busy = true
          totals = add(totals, result)
          options.onChunkBatch?.(node, result)
        }
      }
    }
    while (!options.signal?.aborted) {
      try {
        await drain()
        await drainChunks()
        failuresInARow = 0
        // What the catalog says now: a staged model change adds, switches and drops columns while workers run.
        const changed = catalogChanged
        await refresh(conn)
        if (changed) continue
      } catch (error) {
        if (!isConnectionLost(error)) throw error
        options.onReconnect?.(error as Error)
        await conn.end().catch(() => undefined)
        // This worker's jobs from before are free again now, not when their leases end; a
        // connection lost again meanwhile is one more reconnect, not the end.
        for (;;) {
          conn = await reconnect(connector, options.signal, () => backoffMs(failuresInARow++, 250, 5_000))
          client = conn
          try {
            await conn.query(RELEASE_WORKER_LEASES, [workerId])
            break
          } catch (again) {
            if (!isConnectionLost(again)) throw again
            options.onReconnect?.(again as Error)
            await conn.end().catch(() => undefined)
          }
        }
        heartbeat.start(conn)
        totals = { ...totals, reconnects: totals.reconnects + 1 }
        await refresh(conn).catch(() => undefined)
        continue
      }
      if (options.signal?.aborted) break
      if (options.once) {
        totals = { ...totals, outlook: await readOutlook(conn, [...served.map((l) => l.node), ...chunked]) }
        break
      }
      await sleep(options.pollIntervalMs ?? 1000, options.signal)
    }
    return totals
  } finally {
    heartbeat.stop()
    await client?.end().catch(() => undefined)
  }
}
