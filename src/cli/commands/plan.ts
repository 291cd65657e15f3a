import type { Command } from 'commander'
import pc from 'picocolors'
import { loadConfig } from '../../config/load.js'
import { planFromConfig } from '../../migrations/generate.js'
import { planOperations } from '../../plan/plan-migration.js'
import { printJson } from '../output.js'
import { SAFETY_COLOR, globals } from '../options.js'
import { sizingFor } from '../sizing.js'

export function registerPlan(program: Command): void {
  program.command('plan')
    .description('print the SQL that generate would write, with a safety class for every step (sized for the database given with --database-url)')
    .action(async (_opts, cmd: Command) => {
      const opts = globals(cmd)
      const config = await loadConfig(opts.config)
      const sizing = await sizingFor(opts, config)
      const { plan, files } = await planFromConfig(config, { name: 'plan', ...(sizing ? { sizing } : {}) })
      const operations = planOperations(plan)
      const deferred = plan.deferred.map((d) => ({ index: `${d.index.schema}.${d.index.name}`, reason: d.reason }))
      if (opts.json) {
        return printJson({
          operations: operations.map(({ kind, summary, safety, transactional, requiresPgml, notes }) => ({ kind, summary, safety, transactional, requiresPgml, notes })),
          files: files.map((f) => ({ name: f.fileName, transactional: f.transactional, sql: f.content })),
          deferred,
        })
      }
      for (const d of deferred) process.stdout.write(`${pc.yellow('[waits for data]')} ${d.index}: ${d.reason}\n`)
      if (operations.length === 0) return void process.stdout.write('Nothing to generate: the migrations match the config.\n')
      for (const op of operations) {
        process.stdout.write(`${SAFETY_COLOR[op.safety](`[${op.safety}]`)} ${op.summary}\n`)
        for (const note of op.notes) process.stdout.write(`    ${pc.dim(note)}\n`)
      }
      for (const file of files) process.stdout.write(`\n${pc.bold(`-- ${file.fileName}`)}\n${file.content}`)
    })
}
