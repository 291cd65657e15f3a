import type { ChunkedColumnNode } from '../model/ir.js'
import type { Embedder } from '../embed/embedder.js'
import { PgmlKitError } from '../errors.js'
import { formatChunk } from './plan.js'
import { MARKDOWN_SEPARATORS, RECURSIVE_SEPARATORS, splitDocument } from './split.js'
import type { DocumentChunk } from './store.js'

/**
 * A row's chunks as its column's `chunking` says: the source text split (by characters, by
 * markdown structure, or by the model's own tokens so that no chunk, formatted and prefixed,
 * exceeds the model's window), each formatted by the template with the row's columns.
 */
export function chunkRow(node: ChunkedColumnNode, text: string | null, row: Readonly<Record<string, unknown>>, embedder?: Pick<Embedder, 'countTokens' | 'maxTokens'>): DocumentChunk[] {
  if (text === null || text.trim() === '') return []
  const { chunking } = node
  const where = `tables.${node.table}.embeddings.${node.column}.chunking`
  let size = chunking.size
  let length: ((s: string) => number) | undefined
  if (chunking.splitter === 'tokens') {
    const count = embedder?.countTokens?.bind(embedder)
    const window = embedder?.maxTokens
    if (!count || window === undefined) throw new PgmlKitError('CHUNKING_NEEDS_TOKENIZER', `the "tokens" splitter needs the model's tokenizer, and the embedder of ${node.model.id} does not give one`, { where })
    // What a chunk's text may use of the window: the window less the prefix, the special tokens
    // and the template around the chunk (an empty chunk formatted measures all three).
    const around = count(formatChunk(chunking.template, '', row))
    // Two tokens of margin: a chunk's tokens beside the template's can merge differently than apart.
    const budget = window - around - 2
    if (budget < 1) throw new PgmlKitError('CHUNK_TEMPLATE_TOO_LONG', `the chunk template of ${node.table}.${node.column}, formatted for one row, takes ${around} of the model's ${window} tokens, leaving none for the chunk`, { where: `${where}.template` })
    size = size === null ? budget : Math.min(size, budget)
    // A piece of text measured alone: its tokens without the prefix and special tokens.
    const bare = count('')
    length = (s) => count(s) - bare
  }
  if (size === null) throw new TypeError('a character splitter always has a size')
  const separators = chunking.splitter === 'markdown' ? MARKDOWN_SEPARATORS : chunking.separators ?? RECURSIVE_SEPARATORS
  const overlap = Math.min(chunking.overlap, size - 1)
  let chunks = splitDocument(text, { size, overlap, separators, sectionEvery: chunking.sectionEvery, ...(length ? { length } : {}) })
  // Never truncated: a chunk by characters that the model would cut (a dense text, a small window)
  // is split again by the model's own tokens, as the "tokens" splitter would.
  const count = embedder?.countTokens?.bind(embedder)
  const window = embedder?.maxTokens
  if (chunking.splitter !== 'tokens' && count && window !== undefined) {
    const bare = count('')
    chunks = chunks.flatMap((chunk) => {
      if (count(formatChunk(chunking.template, chunk, row)) <= window) return [chunk]
      const budget = window - count(formatChunk(chunking.template, '', row)) - 2
      if (budget < 1) throw new PgmlKitError('CHUNK_TEMPLATE_TOO_LONG', `the chunk template of ${node.table}.${node.column}, formatted for one row, leaves none of the model's ${window} tokens for the chunk`, { where: `${where}.template` })
      return splitDocument(chunk, { size: budget, overlap: 0, separators, sectionEvery: 0, length: (s) => count(s) - bare })
    })
  }
  const out = chunks.map((chunk) => ({ chunk, embedded: formatChunk(chunking.template, chunk, row) }))
  if (count && window !== undefined) {
    // Never truncated silently: a chunk the model would still cut is an error, not a shorter vector.
    const over = out.findIndex((c) => count(c.embedded) > window)
    if (over >= 0) throw new PgmlKitError('CHUNK_EXCEEDS_WINDOW', `chunk ${over} of a ${node.table} row measures ${count(out[over]!.embedded)} tokens, more than the model's ${window}`, { where, hint: 'set a smaller chunking.size' })
  }
  return out
}
