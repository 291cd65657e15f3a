import type pg from 'pg'
import { shellArg } from '../shell.js'
import { PgmlKitError } from '../errors.js'
import type { ModelNode, ResolvedConfig } from '../model/resolve.js'
import {
  LIST_MONITOR_RUNS, READ_BASELINE, RECORD_MONITOR_RUN, RELATION_COLUMNS, renderDriftSample,
} from '../sql/render-registry.js'
import { listVersions, registryInstalled } from './registry.js'
import { checkFeatures } from './check.js'
import { requireTrustedRelation } from './trust.js'
import { LOGGED_PREDICTIONS, READ_LOG_SETTINGS } from '../sql/render-serving.js'
import { servingInstalled } from './serving.js'

/** The served traffic monitor compares: the deployed version's logged predictions of the last 24 hours, at most this many (the latest). */
const LOGGED_WINDOW_MS = 86_400_000
const LOGGED_SAMPLE_ROWS = 5000

/**
 * Drift monitoring of deployed models. When `pgml-kit train` trains a model it keeps a baseline: a
 * deterministic sample of the rows it trained on (1,000, read in the snapshot pgml.train read) —
 * each numeric feature's values and the model's predictions on them. `monitor` samples the
 * relation's rows now (or those newer than `monitor.window`) and compares, per feature and for the
 * predictions of the deployed version: the population stability index over the baseline's deciles,
 * and the two-sample Kolmogorov–Smirnov statistic with its p-value. Every run is recorded
 * (`pgml_kit.monitor_runs`), so drift can be followed over time.
 */

/** The baseline a training keeps (pgml_kit.model_lineage.baseline). */
export interface DriftBaseline {
  readonly rows: number
  /** Numeric feature → its sampled values (NULLs left out). */
  readonly features: Readonly<Record<string, readonly number[]>>
  /** Numeric feature → the share of the sampled rows where it is NULL (absent in baselines from before it was kept). */
  readonly nulls?: Readonly<Record<string, number>>
  /** The model's predictions on the sampled rows (null when a feature is not numeric: pgml would encode it). */
  readonly predictions: readonly number[] | null
  /** Features not compared (not numbers). */
  readonly skipped: readonly string[]
}

/** Bins with no rows get this share, so that PSI stays finite (the usual convention). */
const PSI_FLOOR = 1e-4

/** The values that can be ordered: NaN (a real or double precision column, or a prediction, may hold it) is left out. */
const ordered = (values: readonly number[]) => values.filter((v) => !Number.isNaN(v))

/** Population stability index of `current` against `baseline`, over the baseline's deciles. NaN values are left out. */
export function psi(baselineValues: readonly number[], currentValues: readonly number[], bins = 10): number {
  const baseline = ordered(baselineValues)
  const current = ordered(currentValues)
  if (baseline.length === 0 || current.length === 0) return Number.NaN
  const sorted = [...baseline].sort((a, b) => a - b)
  const distinct = [...new Set(sorted)]
  // Few distinct values (a flag, a count): one bin per value and one for anything else, so that a
  // shift between values the deciles would merge (0 and 1 of a rare flag) is seen.
  const categorical = distinct.length <= bins
  const edges = categorical ? distinct : [...new Set(Array.from({ length: bins - 1 }, (_, i) => sorted[Math.floor(((i + 1) * sorted.length) / bins)]!))]
  const share = (values: readonly number[]) => {
    const counts = new Array<number>(edges.length + 1).fill(0)
    for (const v of values) {
      if (categorical) {
        const at = edges.indexOf(v)
        counts[at < 0 ? edges.length : at]!++
        continue
      }
      let b = 0
      while (b < edges.length && v >= edges[b]!) b++
      counts[b]!++
    }
    return counts.map((c) => Math.max(c / values.length, PSI_FLOOR))
  }
  const expected = share(baseline)
  const actual = share(current)
  return expected.reduce((sum, e, i) => sum + (actual[i]! - e) * Math.log(actual[i]! / e), 0)
}

/** The two-sample Kolmogorov–Smirnov statistic D and its asymptotic p-value. NaN values are left out. */
export function ks(aValues: readonly number[], bValues: readonly number[]): { readonly d: number; readonly p: number } {
  const a = ordered(aValues)
  const b = ordered(bValues)
  if (a.length === 0 || b.length === 0) return { d: Number.NaN, p: Number.NaN }
  const x = [...a].sort((p, q) => p - q)
  const y = [...b].sort((p, q) => p - q)
  let i = 0
  let j = 0
  let d = 0
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i]!, y[j]!)
    while (i < x.length && x[i]! <= v) i++
    while (j < y.length && y[j]! <= v) j++
    d = Math.max(d, Math.abs(i / x.length - j / y.length))
  }
  const ne = (x.length * y.length) / (x.length + y.length)
  const lambda = (Math.sqrt(ne) + 0.12 + 0.11 / Math.sqrt(ne)) * d
  return { d, p: kolmogorovQ(lambda) }
}

