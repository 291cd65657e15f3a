import type { Command } from 'commander'
import cliProgress from 'cli-progress'
import pc from 'picocolors'
import { loadConfig } from '../../config/load.js'
import { onStop } from '../stop.js'
import { openTarget } from '../../db/target.js'
import { withoutSecrets } from '../output.js'
import { localEmbedderLoader } from '../../embed/embedder-for-config.js'
import { backfill, type BackfillResult } from '../../worker/backfill.js'
import { columnsToBackfill } from '../../worker/backfill-columns.js'
import { backfillChunks } from '../../chunking/backfill.js'
import { EXIT, printable, printJson } from '../output.js'
import { globals, positiveInt, type CommandContext } from '../options.js'

export function registerBackfill(program: Command, ctx: CommandContext): void {
  program.command('backfill')
    .description('embed rows that have no vector yet (or all rows), in committed batches; safe to interrupt and re-run')
    .argument('<column>', '<table>.<column> (also fills the new model\'s column of a staged model change; <table>.<column>__next fills only that)')
    .option('--all', 'recompute every row (resumes an interrupted --all run)')
    .option('--restart', 'with --all: start over instead of resuming')
    .option('--batch-size <n>', 'rows per batch', positiveInt('--batch-size'), 64)
    .action(async (arg: string, opts: { all?: boolean; restart?: boolean; batchSize: number }, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      // Ctrl-C or SIGTERM: what is committed stays; the rest waits for the next run.
      const stopping = onStop('stopping after the current batch (again to quit now; run it again to continue)')
      const controller = { signal: stopping.signal }
      try {
        const loadEmbedder = localEmbedderLoader(config.embedder)
        const chunked = (config.state.chunkedColumns ?? []).find((c) => arg === `${c.table}.${c.column}` || arg === `${c.schema}.${c.table}.${c.column}`)
        if (chunked) {
          // A chunked column: its rows without chunks (--all: every row; only chunks whose text is new are embedded).
          const result = await backfillChunks({ url: target, node: chunked, loadEmbedder, all: opts.all ?? false, batchSize: opts.batchSize, signal: controller.signal })
          if (g.json) printJson(result)
          else {
            process.stdout.write(`${printable(result.column)}: ${result.synced} rows synced, ${result.embedded} chunks embedded (${result.rows} rows read) in ${result.seconds.toFixed(1)} s${result.interrupted ? '; interrupted: run it again to continue' : ''}\n`)
            for (const f of result.failed) process.stderr.write(`  ${pc.red('failed')} ${printable(f.key)}: ${printable(f.error)}\n`)
          }
          if (result.failed.length > 0 || result.interrupted) ctx.exit.code = EXIT.checkFailed
          return
        }
        // `t.c`: the column as the catalog has it, then the new (or previous) model's column of a staged
        // model change; `t.c__next` (or `__previous`): only that one, whichever config is checked out.
        const targets = await columnsToBackfill(target, config.state.embeddingColumns, arg)
        const results: BackfillResult[] = []
        for (const each of targets) {
          if (controller.signal.aborted) break
          const bar = new cliProgress.SingleBar({
            stream: process.stderr, hideCursor: true, etaBuffer: 20,
            // The name as a payload value: the format's placeholders are replaced once, a name's braces stay text.
            format: '{column} {bar} {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}',
          }, cliProgress.Presets.shades_classic)
          const started = performance.now()
          let barStarted = false
          try {
            const result = await backfill({
              url: target, column: each, loadEmbedder, all: opts.all ?? false, restart: opts.restart ?? false,
              batchSize: opts.batchSize, signal: controller.signal,
              onReconnect: (error) => process.stderr.write(`\nlost the connection (${printable(withoutSecrets(error.message, g.databaseUrl))}); reconnecting, to go on from the first row not written\n`),
              onProgress: ({ total, done }) => {
                const rate = (done / Math.max(0.001, (performance.now() - started) / 1000)).toFixed(1)
                if (!barStarted) { bar.start(total, done, { rate, column: printable(`${each.table}.${each.column}`) }); barStarted = true } else bar.update(done, { rate })
              },
            })
            results.push(result)
          } finally {
            if (barStarted) bar.stop()
          }
        }
        // The column's own result, and those of the extra columns of its staged model change.
        if (g.json) printJson({ ...results[0], copies: results.slice(1) })
        else {
          for (const result of results) {
            // Named when a staged model change makes it more than one column.
            process.stdout.write(`${results.length > 1 ? `${printable(result.column)}: ` : ''}${result.written} vectors written (${result.done}/${result.total} rows, ${result.skipped} changed meanwhile and left to their own path) in ${result.seconds.toFixed(1)} s${result.interrupted ? '; interrupted: run it again to continue' : ''}\n`)
            for (const f of result.failed) process.stderr.write(`  ${pc.red('failed')} ${printable(f.key)}: ${printable(f.error)}\n`)
          }
        }
        if (results.some((r) => r.failedCount > 0 || r.interrupted) || controller.signal.aborted) ctx.exit.code = EXIT.checkFailed
      } finally {
        stopping.dispose()
        await target.close()
      }
    })
}
