import { CommanderError, type Command } from 'commander'
import pc from 'picocolors'
import { loadConfig } from '../../config/load.js'
import { migrate } from '../../migrations/run.js'
import { EXIT, printable, printJson } from '../output.js'
import { globals, nonNegativeNumber, positiveInt } from '../options.js'
import { indexProgressPrinter } from '../index-progress.js'

export function registerMigrate(program: Command): void {
  program.command('migrate')
    .description('apply pending migrations (or revert with "down")')
    .argument('[direction]', 'up or down', 'up')
    .option('--count <n>', 'how many migrations (default: all pending for up, 1 for down)', positiveInt('--count'))
    .option('--lock-wait <seconds>', 'how long to wait for another migrate to finish', nonNegativeNumber('--lock-wait'), 60)
    .action(async (direction: string, opts: { count?: number; lockWait: number }, cmd: Command) => {
      if (direction !== 'up' && direction !== 'down') throw new CommanderError(EXIT.usage, 'pgml-kit.direction', `direction must be "up" or "down", got "${direction}"`)
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      // Each file once, when it is done: node-pg-migrate says when it starts the next one (the last is done when migrate returns).
      const verb = pc.green(direction === 'up' ? 'applied' : 'reverted')
      const printed = new Set<string>()
      const done = (name: string) => {
        if (printed.has(name)) return
        printed.add(name)
        process.stdout.write(`${verb} ${printable(name)}\n`)
      }
      let started: string | null = null
      const log = g.json ? () => undefined : (m: string) => {
        const file = /^### MIGRATION (.+) \((?:UP|DOWN)\) ###$/.exec(m)?.[1]
        if (file === undefined) return
        if (started !== null) done(started)
        started = file
      }
      const progress = indexProgressPrinter()
      const result = await migrate({
        databaseUrl: g.databaseUrl, cwd: config.root, dir: config.migrationsDir, settings: config.migrations,
        direction, ...(opts.count === undefined ? {} : { count: opts.count }), lockWaitMs: opts.lockWait * 1000, log,
        onWait: g.json ? undefined : (m: string) => process.stderr.write(`${pc.yellow('waiting')} ${printable(m)}\n`),
        // A concurrent index build's progress (servers report it), as a bar on a terminal.
        onProgress: g.json ? undefined : progress.onProgress,
        // What the server says (pgvector's "ivfflat index created with little data", ...), as it says it.
        onNotice: g.json ? undefined : (n) => process.stderr.write(`${pc.yellow(printable(n.severity.toLowerCase()))}${n.migration ? ` ${pc.dim(printable(n.migration))}` : ''}: ${printable(n.message)}${n.detail ? ` (${printable(n.detail)})` : ''}${n.hint ? ` ${pc.dim(`hint: ${printable(n.hint)}`)}` : ''}\n`),
      }).finally(() => progress.done())
      if (g.json) return printJson(result)
      if (result.ran.length === 0) process.stdout.write(`Nothing to migrate ${direction} on ${printable(result.target)}.\n`)
      for (const name of result.ran) done(name)
    })
}
