import { readFile } from 'node:fs/promises'
import asciichart from 'asciichart'
import cliProgress from 'cli-progress'
import Table from 'cli-table3'
import { CommanderError, type Command } from 'commander'
import pc from 'picocolors'
import { checkIndexReconnecting, findIndex, type IndexCheckResult } from '../../indexes/check.js'
import { writeSearchDefault } from '../../indexes/write-setting.js'
import { EXIT, printable, printJson, withoutSecrets, tableText } from '../output.js'
import { positiveInt } from '../options.js'
import { loadConfig } from '../../config/load.js'
import { generatedState } from '../../migrations/generate.js'
import { openTarget } from '../../db/target.js'
import { repairIndexes } from '../../indexes/health.js'
import { watchSession } from '../../migrations/wait-monitor.js'
import { indexProgressPrinter } from '../index-progress.js'
import { globals } from '../options.js'

function recallOption(value: string): number {
  const n = Number(value)
  if (!(n > 0 && n < 1)) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `--target-recall must be a number in (0, 1), got ${value}: no sample of queries shows recall 1 on queries it has not measured`)
  return n
}

function gridOption(value: string): number[] {
  const grid = value.split(',').map((v) => Number(v.trim()))
  if (grid.length === 0 || grid.some((n) => !Number.isInteger(n) || n < 1)) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `--grid must be a comma-separated list of positive integers, got ${value}`)
  return grid
}

async function readQueriesFile(path: string): Promise<number[][]> {
  const parsed = JSON.parse(await readFile(path, 'utf8')) as unknown
  if (!Array.isArray(parsed) || parsed.some((v) => !Array.isArray(v) || v.some((x) => typeof x !== 'number'))) {
    throw new CommanderError(EXIT.usage, 'pgml-kit.option', `--queries-file ${path} must hold a JSON array of vectors (arrays of numbers)`)
  }
  return parsed as number[][]
}

/** The check as a table, a recall chart over the grid, and the recommendation. */
function printCheck(result: IndexCheckResult): void {
  const filtered = result.where !== null
  const table = new Table({ head: [result.parameter, ...(filtered ? ['iterative scan'] : []), `recall@${result.k}`, 'unseen queries ≥', 'p50 ms', 'p95 ms', 'short'], style: { head: [], border: [] } })
  for (const r of result.rows) {
    const mark = r === result.recommendation ? pc.green(' ←') : ''
    const judged = r.perQuery.length > 0
    table.push([`${r.setting}${mark}`, ...(filtered ? [r.iterative ? 'on' : 'off'] : []), judged ? `${r.recall.toFixed(3)} ±${r.recallStdErr.toFixed(3)}` : '—', !judged ? '—' : r.recallBound >= result.targetRecall ? pc.green(r.recallBound.toFixed(3)) : r.recallBound.toFixed(3), r.p50Ms.toFixed(2), r.p95Ms.toFixed(2), r.short])
  }
  process.stdout.write(`${printable(result.index)} on ${printable(result.column)}: ${result.queries} queries, k ${result.k}${filtered ? `, where ${printable(result.where)}` : ''}; exact search p50 ${result.exact.p50Ms.toFixed(2)} ms\n`)
  process.stdout.write(tableText(table))
  const series = filtered ? [false, true].map((it) => result.rows.filter((r) => r.iterative === it).map((r) => r.recall)) : [result.rows.map((r) => r.recall)]
  if (series[0]!.length > 1) {
    const settings = result.rows.filter((r) => r.iterative === (filtered ? false : null)).map((r) => r.setting)
    process.stdout.write(`\nrecall@${result.k} by ${result.parameter}${filtered ? ` (${pc.blue('iterative off')}, ${pc.green('iterative on')})` : ''}\n`)
    process.stdout.write(`${asciichart.plot([...series, series[0]!.map(() => result.targetRecall)], { height: 10, min: 0, max: 1, ...(pc.isColorSupported ? { colors: [asciichart.blue, asciichart.green, asciichart.red].slice(0, series.length).concat([asciichart.red]) } : {}), format: (x: number) => x.toFixed(2).padStart(6) })}\n`)
    process.stdout.write(`        ${settings.join('  ')}  (${result.parameter}; red: target ${result.targetRecall})\n`)
  }
  if (result.recommendation) {
    const r = result.recommendation
    process.stdout.write(`\n${pc.green('recommended')} ${result.parameter} ${r.setting}${r.iterative ? ' with iterative scans' : ''}: recall@${result.k} ${r.recall.toFixed(3)} on these ${result.queries} queries, at least ${r.recallBound.toFixed(3)} as the mean recall of queries like them (95% confidence), p50 ${r.p50Ms.toFixed(2)} ms (target ${result.targetRecall})\n`)
  } else {
    process.stdout.write(`\n${pc.red('no setting reaches')} recall ${result.targetRecall}: ${printable(result.advice)}\n`)
  }
}

