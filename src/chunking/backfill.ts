import type { Embedder } from '../embed/embedder.js'
import type { ChunkedColumnNode } from '../model/ir.js'
import { toConnector, type Connector } from '../db/connect.js'
import { chunkStoreOf, renderChunkBackfillPage, renderReadFingerprint } from '../sql/render-chunks.js'
import { errorText } from '../worker/resilience.js'
import { chunkRow } from './document.js'
import { syncDocument } from './store.js'
import { chunkSettingsGuard, servedChunkedColumns } from './served.js'

export interface ChunkBackfillResult {
  readonly column: string
  /** Rows read. */
  readonly rows: number
  /** Rows whose chunks were brought up to date. */
  readonly synced: number
  /** Chunks embedded (only those whose text was new). */
  readonly embedded: number
  readonly failed: readonly { readonly key: string; readonly error: string }[]
  readonly interrupted: boolean
  readonly seconds: number
}

/**
 * Chunks the rows of a chunked column that have none yet (`all`: every row, which embeds only the
 * chunks whose text is new): the rows there before the column in mode `app`, or any row a queue
 * missed. In key order, a page at a time; each row synced in a transaction of its own, so an
 * interrupted run keeps what it did and a second run goes on. A row the splitter or the model
 * fails on is reported and skipped. During a staged chunking change the copy (`<column>__next`, or
 * `__previous` after the switch) is filled after the live table, each with its own settings.
 */
export async function backfillChunks(options: {
  readonly url: string | Connector
  readonly node: ChunkedColumnNode
  readonly loadEmbedder: (node: ChunkedColumnNode) => Promise<Embedder>
  readonly all?: boolean
  readonly batchSize?: number
  readonly signal?: AbortSignal
  readonly onProgress?: (progress: { readonly rows: number; readonly embedded: number }) => void
}): Promise<ChunkBackfillResult> {
  const started = performance.now()
  const { node } = options
  const embedder = await options.loadEmbedder(node)
  const client = await toConnector(options.url).connect('pgml-kit backfill')
  const failed: { key: string; error: string }[] = []
  let rows = 0
  let synced = 0
  let embedded = 0
  const tables: string[] = []
  try {
    for (const served of await servedChunkedColumns(client, [node])) {
      const each = served.node
      const store = chunkStoreOf(each)
      tables.push(each.column)
      let after: string | null = null
      while (!options.signal?.aborted) {
        type Row = { row_key: string; source_text: string | null; fields: string; fingerprint: string }
        const page: Row[] = (await client.query<Row>(renderChunkBackfillPage(each, !options.all), [after, options.batchSize ?? 64])).rows
        if (page.length === 0) break
        for (const row of page) {
          if (options.signal?.aborted) break
          rows++
          after = row.row_key
          try {
            const result = await syncDocument(client, store, { json: row.row_key }, chunkRow(each, row.source_text, JSON.parse(row.fields) as Record<string, unknown>, embedder), {
              model: embedder.modelId, embed: (texts) => embedder.embed(texts, { as: 'document' }),
              source: { sql: renderReadFingerprint(each), fingerprint: row.fingerprint }, guard: chunkSettingsGuard(served),
            })
            // A row changed meanwhile is left to its own path (its queue job, or the writer that changed it).
            if (!result.gone && !result.changed) synced++
            embedded += result.embedded
          } catch (error) {
            failed.push({ key: row.row_key, error: errorText(error) })
          }
        }
        options.onProgress?.({ rows, embedded })
      }
    }
  } finally {
    await client.end().catch(() => undefined)
  }
  return { column: `${node.table}.${tables.join(', ') || node.column}`, rows, synced, embedded, failed, interrupted: options.signal?.aborted ?? false, seconds: (performance.now() - started) / 1000 }
}
