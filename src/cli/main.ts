import { Command, CommanderError, Option } from 'commander'
import Table from 'cli-table3'
import pc from 'picocolors'
import { loadConfig, DEFAULT_CONFIG_FILE } from '../config/load.js'
import { assertMigrationName, checkGenerated, generate, planFromConfig } from '../migrations/generate.js'
import { migrate } from '../migrations/run.js'
import { planOperations } from '../plan/plan-migration.js'
import { readStatus } from '../status.js'
import { openTarget } from '../db/target.js'
import { init } from '../init.js'
import { EXIT, printJson, reportError } from './output.js'

interface GlobalOptions {
  config: string
  databaseUrl?: string
  json?: boolean
}

const SAFETY_COLOR = { safe: pc.green, 'needs-backfill': pc.yellow, 'rewrites-or-locks': pc.magenta, destructive: pc.red } as const

function version(): string {
  return '0.1.0'
}

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
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })

  const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>()

  program.command('init')
    .description('scaffold pgml-kit.config.ts and a base migration in the current directory')
    .action(async () => {
      const { created } = await init(process.cwd())
      if (globals(program).json) return printJson({ created })
      for (const path of created) process.stdout.write(`${pc.green('created')} ${path}\n`)
      process.stdout.write(`\nnext: pgml-kit generate --name add-embeddings && pgml-kit migrate\n`)
    })

  program.command('plan')
    .description('print the SQL that generate would write, with a safety class for every step')
    .action(async (_opts, cmd: Command) => {
      const opts = globals(cmd)
      const config = await loadConfig(opts.config)
      const { plan, files } = await planFromConfig(config, { name: 'plan' })
      const operations = planOperations(plan)
      if (opts.json) {
        return printJson({ operations: operations.map(({ kind, summary, safety, transactional, requiresPgml, notes }) => ({ kind, summary, safety, transactional, requiresPgml, notes })), files: files.map((f) => ({ name: f.fileName, transactional: f.transactional, sql: f.content })) })
      }
      if (operations.length === 0) return void process.stdout.write('Nothing to generate: the migrations match the config.\n')
      for (const op of operations) {
        process.stdout.write(`${SAFETY_COLOR[op.safety](`[${op.safety}]`)} ${op.summary}\n`)
        for (const note of op.notes) process.stdout.write(`    ${pc.dim(note)}\n`)
      }
      for (const file of files) process.stdout.write(`\n${pc.bold(`-- ${file.fileName}`)}\n${file.content}`)
    })

  program.command('generate')
    .description('write migrations for the difference between the config and the last generated state')
    .option('-n, --name <name>', 'what the change is, used in file names (e.g. add-doc-embeddings)')
    .option('--check', 'write nothing; exit 1 if the config and the migrations disagree')
    .action(async (opts: { name?: string; check?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      if (opts.check) {
        const result = await checkGenerated(config)
        if (g.json) printJson(result)
        else if (result.ok) process.stdout.write(`${pc.green('ok')} migrations in ${config.migrationsDir} match ${config.path}\n`)
        else {
          process.stderr.write(`${pc.red('out of date')} the config and the migrations disagree:\n`)
          for (const p of result.problems) process.stderr.write(`  - ${p}\n`)
          process.stderr.write(`  ${pc.cyan('hint')} run pgml-kit generate --name <change> and commit the files\n`)
        }
        exit.code = result.ok ? EXIT.ok : EXIT.checkFailed
        return
      }
      const { written, plan } = await generate(config, { name: assertMigrationName(opts.name) })
      if (g.json) return printJson({ written, operations: planOperations(plan).map((op) => ({ kind: op.kind, summary: op.summary, safety: op.safety })) })
      if (written.length === 0) return void process.stdout.write('Nothing to generate: the migrations match the config.\n')
      for (const path of written) process.stdout.write(`${pc.green('wrote')} ${path}\n`)
      const risky = planOperations(plan).filter((op) => op.safety !== 'safe')
      for (const op of risky) process.stdout.write(`${SAFETY_COLOR[op.safety](`[${op.safety}]`)} ${op.summary}\n`)
      process.stdout.write('\nReview the SQL, then: pgml-kit migrate\n')
    })

  program.command('migrate')
    .description('apply pending migrations (or revert with "down")')
    .argument('[direction]', 'up or down', 'up')
    .option('--count <n>', 'how many migrations (default: all pending for up, 1 for down)', (v) => {
      const n = Number(v)
      if (!Number.isInteger(n) || n < 1) throw new CommanderError(EXIT.usage, 'pgml-kit.count', `--count must be a positive integer, got ${v}`)
      return n
    })
    .option('--lock-wait <seconds>', 'how long to wait for another migrate to finish', '60')
    .action(async (direction: string, opts: { count?: number; lockWait: string }, cmd: Command) => {
      if (direction !== 'up' && direction !== 'down') throw new CommanderError(EXIT.usage, 'pgml-kit.direction', `direction must be "up" or "down", got "${direction}"`)
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      const log = g.json ? () => undefined : (m: string) => { if (m.startsWith('### MIGRATION')) process.stderr.write(`${pc.dim(m)}\n`) }
      const result = await migrate({
        databaseUrl: g.databaseUrl, cwd: config.root, dir: config.migrationsDir, settings: config.migrations,
        direction, ...(opts.count === undefined ? {} : { count: opts.count }), lockWaitMs: Number(opts.lockWait) * 1000, log,
      })
      if (g.json) return printJson(result)
      if (result.ran.length === 0) process.stdout.write(`Nothing to migrate ${direction} on ${result.target}.\n`)
      for (const name of result.ran) process.stdout.write(`${pc.green(direction === 'up' ? 'applied' : 'reverted')} ${name}\n`)
    })

  program.command('status')
    .description('applied and pending migrations, target capabilities, managed embedding columns')
    .action(async (_opts, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      const status = await readStatus({ databaseUrl: g.databaseUrl, cwd: config.root, dir: config.migrationsDir, settings: config.migrations })
      if (g.json) return printJson(status)
      const c = status.capabilities
      process.stdout.write(`${pc.bold('target')}    ${status.target.description}\n`)
      process.stdout.write(`${pc.bold('postgres')}  ${c.serverVersion}\n`)
      process.stdout.write(`${pc.bold('pgvector')}  ${c.vector.installed ? `${c.vector.installed} installed` : c.vector.available ? `${c.vector.available} available, not installed` : pc.red('not available')}\n`)
      const pgml = { pgml: `PostgresML ${c.pgmlVersion}`, pgml_compat: `pgml_compat ${c.pgmlVersion}`, unmanaged: 'pgml.embed present (not from an extension)', installable: 'available, not installed', absent: 'absent (modes "trigger" and "generated" need it)' }[c.pgml]
      process.stdout.write(`${pc.bold('pgml')}      ${pgml}\n\n`)
      const table = new Table({ head: ['migration', 'state'], style: { head: [], border: [] } })
      for (const a of status.applied) table.push([a.name, `applied ${a.runOn.toISOString()}`])
      for (const p of status.pending) table.push([p, pc.yellow('pending')])
      for (const m of status.missing) table.push([m, pc.red('applied, file missing')])
      process.stdout.write(`${table.toString()}\n`)
      if (status.embeddingColumns.length > 0) {
        const columns = new Table({ head: ['embedding column', 'model', 'type', 'mode', 'source'], style: { head: [], border: [] } })
        for (const e of status.embeddingColumns) columns.push([`${e.table}.${e.column}`, e.model, `${e.vectorType}(${e.dimensions})`, e.mode, e.sourceColumns.join(', ')])
        process.stdout.write(`${columns.toString()}\n`)
      }
      if (status.pending.length > 0) exit.code = EXIT.ok
    })

  program.command('dev')
    .description('keep the embedded database running for psql and other tools until Ctrl-C')
    .option('-p, --port <port>', 'port on 127.0.0.1', '54329')
    .action(async (opts: { port: string }, cmd: Command) => {
      const g = globals(cmd)
      const target = await openTarget({ cwd: process.cwd(), port: Number(opts.port) })
      if (target.kind !== 'embedded') {
        await target.close()
        throw new CommanderError(EXIT.usage, 'pgml-kit.dev', 'dev serves the embedded database; unset DATABASE_URL to use it')
      }
      if (g.json) printJson({ url: target.url })
      else process.stdout.write(`${pc.green('serving')} ${target.description}\n  DATABASE_URL=${target.url}\n  psql ${target.url}\nCtrl-C to stop.\n`)
      await new Promise<void>((resolve) => {
        const stop = () => resolve()
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
      await target.close()
    })

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
      if (error.code.startsWith('pgml-kit.')) process.stderr.write(`${pc.red('error')} ${error.message}\n`)
      return EXIT.usage
    }
    return reportError(error, argv.includes('--json'))
  }
}
