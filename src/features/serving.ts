import type pg from 'pg'
import { shellArg } from '../shell.js'
import { PgmlKitError } from '../errors.js'
import type { ModelNode, ResolvedConfig } from '../model/resolve.js'
import { READ_ALIAS, SET_ALIAS_EVENT } from '../sql/render-registry.js'
import {
  COMPARE_ARMS, COMPARE_SHADOW, DROP_PARTITION_LOCK_TIMEOUT, EXPIRED_PARTITION, MAINTAIN_PREDICTION_LOG, renderDropLogPartition, READ_LOG_SETTINGS, READ_ROUTE, REMOVE_ROUTE, SERVING_EXISTS, SET_ROUTE, renderCompareLabelled,
} from '../sql/render-serving.js'
import { requireTrustedRelation } from './trust.js'
import { CHAMPION, inRegistryTransaction, registerMissingInTransaction, registryNotPermitted, requireRegistry } from './registry.js'

/**
 * Serving through the registry (runtime schema version 7). A project's challenger alias runs in
 * shadow — predicted beside the champion on logged requests, its prediction never returned — or as
 * a canary that serves a share of the entity keys, chosen by a stable hash of the key so that an
 * entity sees one model. pgml_kit.predict follows the route in the predicting statement; with the
 * project's log on (config `models.<p>.serving.log`) a sample of requests is logged, and
 * `compareModels` reports the arms on them.
 */

export type RouteMode = 'shadow' | 'canary'

export interface ModelRoute {
  readonly project: string
  readonly alias: string
  /** The version the alias names now. */
  readonly version: number
  readonly mode: RouteMode
  /** The share of entity keys a canary serves (1 for a shadow). */
  readonly share: number
  readonly setAt: string
  readonly setBy: string
}

/** Whether the database serves through the registry (runtime ≥ 7). */
export async function servingInstalled(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(SERVING_EXISTS)
  return rows[0]?.ok === true
}

async function requireServing(client: pg.ClientBase): Promise<void> {
  await requireRegistry(client)
  if (!(await servingInstalled(client))) {
    throw new PgmlKitError('SERVING_MISSING', 'this database\'s pgml_kit runtime predates serving through the registry (pgml_kit.model_routes)', {
      hint: 'pgml-kit generate && pgml-kit migrate upgrades the runtime schema to version 7',
    })
  }
}

/**
 * Routes the project's traffic: `alias` (a live alias other than champion) in `shadow`, or as a
 * `canary` for `share` (0–1] of the entity keys. Replaces the project's route, if any; recorded as a
 * `route_set` event with who, when, why and the route before.
 */
export async function setRoute(client: pg.ClientBase, project: string, alias: string, mode: RouteMode, options: { readonly share?: number; readonly reason?: string } = {}): Promise<ModelRoute> {
  if (alias === CHAMPION) throw new PgmlKitError('ROUTE_INVALID', 'the challenger of a route is an alias other than champion (champion serves the rest)', { hint: `pgml-kit models alias ${shellArg(project)} challenger <version>` })
  const share = mode === 'shadow' ? 1 : options.share
  if (share === undefined || !(share > 0 && share <= 1)) {
    throw new PgmlKitError('ROUTE_INVALID', `a canary serves a share of traffic above 0 and at most 1, got ${String(options.share)}`, { hint: '--canary 0.1 sends 10% of entity keys to the challenger' })
  }
  await requireServing(client)
  return inRegistryTransaction(client, project, `route the traffic of "${project}"`, async () => {
    await registerMissingInTransaction(client, project)
    const { rows: aliased } = await client.query<{ version: number }>(READ_ALIAS, [project, alias])
    if (!aliased[0]) throw new PgmlKitError('ALIAS_UNKNOWN', `project "${project}" has no alias "${alias}"`, { hint: `pgml-kit models alias ${shellArg(project)} ${alias} <version> first` })
    await client.query(SET_ALIAS_EVENT, ['', options.reason ?? '', ''])
    const { rows } = await client.query<{ alias: string; mode: RouteMode; share: number; set_at: Date; set_by: string }>(SET_ROUTE, [project, alias, mode, share])
    await client.query(SET_ALIAS_EVENT, ['', '', ''])
    const r = rows[0]!
    return { project, alias: r.alias, version: aliased[0].version, mode: r.mode, share: Number(r.share), setAt: new Date(r.set_at).toISOString(), setBy: r.set_by }
  })
}

