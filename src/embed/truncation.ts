import type pg from 'pg'
import type { EmbeddingColumnNode } from '../model/ir.js'
import type { Embedder } from './embedder.js'
import { renderLongTexts } from '../sql/render-truncation.js'

export interface Truncation {
  /** Rows whose text the model sees only in part (more tokens than its window). */
  readonly truncated: number
  /** Rows long enough to need counting (the others cannot exceed the window). */
  readonly checked: number
  /** The model's window, in tokens. */
  readonly window: number
}

/**
 * How many rows of an embedding column (without `chunking`) hold a text longer than its model's
 * window — the model embeds only the first `window` tokens of those, silently. Only texts with more
 * bytes than the window can be that long, so only those are read (in key order, a page at a time)
 * and counted with the model's own tokenizer. Null when the embedder cannot count tokens.
 */
export async function countTruncated(client: pg.ClientBase, column: EmbeddingColumnNode, embedder: Embedder, page = 500): Promise<Truncation | null> {
  const count = embedder.countTokens?.bind(embedder)
  const window = embedder.maxTokens
  if (!count || window === undefined) return null
  // Tokens besides the text's own: the document prefix and the special tokens (an empty text measures both), and one more for a leading word marker.
  const threshold = Math.max(0, window - count('') - 1)
  let after: string | null = null
  let truncated = 0
  let checked = 0
  for (;;) {
    const rows: { row_key: string; source_text: string | null }[] = (await client.query<{ row_key: string; source_text: string | null }>(renderLongTexts(column), [threshold, after, page])).rows
    for (const row of rows) {
      checked++
      if (row.source_text !== null && count(row.source_text) > window) truncated++
    }
    if (rows.length < page) break
    after = rows[rows.length - 1]!.row_key
  }
  return { truncated, checked, window }
}
