import pc from 'picocolors'
import type { Command } from 'commander'
import { loadConfig } from '../../config/load.js'
import { onStop } from '../stop.js'
import { openTarget } from '../../db/target.js'
import { localEmbedderLoader } from '../../embed/embedder-for-config.js'
import { runWorker } from '../../worker/run-worker.js'
import { findColumn } from '../../model/find-column.js'
import { printable, printJson, withoutSecrets } from '../output.js'
import { globals, nonNegativeNumber, positiveInt } from '../options.js'
import type { WorkerTotals } from '../../worker/run-worker.js'

export function registerWorker(program: Command): void {
  program.command('worker')
    .description('embed queued rows (mode "queue") with the local model until stopped; run as many as you like')
    .option('--column <table.column...>', 'only these columns (default: every queue-mode column)')
    .option('--batch-size <n>', 'jobs per batch', positiveInt('--batch-size'), 32)
    .option('--max-attempts <n>', 'failures before a job is dead-lettered', positiveInt('--max-attempts'), 5)
    .option('--lease <seconds>', 'how long a claimed batch stays reserved if this worker stops renewing it (it dies)', positiveInt('--lease'), 30)
    .option('--poll <ms>', 'pause between polls of an empty queue', positiveInt('--poll'), 1000)
    .option('--once', 'exit when no job is due instead of waiting for more')
    .option('--wait <seconds>', 'how long to keep trying a database not reached yet (nothing listening, a server starting up) before giving up; once connected, a lost connection is retried for as long as it takes (default 60, 0 with --once)', nonNegativeNumber('--wait'))
    .action(async (opts: { column?: string[]; batchSize: number; maxAttempts: number; lease: number; poll: number; once?: boolean; wait?: number }, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      // Every column of the config: the worker serves those the catalog has in mode "queue" (during a
      // staged model change, the live column and its shadow may be in different modes).
      const declared = config.state.embeddingColumns
      const declaredChunked = config.state.chunkedColumns ?? []
      const chunkedNamed = (arg: string) => declaredChunked.find((c) => arg === `${c.table}.${c.column}` || arg === `${c.schema}.${c.table}.${c.column}`)
      const columns = opts.column ? opts.column.filter((arg) => !chunkedNamed(arg)).map((arg) => findColumn(declared, arg, declaredChunked)) : declared
      const chunked = opts.column ? opts.column.flatMap((arg) => chunkedNamed(arg) ?? []) : declaredChunked
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      const stopping = onStop('stopping after the current batch (again to quit now; unfinished jobs return to the queue when their lease ends)')
      try {
        if (!g.json) process.stderr.write(`worker on ${printable(target.description)}: ${[...columns, ...chunked].filter((c) => c.mode === 'queue').map((c) => printable(`${c.table}.${c.column}`)).join(', ') || '(queue-mode columns of staged model changes)'}\n`)
        const totals = await runWorker({
          url: target, columns, loadEmbedder: localEmbedderLoader(config.embedder), chunked, loadChunkEmbedder: localEmbedderLoader(config.embedder),
          onChunkBatch: g.json ? undefined : (node, r) => {
            process.stderr.write(`${printable(`${node.table}.${node.column}`)}: ${r.completed} rows synced, ${r.written} chunks embedded, ${r.stale} left for newer changes, ${r.failed} failed, ${r.deadLettered} dead-lettered\n`)
            for (const f of (r.failures ?? []).slice(0, 5)) process.stderr.write(`  ${pc.red('failed')} job ${f.jobId}: ${printable(withoutSecrets(f.error, g.databaseUrl))}\n`)
          },
          batchSize: opts.batchSize, maxAttempts: opts.maxAttempts, leaseSeconds: opts.lease, pollIntervalMs: opts.poll,
          once: opts.once ?? false, signal: stopping.signal,
          onBatch: g.json ? undefined : (column, r) => {
            process.stderr.write(r.catalogChanged
              ? `${printable(`${column.table}.${column.column}`)}: changed by a migration while the batch was embedded; nothing written, reading the catalog again\n`
              : `${printable(`${column.table}.${column.column}`)}: ${r.written} written, ${r.stale} left for newer changes, ${r.failed} failed, ${r.deadLettered} dead-lettered\n`)
            // Why, one line each (at most 5 a batch; every error stays in the job or its dead letter).
            for (const f of (r.failures ?? []).slice(0, 5)) process.stderr.write(`  ${pc.red('failed')} job ${f.jobId}: ${printable(withoutSecrets(f.error, g.databaseUrl))}\n`)
            if ((r.failures?.length ?? 0) > 5) process.stderr.write(`  … and ${r.failures!.length - 5} more (pgml_kit.embedding_jobs.last_error, or the dead letters)\n`)
          },
          onReconnect: (error) => process.stderr.write(`lost the connection (${printable(withoutSecrets(error.message, g.databaseUrl))}); reconnecting\n`),
          startupWaitSeconds: opts.wait ?? (opts.once ? 0 : 60),
          onStartupRetry: (error, delayMs) => process.stderr.write(`${printable(withoutSecrets(error.message, g.databaseUrl))}; trying again in ${(delayMs / 1000).toFixed(1)} s (gives up ${opts.wait ?? 60} s after start; --wait)\n`),
        })
        if (g.json) printJson(totals)
        else {
          process.stdout.write(`${totals.written} vectors written in ${totals.batches} batches; ${totals.failed} failures, ${totals.deadLettered} dead-lettered\n`)
          for (const line of describeOutlook(totals)) process.stdout.write(`${line}\n`)
        }
      } finally {
        stopping.dispose()
        await target.close()
      }
    })
}

/** What a drained `--once` run left behind, so "0 written" never hides jobs that are merely not due yet. */
function describeOutlook(totals: WorkerTotals): string[] {
  const o = totals.outlook
  if (!o) return []
  const lines: string[] = []
  const seconds = (s: number | null) => (s === null ? '' : ` in ${Math.ceil(s)} s`)
  if (o.leasedElsewhere > 0) lines.push(`${o.leasedElsewhere} job${o.leasedElsewhere === 1 ? ' is' : 's are'} leased by other workers (running, or dead and not yet expired); the last lease ends${seconds(o.leasesEndInSeconds)}, then any worker takes them`)
  if (o.waitingForRetry > 0) lines.push(`${o.waitingForRetry} job${o.waitingForRetry === 1 ? ' waits' : 's wait'} for a retry after a failure; the next is due${seconds(o.nextRetryInSeconds)}`)
  return lines
}
