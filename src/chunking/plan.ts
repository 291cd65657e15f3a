import { createHash } from 'node:crypto'

/**
 * Which chunks of a document to embed again after an edit (issue 29, in progress): only those
 * whose text is new. A chunk is known by the hash of the text that is embedded (the chunk as
 * formatted by the column's template); a stored chunk whose hash occurs again keeps its vector —
 * at its new position, when an edit before it moved it — and the rest of the stored chunks go.
 * pgai's vectorizer deletes and embeds again every chunk of a row on any change; this embeds
 * `embed.length` of them.
 */

/** A chunk as stored: its position in the document (from 0) and the hash of its embedded text. */
export interface StoredChunk {
  readonly seq: number
  readonly hash: string
}

/** A chunk of the document as it is now: what is embedded, and its hash (chunkHash). */
export interface NextChunk {
  readonly text: string
  readonly hash: string
}

export interface ChunkPlan {
  /** New texts to embed, at their positions. */
  readonly embed: readonly { readonly seq: number; readonly text: string; readonly hash: string }[]
  /** Stored chunks kept with their vectors: `from` the position they have, `to` the one they take (equal when unmoved). */
  readonly keep: readonly { readonly from: number; readonly to: number }[]
  /** Positions of stored chunks that go (their text no longer occurs, or occurs fewer times). */
  readonly remove: readonly number[]
}

/** The hash a chunk is known by: SHA-256 of its embedded text (UTF-8), hex. */
export function chunkHash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex')
}

/**
 * The plan from the stored chunks to `next`. A text that occurs several times is matched as many
 * times as it is stored; among stored chunks of the same hash, the one at the same position is
 * kept first, then the nearest.
 */
export function planChunks(stored: readonly StoredChunk[], next: readonly NextChunk[]): ChunkPlan {
  const seqs = new Set<number>()
  for (const s of stored) {
    if (!Number.isSafeInteger(s.seq) || s.seq < 0) throw new RangeError(`a stored chunk's position must be a whole number of 0 or more, got ${s.seq}`)
    if (seqs.has(s.seq)) throw new RangeError(`two stored chunks at position ${s.seq}`)
    seqs.add(s.seq)
  }
  // Stored positions by hash, ascending.
  const byHash = new Map<string, number[]>()
  for (const s of [...stored].sort((a, b) => a.seq - b.seq)) {
    const list = byHash.get(s.hash)
    if (list) list.push(s.seq)
    else byHash.set(s.hash, [s.seq])
  }
  const keep: { from: number; to: number }[] = []
  const unmatched: number[] = []
  // First the chunks that stay where they are, then the nearest stored chunk of the same text.
  const taken = new Set<number>()
  next.forEach((chunk, to) => {
    const list = byHash.get(chunk.hash)
    const at = list?.indexOf(to) ?? -1
    if (list && at >= 0) {
      list.splice(at, 1)
      taken.add(to)
      keep.push({ from: to, to })
    }
  })
  next.forEach((chunk, to) => {
    if (taken.has(to)) return
    const list = byHash.get(chunk.hash)
    if (!list || list.length === 0) {
      unmatched.push(to)
      return
    }
    let best = 0
    for (let i = 1; i < list.length; i++) if (Math.abs(list[i]! - to) < Math.abs(list[best]! - to)) best = i
    keep.push({ from: list[best]!, to })
    list.splice(best, 1)
  })
  const kept = new Set(keep.map((k) => k.from))
  return {
    embed: unmatched.map((seq) => ({ seq, text: next[seq]!.text, hash: next[seq]!.hash })),
    keep: keep.sort((a, b) => a.to - b.to),
    remove: stored.map((s) => s.seq).filter((seq) => !kept.has(seq)).sort((a, b) => a - b),
  }
}

/**
 * A chunk formatted by a column's template: `{chunk}` is the chunk's text, `{name}` the row's
 * column `name` (empty when NULL), `{{` and `}}` literal braces. A name the row lacks is an error
 * that names it.
 */
export function formatChunk(template: string, chunk: string, row: Readonly<Record<string, unknown>>): string {
  return template.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (match, name: string | undefined) => {
    if (match === '{{') return '{'
    if (match === '}}') return '}'
    if (name === 'chunk') return chunk
    if (name === undefined || !Object.hasOwn(row, name)) throw new RangeError(`the chunk template names {${name ?? ''}}, which is not a column of the row (columns: ${Object.keys(row).join(', ')})`)
    const value = row[name]
    return value === null || value === undefined ? '' : value instanceof Date ? value.toISOString() : String(value)
  })
}
