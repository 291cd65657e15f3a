import { PlanError } from '../errors.js'
import { columnKey, columnLabel, objectKey, type ChunkedColumnNode, type DesiredState, type VectorIndexNode } from '../model/ir.js'
import { embeddingPath } from '../model/config-path.js'
import type { Operation } from './operation.js'
import { sameIndex } from './compare.js'
import * as ops from './operations.js'

/** Everything of a chunked column but its indexes (and the distance searches default to, which follows them): a change to any of it re-chunks every row. */
function chunksOf(node: ChunkedColumnNode): string {
  const { indexes: _indexes, distance: _distance, ...rest } = node
  return JSON.stringify(rest)
}

/**
 * The chunked columns' part of a plan: chunk tables created and dropped (main), their vector
 * indexes built and dropped concurrently (after, before). A change of the splitter, its settings,
 * the template, the sources, the model or the mode is refused for now: it would embed every chunk
 * again in place, with searches reading a half-filled table meanwhile. Adding the new column beside
 * the old one (its own chunk table), letting it fill, moving searches to it and removing the old one
 * is the staged change done by hand.
 */
export function planChunkedColumns(previous: DesiredState, next: DesiredState, phases: { before: Operation[]; main: Operation[]; after: Operation[] }, renamedTables: ReadonlySet<string>): void {
  const prev = new Map((previous.chunkedColumns ?? []).map((c) => [columnKey(c), c]))
  const wanted = new Map((next.chunkedColumns ?? []).map((c) => [columnKey(c), c]))
  const context = (node: ChunkedColumnNode) => ({ column: { vectorType: node.vectorType, dimensions: node.model.dimensions } })
  const withOrigin = (op: Operation, node: ChunkedColumnNode) => ({ ...op, origin: `${embeddingPath(node)}.indexes` })
  for (const node of [...prev.values(), ...wanted.values()]) {
    if (renamedTables.has(objectKey(node.schema, node.table))) {
      throw new PlanError('CHUNKED_TABLE_RENAME_UNSUPPORTED', `${node.schema}.${node.table} has the chunked column ${node.column}, and renaming such a table is not supported yet`, {
        where: `tables.${node.table}.renamedFrom`, hint: 'remove the chunked column first, rename the table, then add it back',
      })
    }
  }
  for (const [key, node] of prev) {
    if (wanted.has(key)) continue
    for (const index of node.indexes) phases.before.push(withOrigin(ops.dropVectorIndex(index, context(node)), node))
    phases.main.push(ops.dropChunkedColumn(node))
  }
  for (const [key, node] of wanted) {
    const old = prev.get(key)
    if (!old) {
      // A staged change's shadow: the live table records its own settings first.
      const live = node.rollout?.role === 'next' ? prev.get(columnKey({ ...node, column: node.rollout.of })) : undefined
      if (live) phases.main.push(ops.prepareLiveChunks(live))
      phases.main.push(ops.createChunkedColumn(node))
      for (const index of node.indexes) phases.after.push(withOrigin(ops.createVectorIndex(index, context(node)), node))
      continue
    }
    if (chunksOf(old) !== chunksOf(node)) {
      if (old.rollout && node.rollout) {
        // A staged change's shadow whose target settings changed again: it starts over (stageChunkRollouts decided so).
        for (const index of old.indexes) phases.before.push(withOrigin(ops.dropVectorIndex(index, context(old)), old))
        phases.main.push(ops.dropChunkedColumn(old), ops.createChunkedColumn(node))
        for (const index of node.indexes) phases.after.push(withOrigin(ops.createVectorIndex(index, context(node)), node))
        continue
      }
      const change = describeChange(old, node)
      if (change === '') {
        throw new PlanError('CHUNKING_CHANGE_UNSUPPORTED', `planMigration does not chunk ${columnLabel(node)} again in place with its new splitter settings`, {
          where: embeddingPath(node), hint: 'plan it with planChange, which stages it (a second chunk table fills, then a switch); generate and plan do',
        })
      }
      throw new PlanError('CHUNKING_CHANGE_UNSUPPORTED', `${columnLabel(node)} changes its ${change}; that would embed every chunk again in place`, {
        where: embeddingPath(node),
        hint: 'a change of the splitter, its size, overlap, separators, template or sources is staged (a second chunk table fills, then a switch); for this one, add the new settings as another chunked column beside this one, let it fill, search it, then remove this one',
      })
    }
    const before = new Map(old.indexes.map((i) => [i.name, i]))
    const after = new Map(node.indexes.map((i) => [i.name, i]))
    for (const [name, index] of before) if (!after.has(name)) phases.before.push(withOrigin(ops.dropVectorIndex(index, context(old)), old))
    for (const [name, index] of after) {
      const was: VectorIndexNode | undefined = before.get(name)
      if (!was) phases.after.push(withOrigin(ops.createVectorIndex(index, context(node)), node))
      else if (!sameIndex(was, index)) phases.after.push(withOrigin(ops.rebuildVectorIndex(was, index, context(node)), node))
    }
  }
}

function describeChange(a: ChunkedColumnNode, b: ChunkedColumnNode): string {
  const out: string[] = []
  if (JSON.stringify(a.model) !== JSON.stringify(b.model)) out.push(a.model.id === b.model.id ? `model settings (prefixes, normalisation, pooling, revision or dimensions of ${a.model.id})` : `model ${a.model.id} → ${b.model.id}`)
  if (a.vectorType !== b.vectorType) out.push(`type ${a.vectorType} → ${b.vectorType}`)
  if (a.mode !== b.mode) out.push(`mode ${a.mode} → ${b.mode}`)
  if (a.fullText !== b.fullText) out.push(`full text ${a.fullText ?? 'none'} → ${b.fullText ?? 'none'}`)
  if (a.chunkTable !== b.chunkTable) out.push(`chunk table ${a.chunkTable} → ${b.chunkTable}`)
  if (JSON.stringify(a.keyColumns) !== JSON.stringify(b.keyColumns)) out.push(`key columns ${a.keyColumns.join(', ')} → ${b.keyColumns.join(', ')}`)
  return out.join(', ')
}

/** Whether a state has any vector column (plain or chunked): pgvector is needed. */
export function hasVectors(state: DesiredState): boolean {
  return state.embeddingColumns.length > 0 || (state.chunkedColumns?.length ?? 0) > 0
}
