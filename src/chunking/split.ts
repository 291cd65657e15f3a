/**
 * Text splitters for chunked embedding columns (issue 29, in progress): the same algorithm as
 * LangChain's RecursiveCharacterTextSplitter — and as pgml_compat's `pgml.chunk`, which follows it
 * in the database — so a document splits the same way whether the application or the database
 * splits it. The text is cut at the first separator of the list that occurs in it; pieces shorter
 * than the size are merged back up to it, carrying up to `overlap` of the previous chunk into the
 * next; a piece still too long is cut again with the next separators. Separators are literal
 * strings, kept at the start of the piece that follows them, and chunks are trimmed. Where
 * LangChain.js and Python's LangChain differ — a run of a separator longer than the separator
 * ("\n\n\n" cut at "\n\n"), which the JavaScript one cuts at every position and the Python one
 * at non-overlapping matches — this follows Python's, as pgml.chunk does.
 *
 * Lengths are measured by `length` (default: characters, as code points, as Python's `len` and
 * pgml.chunk count them); give a tokenizer's count to split by the model's own tokens, so that no
 * chunk exceeds its window.
 */

/** LangChain's recursive separators: paragraphs, lines, words, characters. */
export const RECURSIVE_SEPARATORS: readonly string[] = ['\n\n', '\n', ' ', '']

/**
 * Markdown, by headings first (LangChain.js's markdown separators): sections of level 2 to 6,
 * code fences, horizontal rules, then as recursive.
 */
export const MARKDOWN_SEPARATORS: readonly string[] = ['\n## ', '\n### ', '\n#### ', '\n##### ', '\n###### ', '```\n\n', '\n\n***\n\n', '\n\n---\n\n', '\n\n___\n\n', '\n\n', '\n', ' ', '']

export interface SplitOptions {
  /** The most a chunk may measure (by `length`). */
  readonly size: number
  /** How much of the previous chunk a chunk starts with (by `length`), at most `size`. */
  readonly overlap: number
  /** Separators to try in order (default RECURSIVE_SEPARATORS); '' cuts between characters. */
  readonly separators?: readonly string[]
  /** How long a piece of text is (default: its code points). */
  readonly length?: (text: string) => number
}

const codePoints = (text: string): number => {
  let n = 0
  for (const _ of text) n++
  return n
}

/** Checks the options, with a RangeError that names the one that is wrong. */
function checked(options: SplitOptions): Required<SplitOptions> {
  const { size, overlap } = options
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`chunk size must be a whole number of 1 or more, got ${size}`)
  if (!Number.isSafeInteger(overlap) || overlap < 0 || overlap > size) throw new RangeError(`chunk overlap must be a whole number from 0 to the size (${size}), got ${overlap}`)
  const separators = options.separators ?? RECURSIVE_SEPARATORS
  if (separators.some((s) => typeof s !== 'string')) throw new RangeError('separators must be strings')
  return { size, overlap, separators, length: options.length ?? codePoints }
}

/** The text cut at `separator`, each separator kept at the start of the piece after it; empty pieces dropped. */
function pieces(text: string, separator: string): string[] {
  if (separator === '') return Array.from(text)
  const parts = text.split(separator)
  const out: string[] = []
  if (parts[0] !== '') out.push(parts[0]!)
  for (let i = 1; i < parts.length; i++) out.push(separator + parts[i]!)
  return out.filter((p) => p !== '')
}

/** Pieces merged into chunks of at most `size` (a piece longer than that stays whole), each starting with up to `overlap` of the one before. */
function merge(parts: readonly string[], o: Required<SplitOptions>): string[] {
  const chunks: string[] = []
  let window: { text: string; n: number }[] = []
  let total = 0
  const emit = () => {
    const text = window.map((w) => w.text).join('').trim()
    if (text !== '') chunks.push(text)
  }
  for (const text of parts) {
    const n = o.length(text)
    if (window.length > 0 && total + n > o.size) {
      emit()
      while (window.length > 0 && (total > o.overlap || total + n > o.size)) {
        total -= window[0]!.n
        window = window.slice(1)
      }
    }
    window.push({ text, n })
    total += n
  }
  if (window.length > 0) emit()
  return chunks
}

function recursive(text: string, separators: readonly string[], o: Required<SplitOptions>): string[] {
  let chosen = separators[separators.length - 1] ?? ''
  let rest: readonly string[] = []
  for (const [i, separator] of separators.entries()) {
    if (separator === '') {
      chosen = separator
      break
    }
    if (text.includes(separator)) {
      chosen = separator
      rest = separators.slice(i + 1)
      break
    }
  }
  const chunks: string[] = []
  let short: string[] = []
  for (const piece of pieces(text, chosen)) {
    if (o.length(piece) < o.size) {
      short.push(piece)
      continue
    }
    if (short.length > 0) {
      chunks.push(...merge(short, o))
      short = []
    }
    chunks.push(...(rest.length > 0 ? recursive(piece, rest, o) : [piece]))
  }
  if (short.length > 0) chunks.push(...merge(short, o))
  return chunks
}

/** The chunks of `text`, in order (none for an empty or blank text). */
export function splitText(text: string, options: SplitOptions): string[] {
  const o = checked(options)
  return recursive(text, o.separators, o)
}

export interface DocumentSplitOptions extends SplitOptions {
  /**
   * Content-defined sections, split one by one (default 4; 0: none, the whole text split at once
   * as LangChain does). Splitting a whole text packs its pieces greedily, so an edit that changes a
   * paragraph's length moves every chunk boundary after it — and every later chunk's text, and
   * vector, with it. So the text is first cut into sections at paragraph breaks chosen by content
   * alone: after a paragraph whose hash is divisible by `sectionEvery` (a section holds that many
   * paragraphs on average), and before a markdown heading. An edit then changes only the chunks of
   * its own section; the boundaries after it do not move. Chunks do not overlap across sections.
   */
  readonly sectionEvery?: number
}

/** FNV-1a over a string's UTF-16 units: a small hash that depends on the text alone. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}

/** The text cut into content-defined sections (see DocumentSplitOptions.sectionEvery). */
export function sections(text: string, every: number): string[] {
  if (!Number.isSafeInteger(every) || every < 0) throw new RangeError(`sectionEvery must be a whole number of 0 or more, got ${every}`)
  if (every === 0) return [text]
  const paragraphs = text.split('\n\n')
  const out: string[] = []
  let current: string[] = []
  const close = () => {
    if (current.length > 0) out.push(current.join('\n\n'))
    current = []
  }
  for (const paragraph of paragraphs) {
    if (/^\s*#{1,6}\s/.test(paragraph)) close()
    current.push(paragraph)
    if (fnv1a(paragraph.trim()) % every === 0) close()
  }
  close()
  return out
}

/** The chunks of a document: its content-defined sections, each split as splitText does. */
export function splitDocument(text: string, options: DocumentSplitOptions): string[] {
  checked(options)
  return sections(text, options.sectionEvery ?? 4).flatMap((section) => splitText(section, options))
}