export function registerIndex(program: Command): void {
  const index = program.command('index').description('the vector indexes the config declares')
  index.command('check')
    .description('measure recall@k of a vector index against exact search, for each ef_search (HNSW) or probes (IVFFlat), and recommend the smallest setting whose recall on queries not measured reaches the target (a 95% lower bound)')
    .argument('<column>', 'table.column (or schema.table.column) of the index')
    .option('--index <name>', 'which of the column\'s indexes (default: its first)')
    .option('-k, --k <n>', 'rows per query (1 to 1000)', (value: string) => {
      const k = positiveInt('--k')(value)
      if (k > 1000) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `--k must be at most 1000 (pgvector's ef_search limit), got ${value}`)
      return k
    }, 10)
    .option('--queries <n>', 'query vectors sampled from the column, each left out of its own answers (default: 100 for a target up to 0.9, about 120 for 0.95, 600 for 0.99)', positiveInt('--queries'))
    .option('--queries-file <path>', 'query vectors from a JSON file (an array of arrays of numbers) instead of a sample')
    .option('--target-recall <r>', 'the recall@k to reach', recallOption, 0.95)
    .option('--where <sql>', 'a filter on the table\'s rows, as SQL (runs inside a READ ONLY transaction); adds runs with iterative scans')
    .option('--grid <list>', 'settings to try, comma-separated (default: 10…1000 for ef_search, 1…lists for probes)', gridOption)
    .option('--write', 'write the recommended setting into the config (efSearch / probes), so the query builders use it')
    .action(async (column: string, opts: { index?: string; k: number; queries?: number; queriesFile?: string; targetRecall: number; where?: string; grid?: number[]; write?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      if (opts.write && opts.where) {
        throw new CommanderError(EXIT.usage, 'pgml-kit.option', '--write with --where: a setting measured on filtered searches is no default for every search of the column; give it to the filtered searches (efSearch / probes in their options)')
      }
      const config = await loadConfig(g.config)
      // The indexes as the migrations have them: during a staged model change, the live column's own.
      const state = await generatedState(config)
      const { index: node } = findIndex(state, column, opts.index)
      const queryVectors = opts.queriesFile ? await readQueriesFile(opts.queriesFile) : undefined
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      try {
        let bar: cliProgress.SingleBar | undefined
        {
          if (!g.json && process.stderr.isTTY) {
            bar = new cliProgress.SingleBar({ stream: process.stderr, hideCursor: true, format: 'checking {bar} {value}/{total} queries' }, cliProgress.Presets.shades_classic)
          }
          // A connection lost midway (a restarted server, the embedded database's owner gone): measured again on a new one.
          const { result, recorded } = await checkIndexReconnecting(target, state, {
            column, k: opts.k, targetRecall: opts.targetRecall, ...(opts.queries === undefined ? {} : { queries: opts.queries }),
            ...(opts.index ? { index: opts.index } : {}), ...(queryVectors ? { queryVectors } : {}), ...(opts.where ? { where: opts.where } : {}), ...(opts.grid ? { grid: opts.grid } : {}),
            onProgress: bar ? (done, total) => (done === 1 ? bar!.start(total, done) : bar!.update(done)) : undefined,
            onReconnect: (error) => {
              bar?.stop()
              process.stderr.write(`lost the connection (${printable(withoutSecrets(error.message, g.databaseUrl))}); measuring again on a new one\n`)
            },
          }).finally(() => bar?.stop())
          let written: string | null = null
          if (opts.write && result.recommendation) written = await writeSearchDefault(config.path, node, result.recommendation.setting)
          if (g.json) return printJson({ ...result, recorded, written })
          printCheck(result)
          if (written) process.stdout.write(`${pc.green('wrote')} ${written} in ${config.path}\n`)
          else if (opts.write) process.stdout.write(`${pc.yellow('not written')}: no setting was shown to reach the target\n`)
          if (!recorded) process.stdout.write(pc.dim('(not kept for status: the pgml_kit runtime schema predates index checks, or this role may not write to it)\n'))
        }
      } finally {
        await target.close()
      }
    })
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
          onWait: (m) => process.stderr.write(`${pc.yellow('waiting')} ${printable(m)}\n`), onProgress: progress.onProgress,
        })
        try {
          const result = await repairIndexes(client, await generatedState(config), {
            ...(column === undefined ? {} : { column }),
            onStep: g.json ? undefined : (step) => process.stderr.write(`${pc.dim(printable(step.sql.split('\n')[0]!.slice(0, 120)))}\n`),
          }).finally(async () => {
            await stopWatching()
            progress.done()
          })
          if (g.json) return printJson(result)
          for (const r of result.repaired) process.stdout.write(`${pc.green('repaired')} ${printable(r.index)} (was ${printable(r.state)}${r.detail ? `: ${printable(r.detail)}` : ''})\n`)
          for (const name of result.ok) process.stdout.write(`${pc.dim('ok')} ${printable(name)}\n`)
        } finally {
          await client.end()
        }
      } finally {
        await target.close()
      }
    })
}