/**
 * Whether two shares of NULLs (of n1 and n2 rows) differ at level `alpha`: the two-proportion z
 * test, two-sided, with the pooled share.
 */
export function proportionsDiffer(p1: number, n1: number, p2: number, n2: number, alpha: number): boolean {
  if (n1 === 0 || n2 === 0 || p1 === p2) return false
  const pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
  if (se === 0) return true
  const z = Math.abs(p1 - p2) / se
  return 2 * normalTail(z) < alpha
}

/** P(Z > z) for a standard normal Z (Abramowitz and Stegun 7.1.26 via erfc, error below 1.5e-7). */
export function normalTail(z: number): number {
  const x = z / Math.SQRT2
  const t = 1 / (1 + 0.3275911 * x)
  const erfc = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-x * x)
  return erfc / 2
}

/** Q_KS(λ) = 2 Σ (-1)^(k-1) exp(-2k²λ²): the probability of a D at least this large when both samples come from one distribution. */
function kolmogorovQ(lambda: number): number {
  if (lambda < 1e-3) return 1
  let sum = 0
  for (let k = 1; k <= 100; k++) {
    const term = 2 * (k % 2 === 1 ? 1 : -1) * Math.exp(-2 * k * k * lambda * lambda)
    sum += term
    if (Math.abs(term) < 1e-12) break
  }
  return Math.min(1, Math.max(0, sum))
}

/**
 * Inside the training's transaction (its snapshot), after pgml.train: the baseline of `modelId`
 * on `model.relationName`, for its lineage row. Returns null when the relation has no numeric feature.
 */
export async function captureBaseline(client: pg.ClientBase, model: ModelNode, modelId: number): Promise<DriftBaseline | null> {
  const { rows: columns } = await client.query<{ name: string; is_number: boolean }>(RELATION_COLUMNS, [model.relationName])
  const features = columns.filter((c) => c.name !== model.target)
  const numeric = features.filter((c) => c.is_number).map((c) => c.name)
  if (numeric.length === 0) return null
  const predict = numeric.length === features.length
  const { rows } = await client.query<Record<string, number | null>>(renderDriftSample(model.relationName, numeric, { predict }), predict ? [modelId] : [])
  const baseline: DriftBaseline = {
    rows: rows.length,
    features: Object.fromEntries(numeric.map((name, i) => [name, rows.map((r) => r[`c${i}`]).filter((v): v is number => v !== null).map(Number)])),
    predictions: predict ? rows.map((r) => r.p).filter((v): v is number => v !== null).map(Number) : null,
    nulls: Object.fromEntries(numeric.map((name, i) => [name, rows.length === 0 ? 0 : rows.filter((r) => r[`c${i}`] === null).length / rows.length])),
    skipped: features.filter((c) => !c.is_number).map((c) => c.name),
  }
  return baseline
}

export interface DriftMetric {
  /** A feature's name, or `prediction`. */
  readonly name: string
  readonly psi: number
  readonly ksD: number
  readonly ksP: number
  /** Share of rows where the feature is NULL, at training and now (null for predictions, or an old baseline). */
  readonly nullsBefore: number | null
  readonly nullsNow: number | null
  /** Why it alarms: `psi`, `ks`, `nulls` (the NULL share changed: a two-proportion test), `no values` (all NULL now). */
  readonly reasons: readonly string[]
  readonly alarm: boolean
}

/** Below this many rows on either side PSI is too noisy to alarm on (its expected value under no drift grows as 1/n); KS still can. */
export const PSI_MIN_ROWS = 200

export interface MonitorReport {
  readonly project: string
  /** The deployed version monitored, and its model id. */
  readonly version: number | null
  readonly modelId: number
  /** Rows sampled now (at most 1,000), and in the baseline. */
  readonly currentRows: number
  readonly baselineRows: number
  readonly metrics: readonly DriftMetric[]
  /** For a model on a training set: each feature view's online rows that differ from what its offline table says they should be. */
  readonly skew: readonly { readonly view: string; readonly differences: number }[]
  /** Names of the features (and `prediction`, and `skew:<view>`) that raised an alarm. */
  readonly alarms: readonly string[]
  /** The KS level each test used: `alpha` split over the tests (Bonferroni). */
  readonly alphaPerTest: number
  readonly psiThreshold: number
  readonly notes: readonly string[]
  /** When the run was recorded (null: this role may not record it). */
  readonly recordedAt: string | null
  /** Set when this project could not be checked (no baseline, a relation gone, a refused read): the rest is empty. */
  readonly error?: string
  readonly hint?: string
}

