import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { MODELS_DIR, TINY_16, loadTiny } from '../helpers/embedders.js'
import { differences, exhaustiveTexts, huggingFaceIds } from '../helpers/tokenizer-reference.js'

/**
 * The local embedder tokenises every assigned code point — alone, inside a word, between capital
 * sigmas — exactly as Hugging Face's tokenizers library does (npm `tokenizers`, the Rust code
 * PostgresML and sentence-transformers run). Before, it classified characters by V8's Unicode:
 * combining marks and punctuation added since Hugging Face's tables were stripped or split, and
 * uppercase Greek words ended in a final sigma (ς) where Hugging Face lowercases to σ.
 * pgml_compat is held to the same texts on the server (test/server/pgml-compat.test.ts).
 */
describe('tokenizer conformance on every code point', () => {
  // One model: the normaliser and pre-tokenizer under test are the same for every BERT-family model
  // (the shipped one is held to the library on the hostile corpus, test/unit/tokenizer-conformance.test.ts).
  // This file runs on every Node version CI tests (V8's Unicode differs between them).
  it('the local embedder gives Hugging Face\'s ids on every assigned code point', async () => {
    const texts = exhaustiveTexts()
    const expected = await huggingFaceIds(join(MODELS_DIR, TINY_16.id, 'tokenizer.json'), texts)
    const got = (await loadTiny(TINY_16)).tokenize(texts)
    expect(differences(texts, got, expected)).toEqual({ count: 0, first: [] })
  }, 300_000)
})
