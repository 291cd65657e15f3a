import type pg from 'pg'
import type { Embedder } from '../embed/embedder.js'
import { sourceTextOf } from '../embed/source-text.js'
import { PgmlKitError } from '../errors.js'
import type { ChunkedColumnNode } from '../model/ir.js'
import { chunkStoreOf } from '../sql/render-chunks.js'
import { chunkRow } from './document.js'
import { syncDocumentHere, type SyncResult } from './store.js'

/**
 * The `app` mode of chunked columns, for the embedding writer: the chunks of rows about to be
 * written are embedded before the writer's transaction opens; inside it, each written row's chunks
 * are synced (only chunks whose text is new are written; a text not embedded beforehand — a
 * default or trigger changed the row — is embedded then).
 */
export type ChunkVectors = Map<string, ArrayLike<number>>

/** Columns a row must have (read back) to be chunked: its key, sources and the template's columns. */
export function chunkInputs(node: ChunkedColumnNode): string[] {
  return [...new Set([...node.keyColumns, ...node.sourceColumns, ...node.templateColumns])]
}

function chunksOf(node: ChunkedColumnNode, row: Readonly<Record<string, unknown>>, embedder: Embedder) {
  const text = sourceTextOf({ ...node, sourceColumns: node.sourceColumns, separator: node.separator } as Parameters<typeof sourceTextOf>[0], row)
  return chunkRow(node, text, row, embedder)
}

/** Embeds the chunks of `rows` (as given) for `node`, each distinct text once. */
export async function embedChunksAhead(node: ChunkedColumnNode, rows: readonly Readonly<Record<string, unknown>>[], embedder: Embedder, into: ChunkVectors): Promise<void> {
  const texts = [...new Set(rows.flatMap((row) => chunksOf(node, row, embedder).map((c) => c.embedded)))].filter((t) => !into.has(t))
  if (texts.length === 0) return
  const vectors = await embedder.embed(texts, { as: 'document' })
  texts.forEach((t, i) => into.set(t, vectors[i]!))
}

/** Syncs one written row's chunks inside the writer's transaction. */
export async function syncRowChunks(db: pg.ClientBase, node: ChunkedColumnNode, row: Readonly<Record<string, unknown>>, embedder: Embedder, ahead: ChunkVectors): Promise<SyncResult> {
  const chunks = chunksOf(node, row, embedder)
  const key = Object.fromEntries(node.keyColumns.map((k) => [k, row[k]]))
  return syncDocumentHere(db, chunkStoreOf(node), key, chunks, {
    model: embedder.modelId,
    embed: async (texts) => {
      const missing = texts.filter((t) => !ahead.has(t))
      if (missing.length > 0) {
        const vectors = await embedder.embed(missing, { as: 'document' })
        missing.forEach((t, i) => ahead.set(t, vectors[i]!))
      }
      return texts.map((t) => {
        const v = ahead.get(t)
        if (!v) throw new PgmlKitError('EMBED_FAILED', `no vector for a chunk of ${node.table}.${node.column}`)
        return v
      })
    },
  })
}
