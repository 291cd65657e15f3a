/**
 * Directive comments in a migration's header tell `pgml-kit migrate` how to run it:
 *   -- pgml-kit:no-transaction        run statement by statement, outside a transaction (CONCURRENTLY)
 *   -- pgml-kit:requires pgml         applying it needs pgml.embed (PostgresML or pgml_compat)
 *   -- pgml-kit:down-requires pgml    reverting it needs pgml.embed
 * Plain SQL otherwise, so a DBA can read and run it by hand.
 *
 * Directives are read only from the file's own header: the comment lines at its top, before the
 * `-- Up Migration` marker. Nothing from a config can reach those lines unescaped (names are
 * escaped in comments and Unicode-escaped in SQL), so no name can add or forge one.
 */
export const NO_TRANSACTION = '-- pgml-kit:no-transaction'
export const REQUIRES_PGML = '-- pgml-kit:requires pgml'
export const DOWN_REQUIRES_PGML = '-- pgml-kit:down-requires pgml'

export interface MigrationDirectives {
  readonly noTransaction: boolean
  /** What applying the file needs (`pgml`). */
  readonly requires: readonly string[]
  /** What reverting the file needs. */
  readonly downRequires: readonly string[]
}

const SECTION_MARKER = /^--[\s-]*(up|down)\s+migration/i

export function readDirectives(content: string): MigrationDirectives {
  const requires: string[] = []
  const downRequires: string[] = []
  let noTransaction = false
  for (const raw of content.split('\n')) {
    const line = raw.trim()
    if (line === '') continue
    if (!line.startsWith('--') || SECTION_MARKER.test(line)) break
    const match = /^--\s*pgml-kit:(\S+)(?:\s+(\S+))?\s*$/.exec(line)
    if (!match) continue
    if (match[1] === 'no-transaction') noTransaction = true
    if (match[1] === 'requires' && match[2]) requires.push(match[2])
    if (match[1] === 'down-requires' && match[2]) downRequires.push(match[2])
  }
  return { noTransaction, requires, downRequires }
}
