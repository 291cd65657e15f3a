import type { Command } from 'commander'
import pc from 'picocolors'
import { loadConfig } from '../../config/load.js'
import { planFromConfig } from '../../migrations/generate.js'
import { planOperations } from '../../plan/plan-migration.js'
import { printJson } from '../output.js'
import { SAFETY_COLOR, globals } from '../options.js'

export function registerPlan(program: Command): void {
  program.command('plan')
    .description('print the SQL that generate would write, with a safety class for every step')
    .action(async (_opts, cmd: Command) => {
      const opts = globals(cmd)
      const config = await loadConfig(opts.config)
      const { plan, files } = await planFromConfig(config, { name: 'plan' })
      const operations = planOperations(plan)
      if (opts.json) {
        return printJson({
          operations: operations.map(({ kind, summary, safety, transactional, requiresPgml, notes }) => ({ kind, summary, safety, transactional, requiresPgml, notes })),
          files: files.map((f) => ({ name: f.fileName, transactional: f.transactional, sql: f.content })),
        })
      }
      if (operations.length === 0) return void process.stdout.write('Nothing to generate: the migrations match the config.\n')
      for (const op of operations) {
        process.stdout.write(`${SAFETY_COLOR[op.safety](`[${op.safety}]`)} ${op.summary}\n`)
        for (const note of op.notes) process.stdout.write(`    ${pc.dim(note)}\n`)
      }
      for (const file of files) process.stdout.write(`\n${pc.bold(`-- ${file.fileName}`)}\n${file.content}`)
    })
}
