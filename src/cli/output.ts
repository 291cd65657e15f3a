import pc from 'picocolors'
import { isConnectionLost } from '../db/connect.js'
import { connectionSecrets, redactSecrets } from '../db/secrets.js'
import { PgmlKitError, PlanError } from '../errors.js'

export const EXIT = { ok: 0, checkFailed: 1, usage: 2 } as const

/**
 * What a terminal acts on instead of showing, or what splits or reorders a line of a log: C0
 * controls (ESC, BEL, CR, LF, TAB, ...), DEL, C1 controls (U+0080–U+009F: 8-bit CSI, OSC, ST),
 * the line and paragraph separators, and the bidi embeddings, overrides and isolates. The second
 * keeps the newlines and tabs of text meant to span lines (SQL, a help text).
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const UNPRINTABLE_IN_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const NAMED_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * `value` as text that is safe on a terminal and in a line-oriented log: every character above
 * becomes a visible escape (`\x1b`, `\n`, `\u202e`); everything else, accents, CJK and emoji
 * included, stays as it is. For every value from the database or from an error in human-readable
 * output; escape before colouring, never a coloured string. `--json` needs none (JSON.stringify
 * escapes C0 controls, and a parser reads the exact value back).
 *
 * @example
 * printable('\x1b[2J\x1b[Hworker healthy\nok') // → '\\x1b[2J\\x1b[Hworker healthy\\nok'
 */
export function printable(value: unknown, options: { readonly lines?: boolean } = {}): string {
  return String(value).replace(options.lines ? UNPRINTABLE_IN_LINES : UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0)
    return NAMED_ESCAPES[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`)
  })
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/** Mistakes in how pgml-kit was called or configured: exit 2, like a usage error. */
const USAGE_CODES = new Set([
  'CONFIG_INVALID', 'CONFIG_DOES_NOT_MATCH_DATABASE', 'CONFIG_LOAD_FAILED', 'CONFIG_NOT_FOUND', 'NAME_REQUIRED', 'COLUMN_UNKNOWN', 'COLUMN_AMBIGUOUS', 'COLUMN_NOT_IN_DATABASE', 'DATABASE_URL_INVALID',
  // A feature view, training set, model project or model id that the config (or the project) does not have.
  'FEATURE_VIEW_UNKNOWN', 'TRAINING_SET_UNKNOWN', 'MODEL_UNKNOWN', 'OVERRIDE_REASON_REQUIRED',
])

interface Reported {
  readonly code: string
  readonly message: string
  /** The message as lines (see PgmlKitError.lines), each printed escaped on its own. */
  readonly lines?: readonly string[] | undefined
  readonly where: string | null
  readonly hint: string | null
}

/**
 * A PostgreSQL error's CONTEXT without the traceback PL/Python puts in it (`Traceback (most recent
 * call last):` and its frames, up to the `PL/Python function "name"` line, which stays): the
 * function and the SQL statements around it are what tells a user where; the frames are pgml's code.
 */
export function withoutTraceback(where: string | null): string | null {
  if (where === null || !where.includes('Traceback (most recent call last):')) return where
  const kept: string[] = []
  let inTraceback = false
  for (const line of where.split('\n')) {
    if (line.startsWith('Traceback (most recent call last):')) inTraceback = true
    else if (inTraceback && /^PL\/Python function "[^"]*"$/.test(line)) { inTraceback = false; kept.push(line) }
    else if (!inTraceback && line.trim() !== '') kept.push(line)
  }
  return kept.join('; ') || null
}

/** A PostgreSQL error (node-postgres' DatabaseError): its SQLSTATE, detail and hint. */
function isDatabaseError(error: unknown): error is Error & { code: string; detail?: string; hint?: string; where?: string } {
  const code = (error as { code?: unknown } | null)?.code
  return error instanceof Error && typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && 'severity' in error
}

function describe(error: unknown): { reported: Reported; exit: number } | undefined {
  if (error instanceof PgmlKitError) {
    const exit = error instanceof PlanError || USAGE_CODES.has(error.code) ? EXIT.usage : EXIT.checkFailed
    return { reported: { code: error.code, message: error.message, lines: error.lines, where: error.where ?? null, hint: error.hint ?? null }, exit }
  }
  if (isConnectionLost(error)) {
    return {
      reported: { code: 'CONNECTION_LOST', message: `lost the connection to the database: ${(error as Error).message}`, where: null, hint: 'the server (or the process serving the embedded database) went away; run the command again' },
      exit: EXIT.checkFailed,
    }
  }
  if (isDatabaseError(error)) {
    // A PL/Python function's error (pgml, pgml_compat): its message without PL/Python's exception
    // class, each of its lines on its own, and its CONTEXT without the Python traceback.
    const text = error.message.replace(/^plpy\.(?:Error|SPIError|Fatal): /, '')
    const message = `PostgreSQL refused it (${error.code}): ${text}${error.detail ? `; ${error.detail}` : ''}`
    const lines = message.includes('\n') ? message.split('\n').filter((line) => line.trim() !== '') : undefined
    return { reported: { code: `SQLSTATE_${error.code}`, message, lines, where: withoutTraceback(error.where ?? null), hint: error.hint ?? null }, exit: EXIT.checkFailed }
  }
  return undefined
}

/**
 * `text` without the passwords of this run (of `--database-url`, else `$DATABASE_URL`, and
 * `$PGPASSWORD`), for everything the CLI prints that is not built from masked parts: errors,
 * driver messages.
 */
export function withoutSecrets(text: string, databaseUrl?: string): string {
  return redactSecrets(text, connectionSecrets(databaseUrl ?? process.env.DATABASE_URL))
}

/** A user mistake, an unusable target or a refused statement: message, where, what to do; no stack trace. */
export function reportError(error: unknown, json: boolean, databaseUrl?: string): number {
  const described = describe(error)
  const clean = (text: string | null) => (text === null ? null : withoutSecrets(text, databaseUrl))
  if (described) {
    const r = described.reported
    const reported = { code: r.code, message: clean(r.message)!, where: clean(r.where), hint: clean(r.hint) }
    if (json) {
      printJson({ error: reported })
    } else {
      const lines = r.lines ? r.lines.map((line) => printable(clean(line)!)) : [printable(reported.message)]
      process.stderr.write(`${pc.red('error')} ${lines.join('\n')}\n`)
      if (reported.where && !reported.message.includes(reported.where)) process.stderr.write(`  ${pc.dim('at')} ${printable(reported.where)}\n`)
      if (reported.hint) process.stderr.write(`  ${pc.cyan('hint')} ${printable(reported.hint)}\n`)
    }
    return described.exit
  }
  process.stderr.write(`${pc.red('internal error')} ${printable(withoutSecrets((error as Error)?.stack ?? String(error), databaseUrl), { lines: true })}\n`)
  return EXIT.checkFailed
}

/**
 * A cli-table3 table as text: a rule under the header and none between rows (as psql prints), so a
 * long listing reads as one; `rules` keeps a rule between rows whose cells wrap over several lines
 * (search results), where it shows where one row ends.
 */
export function tableText(table: { toString(): string }, options: { readonly rules?: boolean } = {}): string {
  const text = table.toString()
  if (options.rules) return `${text}\n`
  let header = true
  return `${text.split('\n').filter((line) => {
    if (!line.startsWith('├')) return true
    const keep = header
    header = false
    return keep
  }).join('\n')}\n`
}
