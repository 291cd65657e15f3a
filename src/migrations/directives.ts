/**
 * Directive comments in a migration's header tell `pgml-kit migrate` how to run it:
 *   -- pgml-kit:no-transaction   run statement by statement, outside a transaction (CONCURRENTLY)
 *   -- pgml-kit:requires pgml    the target must have pgml.embed (PostgresML or pgml_compat)
 * Plain SQL otherwise, so a DBA can read and run it by hand.
 */
export const NO_TRANSACTION = '-- pgml-kit:no-transaction'
export const REQUIRES_PGML = '-- pgml-kit:requires pgml'

export interface MigrationDirectives {
  readonly noTransaction: boolean
  readonly requires: readonly string[]
}

export function readDirectives(content: string): MigrationDirectives {
  const upStart = content.search(/^\s*--[\s-]*up\s+migration/im)
  const header = upStart >= 0 ? content.slice(0, upStart) : content
  const requires: string[] = []
  let noTransaction = false
  for (const line of header.split('\n')) {
    const match = /^--\s*pgml-kit:(\S+)(?:\s+(\S+))?\s*$/.exec(line.trim())
    if (!match) continue
    if (match[1] === 'no-transaction') noTransaction = true
    if (match[1] === 'requires' && match[2]) requires.push(match[2])
  }
  return { noTransaction, requires }
}
