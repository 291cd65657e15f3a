import { CommanderError, type Command } from 'commander'
import pc from 'picocolors'
import { EXIT } from './output.js'

export interface GlobalOptions {
  config: string
  databaseUrl?: string
  json?: boolean
}

/** The global options (`--config`, `--database-url`, `--json`) as seen from a subcommand. */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>()
}

/** Parses a positive integer option, or exits with a usage error naming the option. */
export function positiveInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < 1) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `${name} must be a positive integer, got ${value}`)
    return n
  }
}

/** Parses a number ≥ 0 (seconds, say), or exits with a usage error naming the option. */
export function nonNegativeNumber(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `${name} must be a number ≥ 0, got ${value}`)
    return n
  }
}

export const SAFETY_COLOR = { safe: pc.green, 'slows-writes': pc.yellow, privileged: pc.cyan, 'needs-backfill': pc.yellow, 'rewrites-or-locks': pc.magenta, destructive: pc.red } as const

/** Shared by commands: where results go, and the exit code the run ends with. */
export interface CommandContext {
  readonly exit: { code: number }
}
