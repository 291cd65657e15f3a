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
import cliProgress from 'cli-progress'
import pg from 'pg'
import { join } from 'node:path'
import { localEmbedderLoader } from '../embed/embedder-for-config.js'
import { runWorker } from '../worker/run-worker.js'
import { backfill } from '../worker/backfill.js'
import { retryDeadLetters } from '../worker/queue.js'
import { findColumn } from './column-arg.js'
import { installPgmlCompat } from '../extension/install.js'
import { checkParity } from '../parity/check-parity.js'
import { Kysely, PostgresDialect } from 'kysely'
import { createKit } from '../query/create-kit.js'
import { readFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { EXIT, printJson, reportError } from './output.js'

interface GlobalOptions {
  config: string
  databaseUrl?: string
  json?: boolean
}

const SAFETY_COLOR = { safe: pc.green, 'needs-backfill': pc.yellow, 'rewrites-or-locks': pc.magenta, destructive: pc.red } as const

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return manifest.version
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
      if (status.queues.length > 0) {
        const queues = new Table({ head: ['queue', 'depth', 'leased', 'retrying', 'oldest job', 'dead letters'], style: { head: [], border: [] } })
        for (const q of status.queues) {
          queues.push([q.column, q.depth, q.leased, q.retrying, q.oldestSeconds === null ? '-' : `${q.oldestSeconds.toFixed(1)} s`, q.deadLetters > 0 ? pc.red(String(q.deadLetters)) : '0'])
        }
        process.stdout.write(`${queues.toString()}\n`)
      }
    })

  const positiveInt = (name: string) => (v: string) => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < 1) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `${name} must be a positive integer, got ${v}`)
    return n
  }

  program.command('worker')
    .description('embed queued rows (mode "queue") with the local model until stopped; run as many as you like')
    .option('--column <table.column...>', 'only these columns (default: every queue-mode column)')
    .option('--batch-size <n>', 'jobs per batch', positiveInt('--batch-size'), 32)
    .option('--max-attempts <n>', 'failures before a job is dead-lettered', positiveInt('--max-attempts'), 5)
    .option('--lease <seconds>', 'how long a claimed batch stays reserved', positiveInt('--lease'), 300)
    .option('--poll <ms>', 'pause between polls of an empty queue', positiveInt('--poll'), 1000)
    .option('--once', 'exit when no job is due instead of waiting for more')
    .action(async (opts: { column?: string[]; batchSize: number; maxAttempts: number; lease: number; poll: number; once?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      const queueColumns = config.state.embeddingColumns.filter((c) => c.mode === 'queue')
      const columns = opts.column ? opts.column.map((arg) => findColumn(queueColumns, arg)) : queueColumns
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      const controller = new AbortController()
      let stops = 0
      const stop = () => {
        stops++
        if (stops === 1) {
          process.stderr.write('stopping after the current batch (again to quit now; unfinished jobs return to the queue when their lease ends)\n')
          controller.abort()
        } else process.exit(130)
      }
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
      try {
        if (!g.json) process.stderr.write(`worker on ${target.description}: ${columns.map((c) => `${c.table}.${c.column}`).join(', ')}\n`)
        const totals = await runWorker({
          url: target.url, columns, loadEmbedder: localEmbedderLoader(config.embedder),
          batchSize: opts.batchSize, maxAttempts: opts.maxAttempts, leaseSeconds: opts.lease, pollIntervalMs: opts.poll,
          once: opts.once ?? false, signal: controller.signal,
          onBatch: g.json ? undefined : (column, r) => process.stderr.write(`${column.table}.${column.column}: ${r.written} written, ${r.stale} left for newer changes, ${r.failed} failed, ${r.deadLettered} dead-lettered\n`),
        })
        if (g.json) printJson(totals)
        else process.stdout.write(`${totals.written} vectors written in ${totals.batches} batches; ${totals.failed} failures, ${totals.deadLettered} dead-lettered\n`)
      } finally {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
        await target.close()
      }
    })

  const queue = program.command('queue').description('inspect and manage the embedding queue')
  queue.command('retry')
    .description('put dead-lettered jobs back in the queue with fresh attempts')
    .argument('[column]', '<table>.<column> (default: all)')
    .action(async (arg: string | undefined, _opts, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      const column = arg ? findColumn(config.state.embeddingColumns, arg) : undefined
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      try {
        const client = new pg.Client({ connectionString: target.url })
        await client.connect()
        try {
          const requeued = await retryDeadLetters(client, column)
          if (g.json) printJson({ requeued })
          else process.stdout.write(`${requeued} dead-lettered job${requeued === 1 ? '' : 's'} back in the queue\n`)
        } finally {
          await client.end()
        }
      } finally {
        await target.close()
      }
    })

  program.command('backfill')
    .description('embed rows that have no vector yet (or all rows), in committed batches; safe to interrupt and re-run')
    .argument('<column>', '<table>.<column>')
    .option('--all', 'recompute every row (resumes an interrupted --all run)')
    .option('--restart', 'with --all: start over instead of resuming')
    .option('--batch-size <n>', 'rows per batch', positiveInt('--batch-size'), 64)
    .action(async (arg: string, opts: { all?: boolean; restart?: boolean; batchSize: number }, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      const column = findColumn(config.state.embeddingColumns, arg)
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      const controller = new AbortController()
      const stop = () => controller.abort()
      process.once('SIGINT', stop)
      const bar = new cliProgress.SingleBar({
        stream: process.stderr, hideCursor: true, etaBuffer: 20,
        format: `${column.table}.${column.column} {bar} {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}`,
      }, cliProgress.Presets.shades_classic)
      const started = performance.now()
      let barStarted = false
      try {
        const loadEmbedder = localEmbedderLoader(config.embedder)
        const result = await backfill({
          url: target.url, column, loadEmbedder: () => loadEmbedder(column), all: opts.all ?? false, restart: opts.restart ?? false,
          batchSize: opts.batchSize, signal: controller.signal,
          onProgress: ({ total, done }) => {
            const rate = (done / Math.max(0.001, (performance.now() - started) / 1000)).toFixed(1)
            if (!barStarted) { bar.start(total, done, { rate }); barStarted = true } else bar.update(done, { rate })
          },
        })
        bar.stop()
        if (g.json) printJson(result)
        else {
          process.stdout.write(`${result.written} vectors written (${result.done}/${result.total} rows, ${result.skipped} changed meanwhile and left to their own path) in ${result.seconds.toFixed(1)} s${result.interrupted ? '; interrupted: run it again to continue' : ''}\n`)
          for (const f of result.failed) process.stderr.write(`  ${pc.red('failed')} ${JSON.stringify(f.key)}: ${f.error}\n`)
        }
        if (result.failedCount > 0 || result.interrupted) exit.code = EXIT.checkFailed
      } finally {
        if (barStarted) bar.stop()
        process.off('SIGINT', stop)
        await target.close()
      }
    })

  program.command('search')
    .description('semantic search from the command line: the rows nearest to a text, with their distance')
    .argument('<column>', '<table>.<column>')
    .argument('<query>', 'text to search for')
    .option('-k <n>', 'rows to return', positiveInt('-k'), 5)
    .option('--ef-search <n>', 'hnsw.ef_search for this query', positiveInt('--ef-search'))
    .action(async (arg: string, query: string, opts: { k: number; efSearch?: number }, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      const column = findColumn(config.state.embeddingColumns, arg)
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      const db = new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: target.url, max: 1 }) }) })
      try {
        // The config as loaded; its column refs are only known at run time here.
        const kit = createKit(config.source, { db, cwd: config.root }) as unknown as {
          search(ref: string, q: string, o: object): { select(cols: string[]): { execute(): Promise<Record<string, unknown>[]> } }
        }
        const columns = [...column.keyColumns, ...column.sourceColumns]
        const rows = await kit.search(`${column.table}.${column.column}`, query, { k: opts.k, ...(opts.efSearch ? { efSearch: opts.efSearch } : {}) }).select(columns).execute()
        if (g.json) return printJson(rows)
        const table = new Table({ head: [...columns, 'distance'], style: { head: [], border: [] }, wordWrap: true, colWidths: [...columns.map((c) => (column.keyColumns.includes(c) ? 8 : 40)), 12] })
        for (const row of rows) table.push([...columns.map((c) => String(row[c] ?? '')), Number(row.distance).toFixed(4)])
        process.stdout.write(`${table.toString()}\n`)
      } finally {
        await db.destroy()
        await target.close()
      }
    })

  program.command('parity')
    .description('training/serving skew: compare stored vectors (or pgml.embed) with the local model; exit 1 below --min-cosine')
    .argument('<column>', '<table>.<column>')
    .option('--sample <n>', 'rows to sample', positiveInt('--sample'), 100)
    .option('--texts <file>', 'compare pgml.embed in the database with the local model on these texts (one per line)')
    .option('--min-cosine <x>', 'lowest acceptable cosine similarity', '0.999')
    .action(async (arg: string, opts: { sample: number; texts?: string; minCosine: string }, cmd: Command) => {
      const g = globals(cmd)
      const minCosine = Number(opts.minCosine)
      if (!(minCosine >= -1 && minCosine <= 1)) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `--min-cosine must be between -1 and 1, got ${opts.minCosine}`)
      const config = await loadConfig(g.config)
      const column = findColumn(config.state.embeddingColumns, arg)
      const texts = opts.texts ? (await readFile(opts.texts, 'utf8')).split('\n').filter((line) => line.trim() !== '') : undefined
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      try {
        const embedder = await localEmbedderLoader(config.embedder)(column)
        const report = await checkParity({ url: target.url, column, embedder, sample: opts.sample, minCosine, ...(texts ? { texts } : {}) })
        if (g.json) printJson(report)
        else {
          const what = report.compared === 'texts' ? 'pgml.embed in the database vs the local model' : 'stored vectors vs the local model'
          process.stdout.write(`${report.column}: ${what}, ${report.count} ${report.compared === 'texts' ? 'texts' : 'rows'}\n`)
          process.stdout.write(`  cosine min ${report.minCosine.toFixed(6)}  mean ${report.meanCosine.toFixed(6)}  max |diff| ${report.maxAbsDiff.toExponential(2)}  (threshold ${report.threshold})\n`)
          for (const w of report.worst.filter((r) => r.cosine < report.threshold)) process.stdout.write(`  ${pc.red('worst')} ${JSON.stringify(w.key)} cosine ${w.cosine.toFixed(6)}: ${JSON.stringify(w.text.slice(0, 60))}\n`)
          process.stdout.write(report.ok ? `${pc.green('ok')}\n` : `${pc.red('skew')}: vectors differ from what the local model computes now (model, prefix or normalisation changed?)\n`)
        }
        exit.code = report.ok ? EXIT.ok : EXIT.checkFailed
      } finally {
        await target.close()
      }
    })

  const extension = program.command('extension').description('the pgml_compat PostgreSQL extension (the pgml SQL API in PL/Python)')
  extension.command('install')
    .description("copy pgml_compat into this machine's PostgreSQL extension directory (run it on the database server)")
    .option('--pg-config <path>', 'pg_config of the server (default: on PATH, else the newest in /usr/lib/postgresql)')
    .action(async (opts: { pgConfig?: string }, cmd: Command) => {
      const g = globals(cmd)
      const result = await installPgmlCompat(opts.pgConfig ? { pgConfig: opts.pgConfig } : {})
      if (g.json) return printJson(result)
      for (const file of result.files) process.stdout.write(`${pc.green('installed')} ${join(result.extensionDir, file)}\n`)
      process.stdout.write(`\nnext, in each database (as a superuser):\n  CREATE EXTENSION pgml_compat CASCADE;\n  ALTER DATABASE <db> SET pgml_compat.models_dir = '/path/to/models';   -- <dir>/<model id>/onnx/model.onnx\n`)
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