/** Removes the project's route (all traffic to champion again), with a `route_removed` event. Returns the route removed, or null when there was none. */
export async function removeRoute(client: pg.ClientBase, project: string, options: { readonly reason?: string } = {}): Promise<{ readonly alias: string; readonly mode: RouteMode; readonly share: number } | null> {
  await requireServing(client)
  return inRegistryTransaction(client, project, `route the traffic of "${project}"`, async () => {
    await client.query(SET_ALIAS_EVENT, ['', options.reason ?? '', ''])
    const { rows } = await client.query<{ alias: string; mode: RouteMode; share: number }>(REMOVE_ROUTE, [project])
    await client.query(SET_ALIAS_EVENT, ['', '', ''])
    return rows[0] ? { alias: rows[0].alias, mode: rows[0].mode, share: Number(rows[0].share) } : null
  })
}

/** The project's route, or null (also when the runtime has no routes). */
export async function readRoute(client: pg.ClientBase, project: string): Promise<ModelRoute | null> {
  if (!(await servingInstalled(client))) return null
  const { rows } = await client.query<{ alias: string; mode: RouteMode; share: number; set_at: Date; set_by: string; version: number }>(READ_ROUTE, [project])
    .catch((error: unknown) => { throw registryNotPermitted(error, `read the route of "${project}"`) })
  const r = rows[0]
  return r ? { project, alias: r.alias, version: r.version, mode: r.mode, share: Number(r.share), setAt: new Date(r.set_at).toISOString(), setBy: r.set_by } : null
}

export interface ArmReport {
  /** champion, canary (the challenger serving), shadow (the challenger, not returned), pinned (a version the caller named). */
  readonly arm: 'champion' | 'canary' | 'shadow' | 'pinned'
  readonly version: number | null
  readonly modelId: number | null
  readonly requests: number
  readonly errors: number
  readonly meanPrediction: number | null
  /** On the requests whose outcome `serving.labels` holds: their count, and the task's scores (accuracy for classification; RMSE and MAE for regression). */
  readonly labelled: number
  readonly accuracy: number | null
  readonly rmse: number | null
  readonly mae: number | null
}

export interface ModelComparison {
  readonly project: string
  readonly task: 'regression' | 'classification'
  readonly since: string
  readonly route: ModelRoute | null
  readonly arms: readonly ArmReport[]
  /** The shadow's requests paired with the champion's: how many, the share that agree (same class; within `tolerance` for regression), mean absolute difference, correlation. */
  readonly shadow: { readonly pairs: number; readonly agreement: number | null; readonly meanAbsoluteDifference: number | null; readonly correlation: number | null; readonly tolerance: number } | null
  readonly notes: readonly string[]
}

/**
 * `pgml-kit models compare`: the arms of the project's logged traffic since `since` — requests,
 * errors and mean prediction per arm and version; the shadow's agreement with the champion on the
 * same requests; and, with `serving.labels`, each arm's score on the requests whose outcome is known.
 */
export async function compareModels(client: pg.ClientBase, config: ResolvedConfig, project: string, options: { readonly since?: Date; readonly tolerance?: number } = {}): Promise<ModelComparison> {
  const model = config.models.find((m) => m.project === project)
  if (!model) throw new PgmlKitError('MODEL_UNKNOWN', `no model "${project}" in the config`, { hint: `models: ${config.models.map((m) => m.project).join(', ') || 'none'}` })
  await requireServing(client)
  const since = options.since ?? new Date(Date.now() - 7 * 86_400_000)
  // Classes are whole numbers: two predictions agree when they are the same class.
  const tolerance = model.task === 'classification' ? 0 : options.tolerance ?? 0
  const notes: string[] = []
  try {
    const route = await readRoute(client, project)
    const { rows: logging } = await client.query<{ sample: number }>(READ_LOG_SETTINGS, [project])
    if (!logging[0]) notes.push(`the prediction log of "${project}" is off: declare models.${project}.serving.log, then pgml-kit generate && pgml-kit migrate`)
    const { rows } = await client.query<{ arm: ArmReport['arm']; version: number | null; model_id: string | null; requests: string; errors: string; mean: number | null }>(COMPARE_ARMS, [project, since])
    const labelled = model.serving?.labels ? await scoreLabelled(client, model, since) : new Map<string, { labelled: number; accuracy: number | null; rmse: number | null; mae: number | null }>()
    if (!model.serving?.labels) notes.push(`no outcomes to score the arms on: declare models.${project}.serving.labels (relation, key, label)`)
    const arms = rows.map((r): ArmReport => {
      const l = labelled.get(`${r.arm}:${r.version ?? ''}`)
      return {
        arm: r.arm, version: r.version, modelId: r.model_id === null ? null : Number(r.model_id), requests: Number(r.requests), errors: Number(r.errors), meanPrediction: r.mean,
        labelled: l?.labelled ?? 0, accuracy: model.task === 'classification' ? l?.accuracy ?? null : null, rmse: model.task === 'regression' ? l?.rmse ?? null : null, mae: model.task === 'regression' ? l?.mae ?? null : null,
      }
    })
    let shadow: ModelComparison['shadow'] = null
    if (arms.some((a) => a.arm === 'shadow')) {
      const { rows: pairs } = await client.query<{ pairs: string; agreement: number | null; mean_abs_difference: number | null; correlation: number | null }>(COMPARE_SHADOW, [project, since, tolerance])
      const p = pairs[0]!
      shadow = { pairs: Number(p.pairs), agreement: p.agreement, meanAbsoluteDifference: p.mean_abs_difference, correlation: p.correlation, tolerance }
    }
    if (arms.length === 0) notes.push(`nothing logged for "${project}" since ${since.toISOString()}`)
    return { project, task: model.task, since: since.toISOString(), route, arms, shadow, notes }
  } catch (error) {
    throw registryNotPermitted(error, `read the prediction log of "${project}"`)
  }
}

