import pc from 'picocolors'
import { ConfigError, PgmlKitError, PlanError } from '../errors.js'

export const EXIT = { ok: 0, checkFailed: 1, usage: 2 } as const

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/** A user mistake or unusable target: message, where, what to do; no stack trace. */
export function reportError(error: unknown, json: boolean): number {
  if (error instanceof PgmlKitError) {
    const code = error instanceof ConfigError || error instanceof PlanError || error.code === 'NAME_REQUIRED' || error.code === 'CONFIG_NOT_FOUND' || error.code === 'COLUMN_UNKNOWN' || error.code === 'COLUMN_AMBIGUOUS' ? EXIT.usage : EXIT.checkFailed
    if (json) {
      printJson({ error: { code: error.code, message: error.message, where: error.where ?? null, hint: error.hint ?? null } })
    } else {
      process.stderr.write(`${pc.red('error')} ${error.message}\n`)
      if (error.where && !error.message.includes(error.where)) process.stderr.write(`  ${pc.dim('at')} ${error.where}\n`)
      if (error.hint) process.stderr.write(`  ${pc.cyan('hint')} ${error.hint}\n`)
    }
    return code
  }
  process.stderr.write(`${pc.red('internal error')} ${(error as Error)?.stack ?? String(error)}\n`)
  return EXIT.checkFailed
}
