import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { TINY_16, TINY_32, WORDNET, loadTiny, loadWordnet } from '../helpers/embedders.js'

/**
 * The committed corpus (scripts/build-tokenizer-corpus.mjs): hostile texts and the ids Hugging
 * Face's own tokenizers library gives for them. The local embedder must see exactly those ids;
 * pgml_compat is held to the same corpus on the server (test/server/pgml-compat.test.ts).
 */
const corpus = JSON.parse(readFileSync(new URL('../fixtures/tokenizer/corpus.json', import.meta.url), 'utf8')) as { texts: string[]; ids: Record<string, number[][]> }

describe('tokenizer conformance with Hugging Face tokenizers', () => {
  it.each([
    [TINY_16.id, () => loadTiny(TINY_16)],
    [TINY_32.id, () => loadTiny(TINY_32)],
    [WORDNET.id, () => loadWordnet()],
  ])('the local embedder gives %s the same token ids as Hugging Face, on every text of the corpus', async (id, load) => {
    const embedder = await load()
    const ids = embedder.tokenize(corpus.texts)
    corpus.texts.forEach((text, i) => expect(ids[i], `text ${i}: ${JSON.stringify(text.slice(0, 40))}`).toEqual(corpus.ids[id]![i]))
  })

  it('keeps [SEP] at the end of a text longer than the model takes, as Hugging Face does', async () => {
    const embedder = await loadTiny(TINY_16)
    const [ids] = embedder.tokenize(['word '.repeat(600)])
    expect(ids).toHaveLength(embedder.maxLength)
    // [CLS] is 2 and [SEP] 3 in the fixture's vocabulary.
    expect([ids![0], ids!.at(-1)]).toEqual([2, 3])
    expect(ids!.filter((id) => id === 3)).toHaveLength(1)
  })
})