async function scoreLabelled(client: pg.ClientBase, model: ModelNode, since: Date) {
  const labels = model.serving!.labels!
  await requireTrustedRelation(client, labels.relation, [labels.key, labels.label], `models.${model.project}.serving.labels`)
  const { rows } = await client.query<{ arm: string; version: number | null; labelled: string; accuracy: number | null; rmse: number | null; mae: number | null }>(renderCompareLabelled(labels.relation, labels.key, labels.label), [model.project, since])
    .catch((error: unknown) => {
      const e = error as { code?: string; message?: string }
      if (e.code !== '42P01' && e.code !== '42703' && e.code !== '22P02' && e.code !== '42501') throw error
      throw new PgmlKitError('LABELS_UNREADABLE', `the outcomes of "${model.project}" cannot be read from ${labels.relation}: ${e.message ?? ''}`, { cause: error, where: `models.${model.project}.serving.labels` })
    })
  return new Map(rows.map((r) => [`${r.arm}:${r.version ?? ''}`, { labelled: Number(r.labelled), accuracy: r.accuracy, rmse: r.rmse, mae: r.mae }]))
}

/**
 * Maintains the prediction log, as its owner (the role that migrates): adds the partitions of the
 * next `daysAhead` days (UTC) — and today's when it is missing — moves earlier days' rows out of the
 * default partition (a day whose lock it cannot have within a second is left for the next run:
 * `skipped`), deletes rows
 * past each project's retention — then drops each partition wholly past the longest retention, one
 * per transaction, waiting at most 200 ms for the log's lock (requests that log wait behind it
 * meanwhile); one it cannot drop now is left for the next run (`kept`).
 */
export async function maintainPredictionLog(client: pg.ClientBase, options: { readonly daysAhead?: number } = {}): Promise<{ readonly created: number; readonly moved: number; readonly deleted: number; readonly skipped: number; readonly dropped: number; readonly kept: readonly string[] }> {
  await requireServing(client)
  const notPermitted = (error: unknown) => {
    const e = error as { code?: string; message?: string }
    if (e.code !== '42501') return error
    return new PgmlKitError('REGISTRY_NOT_PERMITTED', `this role may not maintain the prediction log: ${e.message ?? 'permission denied'}`, { cause: error, hint: 'run it as the role that migrates (the owner of pgml_kit)' })
  }
  const { rows } = await client.query<{ created: number; moved: string; deleted: string; skipped: number; expired: string[] }>(MAINTAIN_PREDICTION_LOG, [options.daysAhead ?? 7]).catch((error: unknown) => { throw notPermitted(error) })
  const r = rows[0]!
  let dropped = 0
  const kept: string[] = []
  for (const name of r.expired.filter((n) => EXPIRED_PARTITION.test(n))) {
    await client.query('BEGIN')
    try {
      await client.query(DROP_PARTITION_LOCK_TIMEOUT)
      await client.query(renderDropLogPartition(name))
      await client.query('COMMIT')
      dropped++
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      if ((error as { code?: string }).code !== '55P03') throw notPermitted(error)
      kept.push(name)
    }
  }
  return { created: r.created, moved: Number(r.moved), deleted: Number(r.deleted), skipped: r.skipped, dropped, kept }
}
