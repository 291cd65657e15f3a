import pc from 'picocolors'
import type { RolloutStage } from '../plan/rollout.js'
import { printable } from './output.js'

/** Staged model changes in `plan` / `generate` output: what this plan does to each, or what it waits for. */
export function printStages(stages: readonly RolloutStage[]): void {
  for (const s of stages) {
    const label = s.waiting ? pc.yellow(`[waits: ${s.stage}]`) : pc.cyan(`[${s.subject === 'chunking' ? 'chunking change' : 'model change'}: ${s.stage}]`)
    process.stdout.write(`${label} ${printable(s.column)}: ${printable(s.message)}\n`)
  }
}