const EMPTY_REPORT: Omit<MonitorReport, 'project'> = {
  version: null, modelId: 0, currentRows: 0, baselineRows: 0, metrics: [], skew: [], alarms: [], alphaPerTest: 0, psiThreshold: 0, notes: [], recordedAt: null,
}

/**
 * `pgml-kit monitor`: for each project (default: every model of the config with a deployed
 * version), compares the relation's rows now with the deployed version's training baseline.
 * `client` must not be in a transaction.
 */
export async function monitorModels(client: pg.ClientBase, config: ResolvedConfig, projects: readonly string[] = []): Promise<MonitorReport[]> {
  if (!(await registryInstalled(client))) {
    throw new PgmlKitError('REGISTRY_MISSING', 'this database has no model registry, so no training baseline to compare with', { hint: 'pgml-kit generate && pgml-kit migrate, then train the model with pgml-kit train' })
  }
  const unknown = projects.filter((p) => !config.models.some((m) => m.project === p))
  if (unknown.length > 0) throw new PgmlKitError('MODEL_UNKNOWN', `no model ${unknown.map((p) => `"${p}"`).join(', ')} in the config`, { hint: `models: ${config.models.map((m) => m.project).join(', ') || 'none'}` })
  const chosen = config.models.filter((m) => projects.length === 0 || projects.includes(m.project))
  const reports: MonitorReport[] = []
  for (const model of chosen) {
    try {
      const deployed = (await listVersions(client, model.project)).find((v) => v.deployed)
      if (!deployed) {
        if (projects.length > 0) throw new PgmlKitError('MODEL_NOT_DEPLOYED', `"${model.project}" has no deployed model to monitor`, { hint: `pgml-kit deploy ${shellArg(model.project)} --strategy best_score` })
        continue
      }
      reports.push(await monitorOne(client, config, model, deployed.modelId, deployed.version))
    } catch (error) {
      // One project that cannot be checked (no baseline, a relation gone) does not stop the others.
      if (!(error instanceof PgmlKitError) && typeof (error as { code?: unknown }).code !== 'string') throw error
      reports.push({ ...EMPTY_REPORT, project: model.project, error: (error as Error).message, ...(error instanceof PgmlKitError && error.hint ? { hint: error.hint } : {}) })
    }
  }
  return reports
}

