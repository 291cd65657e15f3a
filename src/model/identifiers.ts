import { createHash } from 'node:crypto'

/**
 * Names pgml-kit derives for the objects it makes (indexes, trigger functions, chunk tables and
 * their copies), within PostgreSQL's 63-byte limit. Pure; the model names objects with them, and
 * src/sql/quote.ts quotes them.
 */

const MAX_IDENTIFIER_BYTES = 63

/** Cuts a name to at most `bytes` UTF-8 bytes at a character boundary (never half a surrogate pair). */
function truncateBytes(name: string, bytes: number): string {
  let out = ''
  let used = 0
  for (const ch of name) {
    const size = Buffer.byteLength(ch, 'utf8')
    if (used + size > bytes) break
    out += ch
    used += size
  }
  return out
}

/**
 * Builds an identifier from parts; if it would exceed PostgreSQL's 63-byte limit (where the server
 * would silently truncate it) it is shortened and made unique with a hash of the full name.
 * Readable and stable (default index names use it), but two different part lists can join to the
 * same name: callers check the names they derive for collisions.
 */
export function deriveIdentifier(parts: readonly string[], separator = '_'): string {
  const full = parts.join(separator)
  if (Buffer.byteLength(full, 'utf8') <= MAX_IDENTIFIER_BYTES) return full
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 8)
  return `${truncateBytes(full, MAX_IDENTIFIER_BYTES - hash.length - 1)}_${hash}`
}

/**
 * A name for an object that belongs to one database object, unique per owner: a readable prefix
 * and a hash of the owner's exact identity (schema, table, column as a list, so `a__b`.`c` and
 * `a`.`b__c` differ), within 63 bytes.
 */
export function ownedIdentifier(kind: string, owner: readonly string[]): string {
  const hash = createHash('sha256').update(JSON.stringify([kind, ...owner])).digest('hex').slice(0, 12)
  const readable = [kind, ...owner.slice(1)].join('__')
  return `${truncateBytes(readable, MAX_IDENTIFIER_BYTES - hash.length - 2)}__${hash}`
}

export function identifierFits(name: string): boolean {
  return Buffer.byteLength(name, 'utf8') <= MAX_IDENTIFIER_BYTES
}
