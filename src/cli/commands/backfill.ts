import type { Command } from 'commander'
import cliProgress from 'cli-progress'
import pc from 'picocolors'
import { loadConfig } from '../../config/load.js'
import { openTarget } from '../../db/target.js'
import { localEmbedderLoader } from '../../embed/embedder-for-config.js'
import { backfill } from '../../worker/backfill.js'
import { findColumn } from '../../model/find-column.js'
import { EXIT, printJson } from '../output.js'
import { globals, positiveInt, type CommandContext } from '../options.js'

export function registerBackfill(program: Command, ctx: CommandContext): void {
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
          url: target, column, loadEmbedder: () => loadEmbedder(column), all: opts.all ?? false, restart: opts.restart ?? false,
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
          for (const f of result.failed) process.stderr.write(`  ${pc.red('failed')} ${f.key}: ${f.error}\n`)
        }
        if (result.failedCount > 0 || result.interrupted) ctx.exit.code = EXIT.checkFailed
      } finally {
        if (barStarted) bar.stop()
        process.off('SIGINT', stop)
        await target.close()
      }
    })
}
