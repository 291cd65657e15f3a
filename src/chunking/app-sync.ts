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

/** A written row's chunk inputs as the database read them back (renderChunkInputs). */
export interface ChunkInputs {
  readonly key: string
  readonly source: string | null
  readonly fields: Readonly<Record<string, string | null>>
}

/** The inputs of chunked column number `i` in a row returned with renderChunkInputs. */
export function chunkInputsOf(row: Readonly<Record<string, unknown>>, i: number): ChunkInputs {
  return { key: String(row[`pgml_kit_key_${i}`]), source: (row[`pgml_kit_source_${i}`] as string | null) ?? null, fields: JSON.parse(String(row[`pgml_kit_fields_${i}`])) as Record<string, string | null> }
}

/** Fields the writer adds to a returned row (stripped before the caller sees it). */
export const isChunkInput = (name: string): boolean => /^pgml_kit_(key|source|fields)_\d+$/.test(name)

/**
 * Embeds the chunks of `rows` (as the caller gave them) ahead of the transaction, each distinct
 * text once. A row without a template column (left to its default) is embedded in the
 * transaction instead; so is a row whose text reads differently in the database.
 */
export async function embedChunksAhead(node: ChunkedColumnNode, rows: readonly Readonly<Record<string, unknown>>[], embedder: Embedder, into: ChunkVectors): Promise<void> {
  const texts = new Set<string>()
  for (const row of rows) {
    if (!node.templateColumns.every((c) => Object.hasOwn(row, c))) continue
    const fields = Object.fromEntries(node.templateColumns.map((c) => [c, row[c] === null || row[c] === undefined ? null : String(row[c])]))
    const source = sourceTextOf({ ...node } as Parameters<typeof sourceTextOf>[0], row)
    for (const c of chunkRow(node, source, fields, embedder)) if (!into.has(c.embedded)) texts.add(c.embedded)
  }
  if (texts.size === 0) return
  const list = [...texts]
  const vectors = await embedder.embed(list, { as: 'document' })
  list.forEach((t, i) => into.set(t, vectors[i]!))
}

/** Syncs one written row's chunks inside the writer's transaction. */
export async function syncRowChunks(db: pg.ClientBase, node: ChunkedColumnNode, inputs: ChunkInputs, embedder: Embedder, ahead: ChunkVectors): Promise<SyncResult> {
  const chunks = chunkRow(node, inputs.source, inputs.fields, embedder)
  return syncDocumentHere(db, chunkStoreOf(node), { json: inputs.key }, chunks, {
    model: embedder.modelId,
    embed: async (texts) => {
      const missing = [...new Set(texts.filter((t) => !ahead.has(t)))]
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
