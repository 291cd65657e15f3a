import { createHash } from 'node:crypto'

/**
 * The only place where names and values become SQL text. Everything that renders SQL calls these;
 * nothing else concatenates user input into a statement.
 */

const MAX_IDENTIFIER_BYTES = 63

function assertNoNul(value: string, what: string): void {
  if (value.includes('\0')) throw new TypeError(`${what} contains a NUL character, which PostgreSQL cannot store`)
}

/** Always double-quotes, so reserved words, capitals and odd characters are all safe. */
export function quoteIdent(name: string): string {
  assertNoNul(name, `identifier ${JSON.stringify(name)}`)
  if (name.length === 0) throw new TypeError('an SQL identifier cannot be empty')
  return `"${name.replaceAll('"', '""')}"`
}

export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`
}

const CONTROL = /[\u0001-\u001f\u007f]/

/**
 * A string literal. Plain `'...'` (standard_conforming_strings is on since PostgreSQL 9.1); text
 * with control characters (a newline separator, say) becomes an `E'...'` literal with escapes, so
 * the SQL stays one readable line.
 */
export function quoteLiteral(value: string): string {
  assertNoNul(value, 'string literal')
  if (!CONTROL.test(value)) return `'${value.replaceAll("'", "''")}'`
  let out = ''
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0
    if (ch === '\\') out += '\\\\'
    else if (ch === "'") out += "''"
    else if (ch === '\n') out += '\\n'
    else if (ch === '\r') out += '\\r'
    else if (ch === '\t') out += '\\t'
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`
    else out += ch
  }
  return `E'${out}'`
}

export function quoteLiteralOrNull(value: string | null): string {
  return value === null ? 'NULL' : quoteLiteral(value)
}

export function renderBoolean(value: boolean): string {
  return value ? 'true' : 'false'
}

/** An integer that came from validated config; refuses anything else rather than rendering it. */
export function renderInteger(value: number): string {
  if (!Number.isSafeInteger(value)) throw new TypeError(`expected an integer, got ${String(value)}`)
  return String(value)
}

export function renderTextArray(values: readonly string[]): string {
  return `ARRAY[${values.map(quoteLiteral).join(', ')}]::text[]`
}

export function renderJsonb(value: unknown): string {
  return `${quoteLiteral(JSON.stringify(value))}::jsonb`
}

/**
 * A dollar-quoted body whose tag does not occur inside it, so nothing in the body can end the quote.
 */
export function dollarQuote(body: string, baseTag = 'pgml_kit'): string {
  let tag = baseTag
  for (let i = 1; body.includes(`$${tag}$`); i++) tag = `${baseTag}_${i}`
  return `$${tag}$${body}$${tag}$`
}

/**
 * Builds an identifier from parts; if it would exceed PostgreSQL's 63-byte limit (where the server
 * would silently truncate it) it is shortened and made unique with a hash of the full name.
 */
export function deriveIdentifier(parts: readonly string[], separator = '_'): string {
  const full = parts.join(separator)
  if (Buffer.byteLength(full, 'utf8') <= MAX_IDENTIFIER_BYTES) return full
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 8)
  let head = full
  while (Buffer.byteLength(`${head}_${hash}`, 'utf8') > MAX_IDENTIFIER_BYTES) head = head.slice(0, -1)
  return `${head}_${hash}`
}

export function identifierFits(name: string): boolean {
  return Buffer.byteLength(name, 'utf8') <= MAX_IDENTIFIER_BYTES
}
