import type pg from 'pg'
import type { DesiredState, FeatureViewNode } from '../model/ir.js'
import { PINNED_SETTINGS, renderFeatureLag, renderMaterializeCall, renderOnlineSkew, SET_LOCAL_SETTING } from '../sql/render-features.js'
import { viewsNamed } from './ml.js'

/**
 * `pgml-kit features check`: per feature view, training-serving skew (the online table against its
 * definition recomputed from the offline table as of now), lag (changes of the source not yet
 * materialised) and, optionally, what a full comparison with the source would change.
 */

export interface SkewDifference {
  readonly kind: 'missing' | 'extra' | 'stale' | 'different'
  /** The entity's key columns and values. */
  readonly entity: Readonly<Record<string, unknown>>
  readonly onlineEvent: string | null
  readonly expectedEvent: string | null
}

export interface FeatureLag {
  readonly lastRunAt: string | null
  readonly lastFullRunAt: string | null
  readonly runs: number
  readonly sinceRunSeconds: number | null
  /** Entities with changes logged and not materialised (null for a query source: nothing logs its changes). */
  readonly pendingEntities: number | null
  readonly oldestChangeSeconds: number | null
  /** A TRUNCATE (or the first run) is waiting: the next run compares the whole source. */
  readonly fullRefreshPending: boolean | null
  /** Offline rows whose event time came since the last run (the online table serves them after the next). */
  readonly dueRows: number | null
  /** Some of the pending entities' keys. */
  readonly sample: readonly Readonly<Record<string, unknown>>[]
  /**
   * How long the oldest change the stores do not reflect has waited, in seconds: the oldest logged
   * change; rows that came due or a pending full comparison count from the last run; for a query
   * source, the time since the last run. Infinity before the first run.
   */
  readonly lagSeconds: number
}

export interface FeatureCheck {
  readonly view: string
  readonly skew: { readonly total: number; readonly differences: readonly SkewDifference[] }
  readonly lag: FeatureLag
  /** With `source`: what `materialize --full` would write (counts), found in a transaction that is rolled back. */
  readonly source: { readonly offlineInserted: number; readonly offlineDeleted: number; readonly onlineUpserted: number; readonly onlineDeleted: number } | null
}

export async function readFeatureLag(client: pg.ClientBase, view: FeatureViewNode, sample = 10): Promise<FeatureLag> {
  const { rows } = await client.query<{
    last_run_at: string | null; last_full_run_at: string | null; runs: string; since_run_seconds: number | null
    pending: string | null; oldest_seconds: number | null; full_pending: boolean | null; due: string | null; sample: Record<string, unknown>[] | null
  }>(renderFeatureLag(view), view.changeCapture === 'trigger' ? [sample] : [])
  const r = rows[0]!
  const sinceRun = r.last_run_at === null ? Infinity : r.since_run_seconds ?? 0
  const lagSeconds = view.changeCapture !== 'trigger'
    ? sinceRun
    : Math.max(r.oldest_seconds ?? 0, r.full_pending ? sinceRun : 0, Number(r.due ?? 0) > 0 ? sinceRun : 0)
  return {
    lagSeconds,
    lastRunAt: r.last_run_at, lastFullRunAt: r.last_full_run_at, runs: Number(r.runs), sinceRunSeconds: r.since_run_seconds,
    pendingEntities: r.pending === null ? null : Number(r.pending), oldestChangeSeconds: r.oldest_seconds, fullRefreshPending: r.full_pending,
    dueRows: r.due === null ? null : Number(r.due), sample: r.sample ?? [],
  }
}

export async function checkFeatures(client: pg.ClientBase, state: DesiredState, names: readonly string[], options: { source?: boolean; limit?: number } = {}): Promise<FeatureCheck[]> {
  const limit = options.limit ?? 20
  const out: FeatureCheck[] = []
  for (const view of viewsNamed(state, names)) {
    // The settings materialisation runs with (naive timestamps read as UTC, exact float text), in a
    // transaction that is rolled back: --source runs a full comparison in it and keeps nothing.
    await client.query('BEGIN')
    try {
      for (const [name, value] of PINNED_SETTINGS) await client.query(SET_LOCAL_SETTING, [name, value])
      const { rows } = await client.query<{ kind: SkewDifference['kind']; entity: Record<string, unknown>; online_event: string | null; expected_event: string | null; total: string }>(renderOnlineSkew(view), [limit])
      const lag = await readFeatureLag(client, view, limit)
      let source: FeatureCheck['source'] = null
      if (options.source) {
        const { rows: r } = await client.query<{ offline_inserted: string; offline_deleted: string; online_upserted: string; online_deleted: string }>(renderMaterializeCall(view), [true])
        source = { offlineInserted: Number(r[0]?.offline_inserted), offlineDeleted: Number(r[0]?.offline_deleted), onlineUpserted: Number(r[0]?.online_upserted), onlineDeleted: Number(r[0]?.online_deleted) }
      }
      out.push({
        view: view.name, lag, source,
        skew: { total: Number(rows[0]?.total ?? 0), differences: rows.map((d) => ({ kind: d.kind, entity: d.entity, onlineEvent: d.online_event, expectedEvent: d.expected_event })) },
      })
    } finally {
      await client.query('ROLLBACK')
    }
  }
  return out
}

/** Whether a check found something for cron to act on: skew, source differences, or lag over `maxLagSeconds`. */
export function checkFailed(check: FeatureCheck, maxLagSeconds: number | null): boolean {
  const s = check.source
  return check.skew.total > 0 || (s !== null && s.offlineInserted + s.offlineDeleted + s.onlineUpserted + s.onlineDeleted > 0) || (maxLagSeconds !== null && check.lag.lagSeconds > maxLagSeconds)
}
