import cliProgress from 'cli-progress'
import pc from 'picocolors'
import type { IndexBuildProgress } from '../migrations/wait-monitor.js'
import { printable } from './output.js'

/**
 * Shows a concurrent index build's progress on stderr: a bar (tuples, else blocks) on a terminal,
 * a line per phase otherwise. `done()` clears the bar.
 */
export function indexProgressPrinter(): { onProgress: (p: IndexBuildProgress) => void; done: () => void } {
  const tty = Boolean(process.stderr.isTTY)
  let bar: cliProgress.SingleBar | undefined
  let lastPhase = ''
  const stopBar = () => {
    bar?.stop()
    bar = undefined
  }
  return {
    onProgress(p) {
      const [done, total, unit] = p.tuplesTotal ? [p.tuplesDone ?? 0, p.tuplesTotal, 'tuples'] : [p.blocksDone ?? 0, p.blocksTotal ?? 0, 'blocks']
      const key = `${p.index}|${p.phase}`
      if (!tty) {
        if (key !== lastPhase) process.stderr.write(`${pc.cyan('building')} ${printable(p.index ?? 'index')}: ${printable(p.phase)}${total ? ` (${done}/${total} ${unit})` : ''}\n`)
        lastPhase = key
        return
      }
      if (key !== lastPhase) {
        stopBar()
        lastPhase = key
        // The names as a payload value: the format's placeholders are replaced once, a name's braces stay text.
        const what = `${printable(p.index ?? 'index')} ${printable(p.phase)}`
        bar = new cliProgress.SingleBar({ stream: process.stderr, hideCursor: true, format: `{what} {bar} {value}/{total} ${unit}` }, cliProgress.Presets.shades_classic)
        bar.start(total || 1, done, { what })
      }
      bar?.setTotal(total || 1)
      bar?.update(done)
    },
    done: stopBar,
  }
}
