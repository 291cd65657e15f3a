import { Tokenizer } from 'tokenizers'

/**
 * The exhaustive tokenizer conformance texts: every assigned code point (by this runtime's Unicode;
 * surrogates and unassigned code points left out) alone, inside a word, and between two capital
 * sigmas (lowercasing in context, marks after a letter), then words whose lowercase differs by
 * context (Greek final sigma).
 */
export function exhaustiveTexts(): string[] {
  const texts: string[] = []
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue
    const c = String.fromCodePoint(cp)
    if (/\p{Cn}/u.test(c)) continue
    texts.push(c, `a${c}b`, `Σ${c}Σ`)
  }
  // Casing in context (Greek final sigma, Turkish dotted I, titlecase digraphs); lone surrogates (a JavaScript string can hold one; UTF-8 has U+FFFD there).
  texts.push('ΟΔΟΣ ΟΔΟΣ. ΣΑΣ', 'ΚΑΛΗΜΕΡΑ ΣΑΣ', 'İSTANBUL ıstanbul', 'ǅemal Ǆ', 'ΑΣ.', 'Σ', 'a\ud800b', '\udc00', 'x\ud83dy')
  return texts
}

/** Token ids from Hugging Face's own tokenizers library (npm `tokenizers`, the Rust code), special tokens added. */
export async function huggingFaceIds(tokenizerJson: string, texts: readonly string[]): Promise<number[][]> {
  const tokenizer = Tokenizer.fromFile(tokenizerJson)
  const ids: number[][] = []
  for (let i = 0; i < texts.length; i += 20_000) {
    for (const encoding of await tokenizer.encodeBatch(texts.slice(i, i + 20_000))) ids.push(encoding.getIds())
  }
  return ids
}

/** How many texts' ids differ, and the first `limit` of them as `U+0061 U+061D U+0062: got [ids], Hugging Face [ids]`. */
export function differences(texts: readonly string[], got: readonly (readonly number[])[], expected: readonly (readonly number[])[], limit = 10): { count: number; first: string[] } {
  const first: string[] = []
  let count = 0
  for (let i = 0; i < texts.length; i++) {
    if (got[i]!.length === expected[i]!.length && got[i]!.every((id, k) => id === expected[i]![k])) continue
    count++
    if (first.length < limit) {
      const cps = [...texts[i]!].map((ch) => `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`).join(' ')
      first.push(`${cps}: got [${got[i]!.join(', ')}], Hugging Face [${expected[i]!.join(', ')}]`)
    }
  }
  return { count, first }
}
