import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import pc from 'picocolors'
import { DEFAULT_CONFIG_FILE } from '../config/load.js'
import { registerBackfill } from './commands/backfill.js'
import { registerDev } from './commands/dev.js'
import { registerExtension } from './commands/extension.js'
import { registerGenerate } from './commands/generate.js'
import { registerIndex } from './commands/index.js'
import { registerInit } from './commands/init.js'
import { registerMigrate } from './commands/migrate.js'
import { registerFeatures } from './commands/features.js'
import { registerMl } from './commands/ml.js'
import { registerParity } from './commands/parity.js'
import { registerPlan } from './commands/plan.js'
import { registerQueue } from './commands/queue.js'
import { registerSearch } from './commands/search.js'
import { registerStatus } from './commands/status.js'
import { registerWorker } from './commands/worker.js'
import type { CommandContext } from './options.js'
import { EXIT, printable, reportError, withoutSecrets } from './output.js'

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return manifest.version
}

/** The CLI: global options, then one module per command (src/cli/commands), each a thin wrapper over a library call. */
export function buildProgram(exit: { code: number }): Command {
  const program = new Command()
  program
    .name('pgml-kit')
    .description('Machine learning inside PostgreSQL, managed like schema.\n\nStart here:  pgml-kit init && pgml-kit generate --name add-embeddings && pgml-kit migrate')
    .version(version())
    .option('-c, --config <path>', 'config file', DEFAULT_CONFIG_FILE)
    .option('--database-url <url>', 'PostgreSQL to use (default: $DATABASE_URL, else the embedded database in .pgml-kit/)')
    .option('--json', 'machine-readable output on stdout')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(printable(withoutSecrets(s, program.opts<{ databaseUrl?: string }>().databaseUrl), { lines: true })) })

  const ctx: CommandContext = { exit }
  registerInit(program)
  registerPlan(program)
  registerGenerate(program, ctx)
  registerMigrate(program)
  registerStatus(program, ctx)
  registerIndex(program)
  registerDev(program)
  registerWorker(program)
  registerQueue(program)
  registerBackfill(program, ctx)
  registerSearch(program)
  registerParity(program, ctx)
  registerExtension(program)
  registerMl(program, ctx)
  registerFeatures(program, ctx)
  return program
}

export async function main(argv: readonly string[]): Promise<number> {
  const exit = { code: EXIT.ok as number }
  const program = buildProgram(exit)
  try {
    await program.parseAsync([...argv])
    return exit.code
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return EXIT.ok
      if (error.code.startsWith('pgml-kit.')) process.stderr.write(`${pc.red('error')} ${printable(withoutSecrets(error.message, program.opts<{ databaseUrl?: string }>().databaseUrl))}\n`)
      return EXIT.usage
    }
    return reportError(error, argv.includes('--json'), program.opts<{ databaseUrl?: string }>().databaseUrl)
  }
}
