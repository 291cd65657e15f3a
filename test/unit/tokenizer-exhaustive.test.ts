import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { MODELS_DIR, TINY_16, WORDNET, loadTiny, loadWordnet } from '../helpers/embedders.js'
import { differences, exhaustiveTexts, huggingFaceIds } from '../helpers/tokenizer-reference.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/**
 * The local embedder tokenises every assigned code point — alone, inside a word, between capital
 * sigmas — exactly as Hugging Face's tokenizers library does (npm `tokenizers`, the Rust code
 * PostgresML and sentence-transformers run). Before, it classified characters by V8's Unicode:
 * combining marks and punctuation added since Hugging Face's tables were stripped or split, and
 * uppercase Greek words ended in a final sigma (ς) where Hugging Face lowercases to σ.
 * pgml_compat is held to the same texts on the server (test/server/pgml-compat.test.ts).
 */
describe('tokenizer conformance on every code point', () => {
  it('the tables read from Hugging Face\'s library are current (scripts/build-hf-unicode.mjs --check)', () => {
    expect(() => execFileSync(process.execPath, [join(ROOT, 'scripts/build-hf-unicode.mjs'), '--check'], { stdio: 'pipe' })).not.toThrow()
  }, 120_000)

  it.each([
    [TINY_16.id, join(MODELS_DIR, TINY_16.id, 'tokenizer.json'), () => loadTiny(TINY_16)],
    [WORDNET.id, join(ROOT, 'models', WORDNET.id, 'tokenizer.json'), () => loadWordnet()],
  ])('the local embedder gives %s Hugging Face\'s ids on every assigned code point', async (_id, tokenizerJson, load) => {
    const texts = exhaustiveTexts()
    const expected = await huggingFaceIds(tokenizerJson, texts)
    const got = (await load()).tokenize(texts)
    expect(differences(texts, got, expected)).toEqual({ count: 0, first: [] })
  }, 300_000)
})
