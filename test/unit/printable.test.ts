import { describe, expect, it } from 'vitest'
import { printable } from '../../src/cli/output.js'

/**
 * What a value from the database or from an error may not put on a terminal or into a line of a
 * log as it is: C0 controls and DEL, C1 controls, the line and paragraph separators, and the bidi
 * embeddings, overrides and isolates. The tests check the output against this list, written out
 * code point by code point, not against the helper's own pattern.
 */
const UNSAFE: readonly number[] = [
  ...Array.from({ length: 0x20 }, (_, i) => i), 0x7f,
  ...Array.from({ length: 0x20 }, (_, i) => 0x80 + i),
  0x2028, 0x2029, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069,
]
const UNSAFE_SET = new Set(UNSAFE)

function rawUnsafe(text: string, allowed: readonly string[] = []): string[] {
  return [...text].filter((c) => UNSAFE_SET.has(c.codePointAt(0)!) && !allowed.includes(c))
}

describe('printable: values from the database or from errors, made safe for a terminal and a line of a log', () => {
  it('escapes every C0 control, DEL and every C1 control as a visible escape', () => {
    const named: Record<number, string> = { 0x09: '\\t', 0x0a: '\\n', 0x0d: '\\r' }
    for (const cp of UNSAFE.filter((c) => c < 0x100)) {
      const escaped = printable(`a${String.fromCodePoint(cp)}b`)
      expect(escaped, `U+${cp.toString(16)}`).toBe(`a${named[cp] ?? `\\x${cp.toString(16).padStart(2, '0')}`}b`)
    }
  })

  it('escapes the line and paragraph separators and the bidi overrides and isolates as \\uXXXX', () => {
    for (const cp of UNSAFE.filter((c) => c >= 0x100)) {
      expect(printable(`x${String.fromCodePoint(cp)}y`)).toBe(`x\\u${cp.toString(16)}y`)
    }
  })

  it.each([
    ['erase line and move up, then set the window title with OSC ... BEL', '\x1b[2K\x1b[1A\x1b]0;owned\x07done', '\\x1b[2K\\x1b[1A\\x1b]0;owned\\x07done'],
    ['clear the screen and write a fake status', '\x1b[2J\x1b[Hworker healthy', '\\x1b[2J\\x1b[Hworker healthy'],
    ['OSC 8 hyperlink ended by ST', '\x1b]8;;https://example.invalid\x1b\\click\x1b]8;;\x1b\\', '\\x1b]8;;https://example.invalid\\x1b\\click\\x1b]8;;\\x1b\\'],
    ['a carriage return that overwrites the line', 'migration failed\rmigration applied', 'migration failed\\rmigration applied'],
    ['a newline that forges a table row', 'public\n│ fake │ 0 │', 'public\\n│ fake │ 0 │'],
    ['an 8-bit CSI (C1) that clears the screen', '\u009b2J\u009bH', '\\x9b2J\\x9bH'],
    ['an 8-bit OSC ended by an 8-bit ST', '\u009d0;owned\u009c', '\\x9d0;owned\\x9c'],
    ['a right-to-left override that reorders the rest of the line', 'ok \u202egnp.exe', 'ok \\u202egnp.exe'],
    ['isolates that hide a part of the line', 'a\u2066b\u2069c\u2067d\u2068e', 'a\\u2066b\\u2069c\\u2067d\\u2068e'],
    ['a line separator some log viewers break on', 'one\u2028two\u2029three', 'one\\u2028two\\u2029three'],
    ['a NUL, a backspace and DEL', 'a\0b\bc\x7f', 'a\\x00b\\x08c\\x7f'],
    ['a tab in one line', 'key\tvalue', 'key\\tvalue'],
  ])('%s', (_what, value, expected) => {
    const escaped = printable(value)
    expect(escaped).toBe(expected)
    expect(rawUnsafe(escaped)).toEqual([])
    expect(escaped.split('\n')).toHaveLength(1)
  })

  it('leaves ordinary Unicode alone: accents, Greek, CJK, Arabic and Hebrew letters, emoji with joiners, no-break space', () => {
    const ordinary = 'café naïve Ελληνικά 文档 日本語 한국어 مرحبا שלום 😀 👩‍👩‍👧 🇫🇷 e\u0301 a\u00a0b ± → "quoted" \\ back\\slash'
    expect(printable(ordinary)).toBe(ordinary)
    // Every code point of the Basic Multilingual Plane outside the list, and a few beyond it, stays as it is.
    for (let cp = 0; cp <= 0xffff; cp++) {
      if (UNSAFE_SET.has(cp) || (cp >= 0xd800 && cp <= 0xdfff)) continue
      const c = String.fromCodePoint(cp)
      if (printable(c) !== c) expect.fail(`U+${cp.toString(16)} was changed to ${printable(c)}`)
    }
    for (const cp of [0x1f600, 0x20000, 0x1d11e, 0x10ffff]) expect(printable(String.fromCodePoint(cp))).toBe(String.fromCodePoint(cp))
  })

  it('turns anything into text: numbers, null, objects', () => {
    expect(printable(42)).toBe('42')
    expect(printable(null)).toBe('null')
    expect(printable(undefined)).toBe('undefined')
    expect(printable(new Error('bad\x1b[2J'))).toBe('Error: bad\\x1b[2J')
  })

  it('with lines: keeps the newlines and tabs of text that has several lines, escapes the rest', () => {
    const hostile = 'CREATE INDEX "a\x1b[2J"\n\tON "t\u009b" \r\n-- \u202e'
    const escaped = printable(hostile, { lines: true })
    expect(escaped).toBe('CREATE INDEX "a\\x1b[2J"\n\tON "t\\x9b" \\r\n-- \\u202e')
    expect(rawUnsafe(escaped, ['\n', '\t'])).toEqual([])
  })

  it('JSON.stringify (what --json prints) escapes C0 controls itself and parses back to the same string', () => {
    const hostile = UNSAFE.map((cp) => String.fromCodePoint(cp)).join('') + '\x1b[2J\x1b[Hworker healthy 文档 😀'
    const json = JSON.stringify({ value: hostile })
    expect(rawUnsafe(json, UNSAFE.filter((cp) => cp >= 0x7f).map((cp) => String.fromCodePoint(cp)))).toEqual([])
    expect((JSON.parse(json) as { value: string }).value).toBe(hostile)
  })
})
