import { deriveIdentifier, ownedIdentifier } from './identifiers.js'
import type { ChunkedColumnNode, ChunkingNode, ResolvedModel, RolloutRole, VectorType } from './ir.js'

/**
 * A staged chunking change (issue 29): the settings that make a chunked column's chunks — splitter,
 * size, overlap, separators, template, sources — change the way a model does for a plain column.
 * The new settings fill a second chunk table (`<chunk table>__next`) beside the live one, which
 * searches go on reading; a switch makes it the live table in one short transaction, and the old
 * chunks stay in `<chunk table>__previous`, kept in sync, until they are dropped. The model stays
 * the same: a query vector then ranks the chunks of either table.
 *
 * Each chunk table carries the settings its chunks were made with, as its COMMENT (only its owner,
 * the migrating role, can set one): the worker, backfill and the embedding writer read them there,
 * so each table is kept with its own settings whichever config the process was started with, and
 * the settings travel with the table when the switch renames it.
 */

export type ChunkRole = RolloutRole['role']

/** The chunked column `live` as its extra copy `role`: its names suffixed, its mode (in `queue`, its own trigger function, triggers and jobs). */
export function chunkedCopy(live: ChunkedColumnNode, role: ChunkRole): ChunkedColumnNode {
  const column = deriveIdentifier([live.column, role], '__')
  const chunkTable = deriveIdentifier([live.chunkTable, role], '__')
  return {
    ...live, column, chunkTable, view: deriveIdentifier([live.view, role], '__'),
    triggerFunction: live.mode === 'queue' ? ownedIdentifier('enqueue_chunks', [live.schema, live.table, column]) : null,
    indexes: live.indexes.map((i) => ({ ...i, table: chunkTable, name: deriveIdentifier([i.name, role], '__') })),
    rollout: { role, of: live.column },
  }
}

/** `settings`' chunks under the names (and mode) of `names`: what a copy becomes when it is switched in, or the live column as the database has it. */
export function withChunkSettings(names: ChunkedColumnNode, settings: Pick<ChunkedColumnNode, 'sourceColumns' | 'separator' | 'templateColumns' | 'chunking'>): ChunkedColumnNode {
  return { ...names, sourceColumns: settings.sourceColumns, separator: settings.separator, templateColumns: settings.templateColumns, chunking: settings.chunking }
}

/** What makes a chunk table's chunks (and what a query must match): stored as the table's comment. */
export interface ChunkSettings {
  readonly sourceColumns: readonly string[]
  readonly separator: string
  readonly templateColumns: readonly string[]
  readonly chunking: ChunkingNode
  readonly model: Pick<ResolvedModel, 'id' | 'revision' | 'dimensions'>
  readonly vectorType: VectorType
}

const COMMENT_PREFIX = 'pgml-kit chunks, made with: '

export function chunkSettingsOf(node: ChunkedColumnNode): ChunkSettings {
  return {
    sourceColumns: node.sourceColumns, separator: node.separator, templateColumns: node.templateColumns, chunking: node.chunking,
    model: { id: node.model.id, revision: node.model.revision, dimensions: node.model.dimensions }, vectorType: node.vectorType,
  }
}

/** The chunk table's comment: the settings its chunks are made with, as JSON after a readable prefix. */
export function chunkTableComment(node: ChunkedColumnNode): string {
  return `${COMMENT_PREFIX}${JSON.stringify(chunkSettingsOf(node))}`
}

/** The settings in a chunk table's comment; null when it has none pgml-kit wrote (a table from before they were recorded). */
export function parseChunkTableComment(comment: string | null): ChunkSettings | null {
  if (comment === null || !comment.startsWith(COMMENT_PREFIX)) return null
  try {
    const value = JSON.parse(comment.slice(COMMENT_PREFIX.length)) as ChunkSettings
    return typeof value === 'object' && value !== null && Array.isArray(value.sourceColumns) && typeof value.chunking === 'object' ? value : null
  } catch {
    return null
  }
}

/** Whether two chunked columns make the same chunks with the same vectors (their names, mode and indexes aside). */
export function sameChunkSettings(a: ChunkedColumnNode, b: ChunkedColumnNode): boolean {
  return JSON.stringify(chunkSettingsOf(a)) === JSON.stringify(chunkSettingsOf(b))
}

/** The same model, vector type and query-side settings: a staged change can go between them (searches read either table). */
export function sameChunkVectors(a: ChunkedColumnNode, b: ChunkedColumnNode): boolean {
  return JSON.stringify([a.model, a.vectorType, a.fullText, a.keyColumns]) === JSON.stringify([b.model, b.vectorType, b.fullText, b.keyColumns])
}
