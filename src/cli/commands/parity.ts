import { readFile } from 'node:fs/promises'
import { CommanderError, type Command } from 'commander'
import pc from 'picocolors'
import { loadConfig } from '../../config/load.js'
import { openTarget } from '../../db/target.js'
import { localEmbedderLoader } from '../../embed/embedder-for-config.js'
import { checkParity } from '../../parity/check-parity.js'
import { findColumn } from '../../model/find-column.js'
import { readColumnWithCopies } from '../../db/live-catalog.js'
import { EXIT, printable, printJson } from '../output.js'
import { globals, positiveInt, type CommandContext } from '../options.js'

export function registerParity(program: Command, ctx: CommandContext): void {
  program.command('parity')
    .description('training/serving skew: compare stored vectors (or pgml.embed) with the local model; exit 1 below --min-cosine')
    .argument('<column>', '<table>.<column>')
    .option('--sample <n>', 'rows to sample', positiveInt('--sample'), 100)
    .option('--texts <file>', 'compare pgml.embed in the database with the local model on these texts (one per line)')
    .option('--min-cosine <x>', 'lowest acceptable cosine similarity', '0.999')
    .action(async (arg: string, opts: { sample: number; texts?: string; minCosine: string }, cmd: Command) => {
      const g = globals(cmd)
      const minCosine = Number(opts.minCosine)
      if (!(minCosine >= -1 && minCosine <= 1)) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `--min-cosine must be between -1 and 1, got ${opts.minCosine}`)
      const config = await loadConfig(g.config)
      const declared = findColumn(config.state.embeddingColumns, arg)
      const texts = opts.texts ? (await readFile(opts.texts, 'utf8')).split('\n').filter((line) => line.trim() !== '') : undefined
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      try {
        // The column as the catalog has it: during a staged model change, the model it still holds.
        const [column = declared] = await readColumnWithCopies(target, declared)
        const embedder = await localEmbedderLoader(config.embedder)(column)
        const report = await checkParity({ url: target, column, embedder, sample: opts.sample, minCosine, ...(texts ? { texts } : {}) })
        if (g.json) printJson(report)
        else {
          const what = report.compared === 'texts' ? 'pgml.embed in the database vs the local model' : 'stored vectors vs the local model'
          process.stdout.write(`${printable(report.column)}: ${what}, ${report.count} ${report.compared === 'texts' ? 'texts' : 'rows'}\n`)
          process.stdout.write(`  cosine min ${report.minCosine.toFixed(6)}  mean ${report.meanCosine.toFixed(6)}  max |diff| ${report.maxAbsDiff.toExponential(2)}  (threshold ${report.threshold})\n`)
          for (const w of report.worst.filter((r) => r.cosine < report.threshold)) process.stdout.write(`  ${pc.red('worst')} ${printable(JSON.stringify(w.key))} cosine ${w.cosine.toFixed(6)}: ${printable(JSON.stringify(w.text.slice(0, 60)))}\n`)
          process.stdout.write(report.ok ? `${pc.green('ok')}\n` : `${pc.red('skew')}: vectors differ from what the local model computes now (model, prefix or normalisation changed?)\n`)
        }
        ctx.exit.code = report.ok ? EXIT.ok : EXIT.checkFailed
      } finally {
        await target.close()
      }
    })
}
