import type { Command } from 'commander'
import pc from 'picocolors'
import { loadConfig } from '../../config/load.js'
import { assertMigrationName, checkGenerated, generate } from '../../migrations/generate.js'
import { planOperations } from '../../plan/plan-migration.js'
import { EXIT, printable, printJson } from '../output.js'
import { SAFETY_COLOR, globals, type CommandContext } from '../options.js'
import { databaseFor } from '../sizing.js'
import { printStages } from '../stages.js'

export function registerGenerate(program: Command, ctx: CommandContext): void {
  program.command('generate')
    .description('write migrations for the difference between the config and the last generated state')
    .option('-n, --name <name>', 'what the change is, used in file names (e.g. add-doc-embeddings)')
    .option('--check', 'write nothing; exit 1 if the config and the migrations disagree')
    .option('--allow-destructive', 'write a migration that deletes data (drops an embedding column, a full-text column, a feature view, or the previous model\'s column of a finished model change); refused (or, for the latter, left waiting) otherwise')
    .option('--switch', 'write the switch of a staged model change without checking that the new model\'s column is filled (with --database-url it is checked; migrate refuses a switch whose column is not filled)')
    .action(async (opts: { name?: string; check?: boolean; allowDestructive?: boolean; switch?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      if (opts.check) {
        const result = await checkGenerated(config)
        if (g.json) printJson(result)
        else if (result.ok) process.stdout.write(`${pc.green('ok')} migrations in ${config.migrationsDir} match ${config.path}\n`)
        else {
          process.stderr.write(`${pc.red('out of date')} the config and the migrations disagree:\n`)
          for (const p of result.problems) process.stderr.write(`  - ${printable(p)}\n`)
          process.stderr.write(`  ${pc.cyan('hint')} run pgml-kit generate --name <change> and commit the files\n`)
        }
        if (!g.json) for (const w of result.waiting) process.stdout.write(`${pc.yellow('waiting')} ${printable(w)}\n`)
        ctx.exit.code = result.ok ? EXIT.ok : EXIT.checkFailed
        return
      }
      const name = assertMigrationName(opts.name)
      const { sizing, live } = await databaseFor(g, config)
      const { written, plan, notes } = await generate(config, { name, allowDestructive: Boolean(opts.allowDestructive), ...(opts.switch ? { switch: 'always' } : {}), ...(sizing ? { sizing } : {}), ...(live ? { live } : {}) })
      const deferred = plan.deferred.map((d) => ({ index: `${d.index.schema}.${d.index.name}`, reason: d.reason }))
      if (g.json) return printJson({ written, operations: planOperations(plan).map((op) => ({ kind: op.kind, summary: op.summary, safety: op.safety })), deferred, stages: plan.stages, notes })
      for (const note of notes) process.stderr.write(`${pc.yellow('note')} ${printable(note)}\n`)
      for (const d of deferred) process.stdout.write(`${pc.yellow('[waits for data]')} ${printable(d.index)}: ${printable(d.reason)}\n`)
      printStages(plan.stages)
      if (written.length === 0) return void process.stdout.write('Nothing to generate: the migrations match the config.\n')
      for (const path of written) process.stdout.write(`${pc.green('wrote')} ${printable(path)}\n`)
      const risky = planOperations(plan).filter((op) => op.safety !== 'safe')
      for (const op of risky) process.stdout.write(`${SAFETY_COLOR[op.safety](`[${op.safety}]`)} ${printable(op.summary)}\n`)
      process.stdout.write('\nReview the SQL, then: pgml-kit migrate\n')
    })
}
