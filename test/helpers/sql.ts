import { loadModule, parseSync } from 'libpg-query'
import type { MigrationFile } from '../../src/migrations/render-files.js'

await loadModule()

/** Parses SQL with the real PostgreSQL parser (libpg-query, PostgreSQL 15 grammar); throws on error. */
export function parseStatements(sql: string): number {
  const result = parseSync(sql) as { stmts?: unknown[] }
  return result.stmts?.length ?? 0
}

/** The statements of a script, one string each, as psql would send them (split by the real parser). */
export function splitStatements(sql: string): string[] {
  const result = parseSync(sql) as { stmts?: { stmt_location?: number; stmt_len?: number }[] }
  const bytes = Buffer.from(sql, 'utf8')
  return (result.stmts ?? []).map((s) => {
    const start = s.stmt_location ?? 0
    return bytes.subarray(start, s.stmt_len ? start + s.stmt_len : bytes.length).toString('utf8').trim()
  }).filter((s) => s.length > 0)
}

/** The Up and Down sections, found the way node-pg-migrate and pgml-kit's loader find them: markers at the start of a line. */
export function sections(content: string): { up: string; down: string } {
  const up = content.search(/^\s*--[\s-]*up\s+migration/im)
  const down = content.search(/^\s*--[\s-]*down\s+migration/im)
  if (up < 0 || down < up) throw new Error('missing Up/Down markers')
  return { up: content.slice(up, down), down: content.slice(down) }
}

/** Every statement of every generated file, up and down, must parse. Returns the count. */
export function parseFiles(files: readonly MigrationFile[]): number {
  let count = 0
  for (const file of files) {
    const { up, down } = sections(file.content)
    count += parseStatements(up) + parseStatements(down)
  }
  return count
}

/**
 * Where each of `parts` is found in `text`, in that order: fails naming the first part that is
 * missing or out of order (an `indexOf(a) < indexOf(b)` passes when `a` is missing).
 */
export function expectInOrder(text: string, ...parts: readonly string[]): void {
  let from = 0
  for (const part of parts) {
    const at = text.indexOf(part, from)
    if (at < 0) {
      const anywhere = text.indexOf(part)
      throw new Error(anywhere < 0 ? `missing: ${JSON.stringify(part)}` : `out of order: ${JSON.stringify(part)} comes before the part listed ahead of it`)
    }
    from = at + part.length
  }
}
