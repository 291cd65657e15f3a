import type pg from 'pg'
import type { Connector } from '../db/connect.js'
import type { Target } from '../db/target.js'
import { BACKEND_PID, MIGRATION_WAITS } from '../sql/render-introspection.js'

interface Blocker { pid: number; state: string | null; application: string; seconds: number | null; query: string }

/** Where a concurrent index build is, from pg_stat_progress_create_index (servers report it; PGlite does not). */
export interface IndexBuildProgress {
  /** The index being built (null in the first moments of a build). */
  readonly index: string | null
  /** PostgreSQL's phase, e.g. "building index: loading tuples", "waiting for old snapshots". */
  readonly phase: string
  readonly tuplesDone: number | null
  readonly tuplesTotal: number | null
  readonly blocksDone: number | null
  readonly blocksTotal: number | null
}

/**
 * While migrations run on a server, says what they wait for: a concurrent index build waits for
 * every transaction older than itself — an idle-in-transaction session, a long report — and a DBA
 * should know which one, not watch a migration that seems stuck. Polls from a connection of its
 * own; reports a change at once and an unchanged wait every 15 s.
 */
export async function watchMigration(connector: Connector, migrationPid: number, report: (message: string) => void,
  onProgress?: (progress: IndexBuildProgress) => void): Promise<() => Promise<void>> {
  const client = await connector.connect('pgml-kit migrate monitor')
  let last = ''
  let lastAt = 0
  let stopped = false
  const poll = async () => {
    const { rows } = await client.query<{ phase: string | null; tuples_done: number | null; tuples_total: number | null; blocks_done: number | null; blocks_total: number | null; index_name: string | null; blockers: Blocker[] }>(MIGRATION_WAITS, [migrationPid])
    const row = rows[0]
    if (row?.phase && onProgress) {
      onProgress({ index: row.index_name, phase: row.phase, tuplesDone: row.tuples_done, tuplesTotal: row.tuples_total, blocksDone: row.blocks_done, blocksTotal: row.blocks_total })
    }
    if (!row || row.blockers.length === 0) {
      last = ''
      return
    }
    const who = row.blockers.map((b) => `pid ${b.pid} (${b.state ?? 'unknown state'}${b.seconds === null ? '' : `, its transaction open ${b.seconds} s`}${b.application ? `, ${b.application}` : ''}: ${b.query || '-'})`).join('; ')
    const message = `${row.phase ? `index build ${row.phase}: ` : ''}waiting for ${who}`
    const key = `${row.phase}|${row.blockers.map((b) => b.pid).join(',')}`
    if (key !== last || Date.now() - lastAt > 15_000) {
      report(message)
      last = key
      lastAt = Date.now()
    }
  }
  // Often enough for a progress bar; a wait is still reported once, then every 15 s.
  const timer = setInterval(() => { if (!stopped) poll().catch(() => undefined) }, onProgress ? 500 : 2_000)
  return async () => {
    stopped = true
    clearInterval(timer)
    await client.end().catch(() => undefined)
  }
}

/**
 * Watches `client`'s session (its waits and index builds) from a connection of its own, on a
 * server; on the embedded database (one session: nothing to name, no progress reported) and
 * with nothing to tell, it does nothing. Returns the function that stops watching.
 */
export async function watchSession(target: Target, client: pg.ClientBase, listeners: { onWait?: ((message: string) => void) | undefined; onProgress?: ((progress: IndexBuildProgress) => void) | undefined }): Promise<() => Promise<void>> {
  const none = async () => undefined
  if (target.kind !== 'server' || (!listeners.onWait && !listeners.onProgress)) return none
  const pid = (await client.query<{ pid: number }>(BACKEND_PID)).rows[0]?.pid
  if (pid === undefined) return none
  return (await watchMigration(target, pid, listeners.onWait ?? (() => undefined), listeners.onProgress).catch(() => undefined)) ?? none
}
