import { Option, type Command } from 'commander'
import { relative } from 'node:path'
import { indexTables, renderReviewMarkdown, reviewFiles } from '../../plan/review.js'
import pc from 'picocolors'
import { loadConfig } from '../../config/load.js'
import { planFromConfig } from '../../migrations/generate.js'
import { planOperations } from '../../plan/plan-migration.js'
import { printable, printJson } from '../output.js'
import { SAFETY_COLOR, globals } from '../options.js'
import { databaseFor } from '../sizing.js'
import { printStages } from '../stages.js'

export function registerPlan(program: Command): void {
  program.command('plan')
    .description('print the SQL that generate would write, with a safety class for every step (sized for the database given with --database-url)')
    .addOption(new Option('--format <format>', 'text, markdown (a review document for the pull request: locks, durations, timeouts, privileges, rollback) or json').choices(['text', 'markdown', 'json']).default('text'))
    .option('--allow-destructive', 'include what generate --allow-destructive would write: the drop of a finished model change\'s previous column')
    .option('--switch', 'include the switch of a staged model change as generate --switch would write it, without checking that its column is filled')
    .action(async (local: { format: 'text' | 'markdown' | 'json'; allowDestructive?: boolean; switch?: boolean }, cmd: Command) => {
      const opts = globals(cmd)
      const config = await loadConfig(opts.config)
      const { sizing, live } = await databaseFor(opts, config)
      const { plan, files, snapshot, desired, notes } = await planFromConfig(config, {
        name: 'plan', dropPrevious: Boolean(local.allowDestructive), ...(local.switch ? { switch: 'always' } : {}), ...(sizing ? { sizing } : {}), ...(live ? { live } : {}),
      })
      for (const note of notes) process.stderr.write(`${pc.yellow('note')} ${printable(note)}\n`)
      if (local.format === 'markdown') {
        const options = { settings: config.migrations, configFile: relative(config.root, config.path) || 'pgml-kit.config.ts', indexTables: indexTables(snapshot.state, desired), ...(sizing ? { sizing } : {}) }
        return void process.stdout.write(renderReviewMarkdown(plan, await reviewFiles(files, options), options))
      }
      if (local.format === 'json') opts.json = true
      const operations = planOperations(plan)
      const deferred = plan.deferred.map((d) => ({ index: `${d.index.schema}.${d.index.name}`, reason: d.reason }))
      if (opts.json) {
        return printJson({
          operations: operations.map(({ kind, summary, safety, transactional, requiresPgml, notes }) => ({ kind, summary, safety, transactional, requiresPgml, notes })),
          files: files.map((f) => ({ name: f.fileName, transactional: f.transactional, sql: f.content })),
          deferred,
          stages: plan.stages,
          notes,
        })
      }
      for (const d of deferred) process.stdout.write(`${pc.yellow('[waits for data]')} ${printable(d.index)}: ${printable(d.reason)}\n`)
      printStages(plan.stages)
      if (operations.length === 0) return void process.stdout.write('Nothing to generate: the migrations match the config.\n')
      for (const op of operations) {
        process.stdout.write(`${SAFETY_COLOR[op.safety](`[${op.safety}]`)} ${printable(op.summary)}\n`)
        for (const note of op.notes) process.stdout.write(`    ${pc.dim(printable(note))}\n`)
      }
      for (const file of files) process.stdout.write(`\n${pc.bold(`-- ${printable(file.fileName)}`)}\n${printable(file.content, { lines: true })}`)
    })
}
