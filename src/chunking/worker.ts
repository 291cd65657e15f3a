import type pg from 'pg'
import type { Embedder } from '../embed/embedder.js'
import type { ChunkedColumnNode } from '../model/ir.js'
import { isConnectionLost } from '../db/connect.js'
import { COMPLETE_CHUNK_JOB, chunkStoreOf, renderFetchChunkSources, renderReadFingerprint } from '../sql/render-chunks.js'
import { DELETE_LEASED_JOBS, renderClaimJobs } from '../sql/render-worker.js'
import { EMPTY_BATCH, recordFailures, releaseBatch, type BatchResult, type BatchSettings } from '../worker/process-batch.js'
import { errorText, retryTransient } from '../worker/resilience.js'
import { chunkRow } from './document.js'
import { syncDocument } from './store.js'
import type { ChunkSettingsGuard } from './served.js'

/**
 * One round of the queue for a chunked column: lease due jobs (FOR UPDATE SKIP LOCKED), read their
 * rows, and sync each row's chunks — split, embed only the chunks whose text is new (outside any
 * transaction), then in one short transaction write them, drop the chunks past the new end, move
 * the kept ones, and end the job unless a newer change re-queued it meanwhile (then the next round
 * syncs the row again, from its newer text). A row the splitter or the model fails on fails alone:
 * retried with back-off, then dead-lettered. `guard`: the chunk table's settings as `node` has them,
 * checked in each write (a staged change's switch since they were read: the job is given back).
 */
export async function processChunkBatch(client: pg.ClientBase, node: ChunkedColumnNode, embedder: Embedder, settings: BatchSettings, guard?: ChunkSettingsGuard): Promise<BatchResult> {
  const { workerId } = settings
  const claimed = (await retryTransient(() => client.query<{ id: string; generation: string }>(renderClaimJobs(node), [settings.batchSize, settings.leaseSeconds, workerId]))).rows
  if (claimed.length === 0) return EMPTY_BATCH
  const ids = claimed.map((j) => j.id)
  settings.leases?.hold(ids)
  const store = chunkStoreOf(node)
  try {
    type Source = { id: string; row_key: string; source_text: string | null; fields: string; fingerprint: string }
    const rows = new Map((await client.query<Source>(renderFetchChunkSources(node), [ids])).rows.map((r) => [r.id, r]))
    const gone = claimed.filter((j) => !rows.has(j.id)).map((j) => j.id)
    let completed = gone.length > 0 ? (await retryTransient(() => client.query(DELETE_LEASED_JOBS, [gone, workerId]))).rowCount ?? 0 : 0
    let written = 0
    let stale = 0
    const failures: { id: string; error: string }[] = []
    for (const job of claimed) {
      const row = rows.get(job.id)
      if (!row) continue
      try {
        const chunks = chunkRow(node, row.source_text, JSON.parse(row.fields) as Record<string, unknown>, embedder)
        let ended = false
        const result = await syncDocument(client, store, { json: row.row_key }, chunks, {
          model: embedder.modelId,
          source: { sql: renderReadFingerprint(node), fingerprint: row.fingerprint },
          embed: (texts) => embedder.embed(texts, { as: 'document' }),
          beforeCommit: async (c) => { ended = ((await c.query(COMPLETE_CHUNK_JOB, [job.id, job.generation, workerId])).rowCount ?? 0) > 0 },
          ...(guard ? { guard } : {}),
        })
        written += result.embedded
        if (ended) completed++
        else stale++
      } catch (error) {
        if (isConnectionLost(error)) throw error
        // Other syncs of the row kept changing its chunks: not the row's fault; its job is given back, no attempt counted.
        if ((error as { code?: unknown }).code === 'CHUNKS_CHANGING') {
          stale++
          continue
        }
        // A staged change's copy renamed or dropped since this round read the tables (a switch, its
        // down, the drop of the previous chunks): its jobs moved with it; these are given back.
        if (node.rollout && (error as { code?: unknown }).code === '42P01') {
          stale++
          break
        }
        failures.push({ id: job.id, error: errorText(error) })
      }
    }
    const deadLettered = await recordFailures(client, failures, settings)
    return {
      claimed: ids.length, written, completed, stale, failed: failures.length, deadLettered,
      ...(failures.length > 0 ? { failures: failures.map((f) => ({ jobId: f.id, error: f.error })) } : {}),
    }
  } finally {
    await releaseBatch(client, ids, settings)
  }
}
