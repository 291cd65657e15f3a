import type { Command } from 'commander'
import { loadConfig } from '../../config/load.js'
import { withClient } from '../../db/connect.js'
import { openTarget } from '../../db/target.js'
import { retryDeadLetters } from '../../worker/queue.js'
import { findColumn } from '../../model/find-column.js'
import { printJson } from '../output.js'
import { globals } from '../options.js'

export function registerQueue(program: Command): void {
  const queue = program.command('queue').description('inspect and manage the embedding queue')
  queue.command('retry')
    .description('put dead-lettered jobs back in the queue with fresh attempts')
    .argument('[column]', '<table>.<column> (default: all)')
    .action(async (arg: string | undefined, _opts, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      // A chunked column's jobs carry its name as an embedding column's do.
      const chunked = arg === undefined ? undefined : (config.state.chunkedColumns ?? []).find((c) => arg === `${c.table}.${c.column}` || arg === `${c.schema}.${c.table}.${c.column}`)
      const column = arg === undefined ? undefined : chunked ?? findColumn(config.state.embeddingColumns, arg, config.state.chunkedColumns)
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      try {
        const requeued = await withClient(target, 'pgml-kit queue', (client) => retryDeadLetters(client, column))
        if (g.json) printJson({ requeued })
        else process.stdout.write(`${requeued} dead-lettered job${requeued === 1 ? '' : 's'} back in the queue\n`)
      } finally {
        await target.close()
      }
    })
}
