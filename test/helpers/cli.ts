import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const BIN = fileURLToPath(new URL('../../dist/cli/bin.js', import.meta.url))

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

export interface CliOptions {
  readonly cwd: string
  /** $DATABASE_URL for the CLI (unset when undefined or ''). */
  readonly databaseUrl?: string | undefined
  /** More environment variables ($PGPASSWORD, say). */
  readonly env?: Readonly<Record<string, string>>
}

function env(options: CliOptions): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' }
  delete e.DATABASE_URL
  if (options.databaseUrl) e.DATABASE_URL = options.databaseUrl
  return { ...e, ...options.env }
}

/** Starts the built CLI (`npm test` builds first) as a separate process. */
export function startCli(args: readonly string[], options: CliOptions): ChildProcess {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` (npm test does it first)`)
  return spawn(process.execPath, [BIN, ...args], { cwd: options.cwd, env: env(options), stdio: ['ignore', 'pipe', 'pipe'] })
}

export function runCli(args: readonly string[], options: CliOptions): Promise<CliResult> {
  const child = startCli(args, options)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}
