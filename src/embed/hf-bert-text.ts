import { HF_CLEAN_SPACE, HF_CONTROL, HF_DECOMPOSABLE, HF_LOWERCASE, HF_MARK, HF_PUNCTUATION, HF_WHITESPACE, type Ranges } from './hf-unicode-tables.js'

/**
 * Hugging Face's BERT normaliser and pre-tokenizer (the Rust `tokenizers` library PostgresML and
 * sentence-transformers run), character for character: each code point is classified by the tables
 * that library was built with (hf-unicode-tables.ts, generated from it by
 * scripts/build-hf-unicode.mjs), not by the runtime's newer Unicode — a combining mark or
 * punctuation added since is neither stripped nor split, a character added since does not
 * decompose, and lowercase is character by character (no final sigma). pgml_compat's tokenizer
 * reads the same tables; test/unit/tokenizer-exhaustive.test.ts holds both to the library on every
 * assigned code point.
 */

function inRanges(ranges: Ranges, cp: number): boolean {
  let lo = 0
  let hi = ranges.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const [first, last] = ranges[mid]!
    if (cp < first) hi = mid - 1
    else if (cp > last) lo = mid + 1
    else return true
  }
  return false
}

/** A per-code-point decision, made once. */
function decided<T>(decide: (cp: number) => T): (cp: number) => T {
  const cache = new Map<number, T>()
  return (cp) => {
    let value = cache.get(cp)
    if (value === undefined && !cache.has(cp)) {
      value = decide(cp)
      cache.set(cp, value)
    }
    return value as T
  }
}

/** Hugging Face's CJK ranges, code point by code point (its 0x2B920 start of extension E included). */
function isChinese(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f)
    || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f)
}

const isControl = decided((cp) => cp === 0 || cp === 0xfffd || inRanges(HF_CONTROL, cp))
const isCleanSpace = decided((cp) => inRanges(HF_CLEAN_SPACE, cp))
const isMark = decided((cp) => inRanges(HF_MARK, cp))
const isPunctuation = decided((cp) => inRanges(HF_PUNCTUATION, cp))
const isWhitespace = decided((cp) => inRanges(HF_WHITESPACE, cp))
/** The runtime decomposes it and Hugging Face does not (a character Unicode added since). */
const keptWhole = decided((cp) => !inRanges(HF_DECOMPOSABLE, cp) && String.fromCodePoint(cp).normalize('NFD') !== String.fromCodePoint(cp))

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

export interface BertNormalizerOptions {
  readonly cleanText: boolean
  readonly handleChineseChars: boolean
  /** null: as `lowercase` (Hugging Face's default). */
  readonly stripAccents: boolean | null
  readonly lowercase: boolean
}

function nfd(text: string): string {
  if (![...text].some((ch) => keptWhole(ch.codePointAt(0)!))) return text.normalize('NFD')
  let out = ''
  let run = ''
  for (const ch of text) {
    if (keptWhole(ch.codePointAt(0)!)) {
      out += run.normalize('NFD') + ch
      run = ''
    } else {
      run += ch
    }
  }
  return out + run.normalize('NFD')
}

/** Hugging Face's BertNormalizer: clean, CJK spacing, accents stripped (NFD, nonspacing marks removed), lowercase. */
export function normalizeBert(text: string, options: BertNormalizerOptions): string {
  // Printable ASCII: nothing to clean, strip or space out; lowercase is the same everywhere.
  if (PRINTABLE_ASCII.test(text)) return options.lowercase ? text.toLowerCase() : text
  // A lone surrogate (a JavaScript string can hold one) is U+FFFD in UTF-8, as Hugging Face and the database see it.
  text = text.replace(LONE_SURROGATE, '\ufffd')
  let out = ''
  for (const ch of text) {
    const cp = ch.codePointAt(0)!
    let c = ch
    if (options.cleanText) {
      if (isControl(cp)) continue
      if (isCleanSpace(cp)) c = ' '
    }
    out += options.handleChineseChars && isChinese(cp) ? ` ${c} ` : c
  }
  if (options.stripAccents ?? options.lowercase) {
    let stripped = ''
    for (const ch of nfd(out)) if (!isMark(ch.codePointAt(0)!)) stripped += ch
    out = stripped
  }
  if (options.lowercase) {
    let lowered = ''
    for (const ch of out) lowered += HF_LOWERCASE[ch.codePointAt(0)!] ?? ch
    out = lowered
  }
  return out
}

/** Hugging Face's BertPreTokenizer: split on whitespace (dropped) and around each punctuation character (kept). */
export function preTokenizeBert(text: string): string[] {
  const words: string[] = []
  let current = ''
  for (const ch of text) {
    const cp = ch.codePointAt(0)!
    if (isWhitespace(cp)) {
      if (current) words.push(current)
      current = ''
    } else if (isPunctuation(cp)) {
      if (current) words.push(current)
      words.push(ch)
      current = ''
    } else {
      current += ch
    }
  }
  if (current) words.push(current)
  return words
}
