// Names made from parts (indexes, trigger functions, chunk tables) live with the model that names them.
export { deriveIdentifier, identifierFits, ownedIdentifier } from '../model/identifiers.js'

/**
 * The only place where names and values become SQL text. Everything that renders SQL calls these;
 * nothing else concatenates user input into a statement.
 */


function assertNoNul(value: string, what: string): void {
  if (value.includes('\0')) throw new TypeError(`${what} contains a NUL character, which PostgreSQL cannot store`)
}

/**
 * Characters that break a line for someone: control characters, and U+0085, U+2028, U+2029, which
 * JavaScript's multiline `^` (the section markers' regular expression) treats as line breaks.
 */
const CONTROL_CHARACTERS = /[\u0001-\u001f\u007f\u0085\u2028\u2029]/
const isControl = (code: number) => code < 0x20 || code === 0x7f || code === 0x85 || code === 0x2028 || code === 0x2029

/**
 * Always double-quotes, so reserved words, capitals and odd characters are all safe. A name with
 * control characters (a newline, say) is written as a Unicode-escaped identifier, `U&"a\000Ab"`,
 * so generated SQL never carries a raw line break inside a name: no line of a migration file can
 * be made to read `-- Down Migration` or a directive by a table or column name.
 */
export function quoteIdent(name: string): string {
  assertNoNul(name, `identifier ${JSON.stringify(name)}`)
  if (name.length === 0) throw new TypeError('an SQL identifier cannot be empty')
  if (!CONTROL_CHARACTERS.test(name)) return `"${name.replaceAll('"', '""')}"`
  let out = ''
  for (const ch of name) {
    const code = ch.codePointAt(0) ?? 0
    if (ch === '"') out += '""'
    else if (ch === '\\') out += '\\\\'
    else if (isControl(code)) out += `\\${code.toString(16).padStart(4, '0')}`
    else out += ch
  }
  return `U&"${out}"`
}

/**
 * A field of a row variable: `NEW."title"`, or `(NEW).U&"a\000Ab"` for a name that needs Unicode
 * escapes — PL/pgSQL resolves `NEW.<field>` with its own name lookup, which does not decode them,
 * while `(NEW).<field>` goes through the SQL parser, which does.
 */
export function renderField(rowRef: string, name: string): string {
  const quoted = quoteIdent(name)
  return quoted.startsWith('U&') ? `(${rowRef}).${quoted}` : `${rowRef}.${quoted}`
}

/**
 * PL/pgSQL: sets a field of a row variable. `NEW."x" := v`, or for a name that needs Unicode
 * escapes (which PL/pgSQL's assignment target cannot take) the whole record with that field replaced.
 */
export function renderAssignField(rowRef: string, name: string, value: string): string {
  const quoted = quoteIdent(name)
  return quoted.startsWith('U&')
    ? `${rowRef} := pg_catalog.jsonb_populate_record(${rowRef}, pg_catalog.jsonb_build_object(${quoteLiteral(name)}, ${value}));`
    : `${rowRef}.${quoted} := ${value};`
}

/**
 * User text (names, model ids, paths) for a comment line: control characters escaped, so it stays
 * on its line and cannot start a directive or a section marker.
 */
export function commentText(text: string): string {
  const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }
  return text.replace(/[\u0000-\u001f\u007f\u0085\u2028\u2029]/g, (ch) => named[ch] ?? `\\u${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`)
}

export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`
}


/**
 * A string literal. Plain `'...'` (standard_conforming_strings is on since PostgreSQL 9.1); text
 * with control characters (a newline separator, say) becomes an `E'...'` literal with escapes, so
 * the SQL stays one readable line.
 */
export function quoteLiteral(value: string): string {
  assertNoNul(value, 'string literal')
  if (!CONTROL_CHARACTERS.test(value)) return `'${value.replaceAll("'", "''")}'`
  let out = ''
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0
    if (ch === '\\') out += '\\\\'
    else if (ch === "'") out += "''"
    else if (ch === '\n') out += '\\n'
    else if (ch === '\r') out += '\\r'
    else if (ch === '\t') out += '\\t'
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`
    else if (isControl(code)) out += `\\u${code.toString(16).padStart(4, '0')}`
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