async function monitorOne(client: pg.ClientBase, config: ResolvedConfig, model: ModelNode, modelId: number, version: number): Promise<MonitorReport> {
  const { rows } = await client.query<{ relation: string; baseline: DriftBaseline | null }>(READ_BASELINE, [modelId])
  const baseline = rows[0]?.baseline ?? null
  if (!baseline) {
    throw new PgmlKitError('MONITOR_NO_BASELINE', `version ${version} of "${model.project}" (model ${modelId}) has no training baseline to compare with`, {
      where: `models.${model.project}`,
      hint: 'only models trained by pgml-kit train (on a runtime with the registry) keep one: train it again with pgml-kit train',
    })
  }
  const numeric = Object.keys(baseline.features)
  const predict = baseline.predictions !== null
  const relation = model.monitor.relation ?? model.relationName
  await requireTrustedRelation(client, relation, numeric, model.monitor.relation ? `models.${model.project}.monitor.relation` : `models.${model.project}.relation`)
  const { rows: current } = await client.query<Record<string, number | null>>(renderDriftSample(relation, numeric, { predict }), predict ? [modelId] : [])
  const notes: string[] = []
  if (baseline.skipped.length > 0) notes.push(`not compared (not numbers): ${baseline.skipped.join(', ')}`)
  // Prediction drift on the traffic served: the deployed version's logged predictions of the last day.
  let logged: number[] = []
  if (predict && await servingInstalled(client)) {
    const { rows: on } = await client.query(READ_LOG_SETTINGS, [model.project]).catch((error: unknown) => {
      if ((error as { code?: unknown }).code !== '42501') throw error
      notes.push('the prediction log is not compared: this role may not read pgml_kit.prediction_log_settings (roles.trainer)')
      return { rows: [] }
    })
    if (on.length > 0) {
      const since = new Date(Date.now() - LOGGED_WINDOW_MS)
      logged = (await client.query<{ p: number }>(LOGGED_PREDICTIONS, [model.project, modelId, since, LOGGED_SAMPLE_ROWS]).catch((error: unknown) => {
        if ((error as { code?: unknown }).code !== '42501') throw error
        notes.push('the prediction log is not compared: this role may not read pgml_kit.prediction_log (roles.trainer)')
        return { rows: [] }
      })).rows.map((r) => Number(r.p))
      if (logged.length === 0) notes.push(`nothing logged for version ${version} in the last 24 hours: no prediction drift on served traffic`)
    }
  }
  const tests = numeric.length + (predict ? 1 : 0) + (logged.length > 0 ? 1 : 0)
  const alphaPerTest = model.monitor.alpha / tests
  const values = (key: string) => current.map((r) => r[key]).filter((v): v is number => v !== null).map(Number)
  const metric = (name: string, base: readonly number[], now: readonly number[], nulls: { before: number; now: number } | null): DriftMetric => {
    const p = psi(base, now)
    const k = ks(base, now)
    const reasons: string[] = []
    if (now.length === 0 && base.length > 0) reasons.push('no values')
    if (Number.isFinite(p) && p >= model.monitor.psi && Math.min(base.length, now.length) >= PSI_MIN_ROWS) reasons.push('psi')
    if (Number.isFinite(k.p) && k.p < alphaPerTest) reasons.push('ks')
    if (nulls && proportionsDiffer(nulls.before, baseline.rows, nulls.now, current.length, alphaPerTest)) reasons.push('nulls')
    return { name, psi: p, ksD: k.d, ksP: k.p, nullsBefore: nulls?.before ?? null, nullsNow: nulls?.now ?? null, reasons, alarm: reasons.length > 0 }
  }
  const metrics = current.length === 0 && logged.length === 0 ? [] : [
    ...numeric.map((name, i) => {
      const before = baseline.nulls?.[name]
      const now = current.filter((r) => r[`c${i}`] === null).length / current.length
      return metric(name, baseline.features[name]!, values(`c${i}`), before === undefined ? null : { before, now })
    }),
    ...(predict && current.length > 0 ? [metric('prediction', baseline.predictions!, values('p'), null)] : []),
    ...(logged.length > 0 ? [metric('prediction (served)', baseline.predictions!, logged, null)] : []),
  ]
  if (current.length === 0) notes.push(`${relation} has no rows: nothing to compare`)
  if (Math.min(current.length, baseline.rows) > 0 && Math.min(current.length, baseline.rows) < PSI_MIN_ROWS) {
    notes.push(`only ${Math.min(current.length, baseline.rows)} rows on one side: PSI is too noisy below ${PSI_MIN_ROWS} and raises no alarm; KS still does`)
  }
  // Online/offline skew of the feature views the model is served from (the feature store's own check).
  const views = model.trainingSet ? [...new Set(model.trainingSet.features.map((f) => f.view))] : []
  const skew = views.length === 0 ? [] : (await checkFeatures(client, config.state, views, { limit: 5 })).map((c) => ({ view: c.view, differences: c.skew.total }))
  const alarms = [...metrics.filter((m) => m.alarm).map((m) => m.name), ...skew.filter((v) => v.differences > 0).map((v) => `skew:${v.view}`)]
  let recordedAt: string | null = null
  try {
    const { rows: recorded } = await client.query<{ at: Date }>(RECORD_MONITOR_RUN, [model.project, version, modelId, current.length, alarms, JSON.stringify({ metrics, skew, alphaPerTest, psiThreshold: model.monitor.psi, baselineRows: baseline.rows })])
    recordedAt = new Date(recorded[0]!.at).toISOString()
  } catch (error) {
    if ((error as { code?: unknown }).code !== '42501') throw error
    notes.push('this run is not recorded in pgml_kit.monitor_runs: this role may not write it (roles.trainer)')
  }
  return { project: model.project, version, modelId, currentRows: current.length, baselineRows: baseline.rows, metrics, skew, alarms, alphaPerTest, psiThreshold: model.monitor.psi, notes, recordedAt }
}

export interface MonitorRun {
  readonly id: string
  readonly version: number | null
  readonly modelId: number
  readonly at: string
  readonly runBy: string
  readonly currentRows: number
  readonly alarms: readonly string[]
  readonly metrics: readonly DriftMetric[]
}

/** The project's recorded monitor runs, oldest first. */
export async function monitorHistory(client: pg.ClientBase, project: string): Promise<MonitorRun[]> {
  const { rows } = await client.query<{ id: string; version: number | null; model_id: string; at: Date; run_by: string; current_rows: number; alarms: string[]; metrics: { metrics: DriftMetric[] } }>(LIST_MONITOR_RUNS, [project]).catch((error: unknown) => {
    if ((error as { code?: unknown }).code !== '42501') throw error
    throw new PgmlKitError('REGISTRY_NOT_PERMITTED', `this role may not read the monitor runs of "${project}": ${(error as Error).message}`, { cause: error, where: 'roles.trainer', hint: 'add the role to roles.trainer, then pgml-kit generate && pgml-kit migrate' })
  })
  return rows.map((r) => ({ id: r.id, version: r.version, modelId: Number(r.model_id), at: new Date(r.at).toISOString(), runBy: r.run_by, currentRows: r.current_rows, alarms: r.alarms, metrics: r.metrics.metrics }))
}
