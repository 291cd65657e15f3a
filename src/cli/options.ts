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

/** Parses a point in time: `24h`, `7d`, `30m` ago, or an ISO timestamp; a usage error naming the option otherwise. */
export function sinceOption(name: string): (value: string) => Date {
  return (value) => {
    const ago = /^(\d+(?:\.\d+)?)([mhd])$/.exec(value.trim())
    if (ago) return new Date(Date.now() - Number(ago[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[ago[2] as 'm' | 'h' | 'd'])
    const at = new Date(value)
    if (value.trim() === '' || Number.isNaN(at.getTime())) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `${name} must be a duration ago (30m, 24h, 7d) or a timestamp, got ${value}`)
    return at
  }
}

/** Parses a share in (0, 1], or exits with a usage error naming the option. */
export function shareOption(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value.trim().endsWith('%') ? Number(value.trim().slice(0, -1)) / 100 : value)
    if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `${name} must be a share above 0 and at most 1 (0.1 or 10%), got ${value}`)
    return n
  }
}
