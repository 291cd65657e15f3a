import type { Command } from 'commander'
import pc from 'picocolors'
import { checkFailed, checkFeatures, type FeatureCheck } from '../../features/check.js'
import { EXIT, printable, printJson } from '../output.js'
import { globals, nonNegativeNumber, positiveInt, type CommandContext } from '../options.js'
import { withClient } from './ml.js'

function seconds(value: number): string {
  if (!Number.isFinite(value)) return 'never materialised'
  return value < 120 ? `${value.toFixed(1)} s` : value < 7200 ? `${(value / 60).toFixed(1)} min` : `${(value / 3600).toFixed(1)} h`
}

function printCheck(c: FeatureCheck, failed: boolean): void {
  const lag = c.lag
  const head = failed ? pc.red('check failed') : pc.green('ok')
  const pending = lag.pendingEntities === null ? 'source is a query: compared whole on every run' : `${lag.pendingEntities} entities with unmaterialised changes${lag.fullRefreshPending ? ', a full comparison due' : ''}${lag.dueRows ? `, ${lag.dueRows} rows came due` : ''}`
  process.stdout.write(`${head} ${printable(c.view)}: ${c.skew.total} online rows differ from the offline definition; lag ${seconds(lag.lagSeconds)} (${pending}); last run ${printable(lag.lastRunAt ?? 'never')}${lag.runs ? ` (${lag.runs} runs)` : ''}\n`)
  for (const d of c.skew.differences) {
    process.stdout.write(`  ${pc.yellow(d.kind.padEnd(9))} ${printable(JSON.stringify(d.entity))}  online event ${printable(d.onlineEvent ?? '-')}, definition's ${printable(d.expectedEvent ?? '-')}\n`)
  }
  if (c.skew.total > c.skew.differences.length) process.stdout.write(`  … and ${c.skew.total - c.skew.differences.length} more\n`)
  if (lag.sample.length > 0) process.stdout.write(`  pending: ${lag.sample.map((e) => printable(JSON.stringify(e))).join(', ')}${(lag.pendingEntities ?? 0) > lag.sample.length ? ', …' : ''}\n`)
  if (c.source) {
    const s = c.source
    const total = s.offlineInserted + s.offlineDeleted + s.onlineUpserted + s.onlineDeleted
    process.stdout.write(`  source: ${total === 0 ? 'the stores equal the source' : `a full refresh would write offline +${s.offlineInserted} −${s.offlineDeleted} rows, online ${s.onlineUpserted} written, ${s.onlineDeleted} removed (pgml-kit materialize --full)`}\n`)
  }
  if (c.skew.total > 0) process.stdout.write(`  ${pc.cyan('hint')} pgml-kit materialize ${printable(c.view)} brings the online rows to the definition\n`)
}

export function registerFeatures(program: Command, ctx: CommandContext): void {
  const features = program.command('features').description('feature views: training-serving skew and materialisation lag')
  features.command('check')
    .description('compare each online row with its definition recomputed from the offline table as of now, and report what the stores lag behind the source; exit 1 on any difference (for cron)')
    .argument('[views...]', 'feature views (default: all)')
    .option('--source', 'also compare the whole source with the stores (what materialize --full would write, found in a transaction that is rolled back)')
    .option('--max-lag <seconds>', 'also fail when a change has waited longer than this', nonNegativeNumber('--max-lag'))
    .option('--limit <n>', 'differences and pending entities listed per view', positiveInt('--limit'), 20)
    .action(async (views: string[], opts: { source?: boolean; maxLag?: number; limit: number }, cmd: Command) => {
      const g = globals(cmd)
      await withClient(cmd, 'pgml-kit features check', async (client, config) => {
        const checks = await checkFeatures(client, config.state, views, { source: opts.source === true, limit: opts.limit })
        const failed = checks.map((c) => checkFailed(c, opts.maxLag ?? null))
        if (g.json) printJson(checks.map((c, i) => ({ ...c, lag: { ...c.lag, lagSeconds: Number.isFinite(c.lag.lagSeconds) ? c.lag.lagSeconds : null }, failed: failed[i] })))
        else {
          if (checks.length === 0) process.stdout.write('no feature views in the config\n')
          checks.forEach((c, i) => printCheck(c, failed[i]!))
        }
        if (failed.some(Boolean)) ctx.exit.code = EXIT.checkFailed
      })
    })
}
