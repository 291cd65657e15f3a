import { loadModule, parseSync } from 'libpg-query'

let loaded: Promise<void> | undefined

/** Loads the PostgreSQL parser (WASM) once. */
export function loadParser(): Promise<void> {
  loaded ??= loadModule()
  return loaded
}

interface RawStatement {
  stmt_location?: number
  stmt_len?: number
}

/**
 * Splits SQL into statements with PostgreSQL's own parser, so semicolons inside strings,
 * dollar-quoted bodies and comments are handled as the server would. Offsets from the parser are
 * in UTF-8 bytes. Call `loadParser()` first.
 */
export function splitStatements(sql: string): string[] {
  const bytes = Buffer.from(sql, 'utf8')
  const parsed = parseSync(sql) as { stmts?: RawStatement[] }
  const out: string[] = []
  for (const stmt of parsed.stmts ?? []) {
    const start = stmt.stmt_location ?? 0
    const end = stmt.stmt_len ? start + stmt.stmt_len : bytes.length
    const text = bytes.subarray(start, end).toString('utf8').trim()
    if (text) out.push(text)
  }
  return out
}
