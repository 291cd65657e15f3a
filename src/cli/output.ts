import pc from 'picocolors'
import { isConnectionLost } from '../db/connect.js'
import { connectionSecrets, redactSecrets } from '../db/secrets.js'
import { PgmlKitError, PlanError } from '../errors.js'

export const EXIT = { ok: 0, checkFailed: 1, usage: 2 } as const

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/** Mistakes in how pgml-kit was called or configured: exit 2, like a usage error. */
const USAGE_CODES = new Set([
  'CONFIG_INVALID', 'CONFIG_DOES_NOT_MATCH_DATABASE', 'CONFIG_LOAD_FAILED', 'CONFIG_NOT_FOUND', 'NAME_REQUIRED', 'COLUMN_UNKNOWN', 'COLUMN_AMBIGUOUS', 'DATABASE_URL_INVALID',
])

interface Reported {
  readonly code: string
  readonly message: string
  readonly where: string | null
  readonly hint: string | null
}

/** A PostgreSQL error (node-postgres' DatabaseError): its SQLSTATE, detail and hint. */
function isDatabaseError(error: unknown): error is Error & { code: string; detail?: string; hint?: string; where?: string } {
  const code = (error as { code?: unknown } | null)?.code
  return error instanceof Error && typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && 'severity' in error
}

function describe(error: unknown): { reported: Reported; exit: number } | undefined {
  if (error instanceof PgmlKitError) {
    const exit = error instanceof PlanError || USAGE_CODES.has(error.code) ? EXIT.usage : EXIT.checkFailed
    return { reported: { code: error.code, message: error.message, where: error.where ?? null, hint: error.hint ?? null }, exit }
  }
  if (isConnectionLost(error)) {
    return {
      reported: { code: 'CONNECTION_LOST', message: `lost the connection to the database: ${(error as Error).message}`, where: null, hint: 'the server (or the process serving the embedded database) went away; run the command again' },
      exit: EXIT.checkFailed,
    }
  }
  if (isDatabaseError(error)) {
    const message = `PostgreSQL refused it (${error.code}): ${error.message}${error.detail ? `; ${error.detail}` : ''}`
    return { reported: { code: `SQLSTATE_${error.code}`, message, where: error.where ?? null, hint: error.hint ?? null }, exit: EXIT.checkFailed }
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
      process.stderr.write(`${pc.red('error')} ${reported.message}\n`)
      if (reported.where && !reported.message.includes(reported.where)) process.stderr.write(`  ${pc.dim('at')} ${reported.where}\n`)
      if (reported.hint) process.stderr.write(`  ${pc.cyan('hint')} ${reported.hint}\n`)
    }
    return described.exit
  }
  process.stderr.write(`${pc.red('internal error')} ${withoutSecrets((error as Error)?.stack ?? String(error), databaseUrl)}\n`)
  return EXIT.checkFailed
}
