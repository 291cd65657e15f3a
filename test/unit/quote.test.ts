import { describe, expect, it } from 'vitest'
import { deriveIdentifier, dollarQuote, quoteIdent, quoteLiteral } from '../../src/sql/quote.js'
import { parseStatements } from '../helpers/sql.js'

describe('quoting', () => {
  it('quotes identifiers so any name is one identifier', () => {
    expect(quoteIdent('documents')).toBe('"documents"')
    expect(quoteIdent('Order "Items"; DROP TABLE x')).toBe('"Order ""Items""; DROP TABLE x"')
    expect(parseStatements(`SELECT 1 FROM ${quoteIdent('Order "Items"; DROP TABLE x')}`)).toBe(1)
    expect(() => quoteIdent('')).toThrow(/empty/)
    expect(() => quoteIdent('a\0b')).toThrow(/NUL/)
  })

  it('quotes literals, escaping control characters readably', () => {
    expect(quoteLiteral("it's")).toBe("'it''s'")
    expect(quoteLiteral('a\\b')).toBe("'a\\b'")
    expect(quoteLiteral('a\n\nb')).toBe("E'a\\n\\nb'")
    expect(quoteLiteral("x'\\\t\u0001")).toBe("E'x''\\\\\\t\\x01'")
    expect(parseStatements(`SELECT ${quoteLiteral("'); DROP TABLE x; --")}, ${quoteLiteral("\n'\\")}`)).toBe(1)
  })

  it('picks a dollar-quote tag that the body does not contain', () => {
    expect(dollarQuote('select 1')).toBe('$pgml_kit$select 1$pgml_kit$')
    expect(dollarQuote('a $pgml_kit$ b')).toBe('$pgml_kit_1$a $pgml_kit$ b$pgml_kit_1$')
  })

  it('shortens long identifiers to 63 bytes, keeping them unique', () => {
    const a = deriveIdentifier(['x'.repeat(40), 'y'.repeat(40), 'a'])
    const b = deriveIdentifier(['x'.repeat(40), 'y'.repeat(40), 'b'])
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(63)
    expect(a).not.toBe(b)
    expect(deriveIdentifier(['short', 'name'])).toBe('short_name')
  })
})
