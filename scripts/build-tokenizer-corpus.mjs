#!/usr/bin/env node
// Writes test/fixtures/tokenizer/corpus.json: hostile texts and the token ids Hugging Face's own
// tokenizer (the Rust `tokenizers` library, npm `tokenizers`) gives for each, with each model pgml-kit
// tests or ships (truncated at the model's maximum length, special tokens added). pgml_compat's
// tokenizer and the local embedder's (transformers.js) must give the same ids
// (test/unit/tokenizer-conformance.test.ts, test/server/pgml-compat.test.ts).
//
//   node scripts/build-tokenizer-corpus.mjs
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Tokenizer } from 'tokenizers'

const root = fileURLToPath(new URL('..', import.meta.url))
const MODELS = {
  'pgml-kit/tiny-bert-16': 'test/fixtures/models/pgml-kit/tiny-bert-16',
  'pgml-kit/tiny-bert-32': 'test/fixtures/models/pgml-kit/tiny-bert-32',
  'pgml-kit/wordnet-static-128': 'models/pgml-kit/wordnet-static-128',
}

const TEXTS = [
  // plain
  'homes for families', 'Affordable housing for families', '', '   ',
  // special tokens written in the text
  '[CLS]', 'a [SEP] b', '[MASK]ed word', 'x[UNK]y', '[PAD] [pad] [Cls]', '[CLS][SEP][MASK]', 'passage: [SEP] query: [CLS]', '[[CLS]]', '[ CLS ]',
  // code points with no character assigned, private use, noncharacters
  'x \u0378 y', 'a\u{E0080}b', '\u{2FFFE} tail', '\uE000 private \u{F0000}', '\uFDD0 non',
  // newest emoji (Unicode 15, 16) and sequences
  '🫨 🩷 🪿', '🫩 🫆', '👩‍👩‍👧 family', '🇺🇳 flag', '1️⃣ keycap',
  // CJK and its extensions
  '中文 text', 'a中b', 'a𠀀b', 'a𫠠b', 'a𬺰b', 'a𰀀b', '𠀀 ext B', '𪜀 ext C', '𫝀 ext D', '𫠠 ext E', '𬺰 ext F', '𰀀 ext G', '丽 compat', '々〆ヵ', 'カタカナ ひらがな', '한국어',
  // combining marks, scripts with spacing marks
  'cafe\u0301', 'a\u0308\u0304', 'Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇', 'नमस्ते दुनिया', 'สวัสดี', 'Ünïcödé café, naïve résumé',
  // control, format and odd whitespace
  'x\u{13439}y x\u{1BCA0}y x\u{E0001}y', 'x\u{110BD}y x\u0600y x\u{1D173}y', 'x\u08E2y x\u{110CD}y x\u{13430}y x\u0890y x\u061Cy x\u180Ey', 'end\u{10FFFF}', 'nul\u0000byte', 'bell\u0007', 'nel\u0085line', 'zero\u200bwidth', 'soft\u00adhyphen', '\uFEFFbom', 'line\u2028sep\u2029para',
  'vt\u000bff\u000c', 'tab\tnew\nret\r', 'nbsp\u00a0x', 'ideo\u3000space', 'ogham\u1680x', 'narrow\u202fnbsp', 'rtl\u200fmark', 'rep\uFFFDlacement',
  // case and compatibility
  'İstanbul', 'straße', 'ﬁ ligature', 'Ǆemal', 'Σίσυφος', 'ÅNGSTRÖM', 'ＡＢＣ full width', 'Ⅻ roman',
  // punctuation and symbols
  'e-mail', "don't", 'U.S.A.', '¿Qué?', '«quotes»', '—dash—', '$100', '50%', 'a_b', 'a~b a`b a^b', '€5 ©2024 ™', '3.14 1,000 ٣', 'שלום مرحبا',
  // lengths
  'word '.repeat(600), 'a'.repeat(100), 'a'.repeat(101), `${'supercalifragilistic'.repeat(8)} end`,
]

const corpus = { about: 'Hostile texts and the token ids of Hugging Face tokenizers (npm tokenizers) for each model, truncated at the model maximum length, with special tokens. Built by scripts/build-tokenizer-corpus.mjs.', generator: 'tokenizers@0.23.2', texts: TEXTS, ids: {} }
for (const [id, dir] of Object.entries(MODELS)) {
  const tokenizer = Tokenizer.fromFile(`${root}${dir}/tokenizer.json`)
  const config = JSON.parse(readFileSync(`${root}${dir}/tokenizer_config.json`, 'utf8'))
  tokenizer.setTruncation(Number(config.model_max_length ?? 512))
  corpus.ids[id] = []
  for (const text of TEXTS) corpus.ids[id].push((await tokenizer.encode(text)).getIds())
}
writeFileSync(`${root}test/fixtures/tokenizer/corpus.json`, `${JSON.stringify(corpus)}\n`)
process.stderr.write(`${TEXTS.length} texts × ${Object.keys(MODELS).length} models\n`)
