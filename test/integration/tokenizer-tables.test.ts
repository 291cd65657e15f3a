import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/**
 * The tables both tokenizers read instead of their runtime's Unicode (src/embed/hf-unicode-tables.ts
 * and pgml_compat's generated block) are what npm `tokenizers` says today: regenerated in memory and
 * compared. (Here, run once: they do not depend on the Node version; the ids do, and are tested on
 * every version in test/unit/tokenizer-exhaustive.test.ts.)
 */
describe('the Hugging Face Unicode tables', () => {
  it('are current (scripts/build-hf-unicode.mjs --check)', () => {
    expect(() => execFileSync(process.execPath, [join(ROOT, 'scripts/build-hf-unicode.mjs'), '--check'], { stdio: 'pipe' })).not.toThrow()
  }, 120_000)
})
