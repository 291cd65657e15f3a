import type { Command } from 'commander'
import pc from 'picocolors'
import { loadConfig } from '../../config/load.js'
import { openTarget } from '../../db/target.js'
import { repairIndexes } from '../../indexes/health.js'
import { watchSession } from '../../migrations/wait-monitor.js'
import { indexProgressPrinter } from '../index-progress.js'
import { printJson } from '../output.js'
import { globals } from '../options.js'

export function registerIndex(program: Command): void {
  const index = program.command('index').description('the vector indexes the config declares')
  index.command('repair')
    .description('rebuild, without blocking writes, every declared index that is missing, INVALID or differs from the config')
    .argument('[column]', 'only the indexes of this column (table.column or schema.table.column)')
    .action(async (column: string | undefined, _opts, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      try {
        const client = await target.connect('pgml-kit index repair')
        // On a server, the builds' progress and what they wait for, from a connection of its own.
        const progress = indexProgressPrinter()
        const stopWatching = g.json ? async () => undefined : await watchSession(target, client, {
          onWait: (m) => process.stderr.write(`${pc.yellow('waiting')} ${m}\n`), onProgress: progress.onProgress,
        })
        try {
          const result = await repairIndexes(client, config.state, {
            ...(column === undefined ? {} : { column }),
            onStep: g.json ? undefined : (step) => process.stderr.write(`${pc.dim(step.sql.split('\n')[0]!.slice(0, 120))}\n`),
          }).finally(async () => {
            await stopWatching()
            progress.done()
          })
          if (g.json) return printJson(result)
          for (const r of result.repaired) process.stdout.write(`${pc.green('repaired')} ${r.index} (was ${r.state}${r.detail ? `: ${r.detail}` : ''})\n`)
          for (const name of result.ok) process.stdout.write(`${pc.dim('ok')} ${name}\n`)
        } finally {
          await client.end()
        }
      } finally {
        await target.close()
      }
    })
}
