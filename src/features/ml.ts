import { createHash } from 'node:crypto'
import type pg from 'pg'
import { PgmlKitError } from '../errors.js'
import type { DesiredState, FeatureViewNode, TrainingSetNode } from '../model/ir.js'
import type { ModelNode, ResolvedConfig } from '../model/resolve.js'
import { isLowerBetter } from '../model/metrics.js'
import { highWaterColumn, LINEAGE_GATE_COLUMN_NAMES, LINEAGE_TABLE } from '../sql/render-features.js'
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js'

/**
 * Feature views, training sets and models at run time: materialise, copy a training set into a
 * table, train with pgml.train (with a deployment gate and a lineage record), list and deploy.
 */

export interface MaterializeResult {
  readonly view: string
  readonly inserted: number
  readonly updated: number
  readonly highWaterMark: string | null
}

function viewOf(state: DesiredState, name: string): FeatureViewNode {
  const view = state.featureViews.find((v) => v.name === name)
  if (!view) throw new PgmlKitError('FEATURE_VIEW_UNKNOWN', `no feature view "${name}" in the config`, { hint: `feature views: ${state.featureViews.map((v) => v.name).join(', ') || 'none'}` })
  return view
}

function setOf(state: DesiredState, name: string): TrainingSetNode {
  const set = state.trainingSets.find((s) => s.name === name)
  if (!set) throw new PgmlKitError('TRAINING_SET_UNKNOWN', `no training set "${name}" in the config`, { hint: `training sets: ${state.trainingSets.map((s) => s.name).join(', ') || 'none'}` })
  return set
}

/** Runs each view's materialize function (all views when `names` is empty), each in its own transaction. */
export async function materialize(client: pg.ClientBase, state: DesiredState, names: readonly string[] = []): Promise<MaterializeResult[]> {
  const views = names.length === 0 ? state.featureViews : names.map((n) => viewOf(state, n))
  const out: MaterializeResult[] = []
  for (const view of views) {
    const { rows } = await client.query<{ inserted: string; updated: string; high_water_mark: string | null }>(`SELECT * FROM ${quoteQualified(view.schema, view.materializeFunction)}()`)
    out.push({ view: view.name, inserted: Number(rows[0]?.inserted ?? 0), updated: Number(rows[0]?.updated ?? 0), highWaterMark: rows[0]?.high_water_mark ?? null })
  }
  return out
}

/** Copies a training set (as it is now) into a new table; returns its row count. */
export async function materializeTrainingSet(client: pg.ClientBase, state: DesiredState, name: string, to: string): Promise<number> {
  const set = setOf(state, name)
  const parts = to.split('.')
  if (parts.length > 2 || parts.some((p) => p === '')) throw new PgmlKitError('TABLE_NAME_INVALID', `--to ${to}: give a table name or schema.table`)
  const target = parts.length === 2 ? quoteQualified(parts[0]!, parts[1]!) : quoteIdent(parts[0]!)
  const result = await client.query(`CREATE TABLE ${target} AS SELECT * FROM ${quoteQualified(set.schema, set.name)}`)
  return result.rowCount ?? 0
}

function sha256(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex')
}

/** What pgml.train is called with: exactly the config's arguments, nothing it leaves out. */
export function renderTrainCall(model: ModelNode, automaticDeploy: boolean): string {
  const args: string[] = [
    `project_name => ${quoteLiteral(model.project)}`,
    `task => ${quoteLiteral(model.task)}`,
    `relation_name => ${quoteLiteral(model.relationName)}`,
    `y_column_name => ${quoteLiteral(model.target)}`,
  ]
  if (model.algorithm !== null) args.push(`algorithm => ${quoteLiteral(model.algorithm)}`)
  if (model.hyperparams !== null) args.push(`hyperparams => ${quoteLiteral(JSON.stringify(model.hyperparams))}::jsonb`)
  if (model.search !== null) args.push(`search => ${quoteLiteral(model.search)}`)
  if (model.searchParams !== null) args.push(`search_params => ${quoteLiteral(JSON.stringify(model.searchParams))}::jsonb`)
  if (model.searchArgs !== null) args.push(`search_args => ${quoteLiteral(JSON.stringify(model.searchArgs))}::jsonb`)
  if (model.testSize !== null) args.push(`test_size => ${model.testSize}`)
  if (model.testSampling !== null) args.push(`test_sampling => ${quoteLiteral(model.testSampling)}`)
  if (model.preprocess !== null) args.push(`preprocess => ${quoteLiteral(JSON.stringify(model.preprocess))}::jsonb`)
  args.push(`automatic_deploy => ${automaticDeploy ? 'true' : 'false'}`)
  return `SELECT * FROM pgml.train(\n  ${args.join(',\n  ')}\n);`
}

function modelOf(config: ResolvedConfig, project: string): ModelNode {
  const model = config.models.find((m) => m.project === project)
  if (!model) throw new PgmlKitError('MODEL_UNKNOWN', `no model "${project}" in the config`, { hint: `models: ${config.models.map((m) => m.project).join(', ') || 'none'}` })
  return model
}

/** The SQL `pgml-kit train` runs for a project (what `--dry-run` prints). */
export function trainSql(config: ResolvedConfig, project: string): string {
  const model = modelOf(config, project)
  return renderTrainCall(model, model.gate === null)
}

/**
 * The high-water mark of a feature view as a training reads it: one row, one column
 * `high_water_mark` (text, NULL when nothing was materialised). `train` runs it in the snapshot
 * pgml.train reads, and records the result in the model's lineage.
 */
export function featureViewMarkSql(view: FeatureViewNode): string {
  return `SELECT pg_catalog.max(${quoteIdent(highWaterColumn(view))})::text AS high_water_mark FROM ${quoteQualified(view.schema, view.offlineTable)}`
}

export interface ModelRow {
  readonly id: number
  readonly algorithm: string
  readonly status: string
  readonly metrics: Record<string, number>
  readonly createdAt: string
  readonly deployed: boolean
  readonly lineage: LineageRow | null
}

export interface FeatureViewMark {
  readonly name: string
  readonly definitionSha256: string
  readonly highWaterMark: string | null
}

export interface LineageRow {
  readonly relation: string
  readonly trainingSet: string | null
  readonly definitionSha256: string | null
  readonly featureViews: readonly FeatureViewMark[]
  readonly trainedAt: string
  /** The gate's verdict when `train` judged this model (null: no gate, not the model judged, or recorded before verdicts were). */
  readonly gateVerdict: GateRecord | null
  /** Each `deploy --model --override-gate` of this model past its failing gate. */
  readonly gateOverrides: readonly GateOverrideRecord[]
}

/** A gate's verdict on one model, as the lineage records it. */
export interface GateRecord {
  readonly model: number
  readonly metric: string
  /** The model's value of the metric (null when it has none, or it is not a number). */
  readonly value: number | null
  readonly min: number | null
  readonly max: number | null
  readonly margin: number | null
  /** The model deployed when the verdict was given, and its value of the metric. */
  readonly deployedModel: number | null
  readonly deployedValue: number | null
  readonly pass: boolean
  readonly reason: string
}

export interface GateOverrideRecord {
  readonly at: string
  readonly role: string
  readonly reason: string
  readonly verdict: GateRecord
}

export interface TrainResult {
  readonly sql: string
  /** Models this call created (never another session's: see `train`). */
  readonly models: readonly ModelRow[]
  /** The model deployed after the call (by pgml's rule without a gate, by the gate with one), or null. */
  readonly deployed: number | null
  /** Why the gate deployed or held back the new model (null without a gate). */
  readonly gate: string | null
  /** The gate's verdict (null without a gate). */
  readonly gateVerdict: GateRecord | null
  /** What the user should know and the result does not say: a verdict that could not be recorded, a training run again. */
  readonly notes: readonly string[]
}

interface LineageTable {
  /** Quoted, qualified. */
  readonly name: string
  /** For messages. */
  readonly display: string
  /** Whether it has the gate columns (renderUpgradeFeatureSchema adds them to a table created before them). */
  readonly gateColumns: boolean
}

async function lineageTableOf(client: pg.ClientBase, model: ModelNode): Promise<LineageTable | null> {
  const schema = model.trainingSet?.schema
  if (!schema) return null
  const name = quoteQualified(schema, LINEAGE_TABLE)
  const { rows } = await client.query<{ ok: boolean; gate_columns: number }>(
    `SELECT pg_catalog.to_regclass($1) IS NOT NULL AS ok,
            (SELECT pg_catalog.count(*)::int FROM pg_catalog.pg_attribute a WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attname = ANY ($2::text[]) AND NOT a.attisdropped) AS gate_columns`,
    [name, LINEAGE_GATE_COLUMN_NAMES])
  if (!rows[0]?.ok) return null
  return { name, display: `${schema}.${LINEAGE_TABLE}`, gateColumns: rows[0].gate_columns === LINEAGE_GATE_COLUMN_NAMES.length }
}

const NOT_UPGRADED = 'has no gate columns yet (it was created by an earlier pgml-kit; the migration that upgrades the feature schema adds them)'

export async function listModels(client: pg.ClientBase, config: ResolvedConfig, project: string): Promise<ModelRow[]> {
  const model = config.models.find((m) => m.project === project)
  const lineage = model ? await lineageTableOf(client, model) : null
  const { rows } = await client.query<{ id: string; algorithm: string; status: string; metrics: Record<string, number> | null; created_at: Date; deployed: boolean; lineage: Record<string, unknown> | null }>(
    `SELECT m.id, m.algorithm::text AS algorithm, m.status, m.metrics, m.created_at,
            m.id = (SELECT d.model_id FROM pgml.deployments d WHERE d.project_id = p.id ORDER BY d.id DESC LIMIT 1) AS deployed,
            ${lineage ? `(SELECT pg_catalog.to_jsonb(l) FROM ${lineage.name} l WHERE l.model_id = m.id)` : 'NULL::jsonb'} AS lineage
     FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE p.name = $1 ORDER BY m.id`, [project])
  return rows.map((r) => ({
    id: Number(r.id), algorithm: r.algorithm, status: r.status, metrics: r.metrics ?? {}, createdAt: new Date(r.created_at).toISOString(), deployed: Boolean(r.deployed),
    lineage: r.lineage ? {
      relation: String(r.lineage.relation), trainingSet: (r.lineage.training_set as string | null) ?? null, definitionSha256: (r.lineage.definition_sha256 as string | null) ?? null,
      featureViews: (r.lineage.feature_views as LineageRow['featureViews']) ?? [], trainedAt: String(r.lineage.trained_at),
      gateVerdict: (r.lineage.gate_verdict as GateRecord | null | undefined) ?? null, gateOverrides: (r.lineage.gate_overrides as GateOverrideRecord[] | null | undefined) ?? [],
    } : null,
  }))
}

export type Gate = NonNullable<ModelNode['gate']>

export interface GateVerdict {
  readonly pass: boolean
  readonly reason: string
}

function shown(value: number): string {
  return value.toFixed(4)
}

/** A metric that is there but is no number: NaN (pgml_compat, PostgresML), or whatever the JSON held. */
function notANumber(value: unknown): string {
  return typeof value === 'number' ? String(value) : value === null ? 'null' : typeof value === 'string' ? JSON.stringify(value) : typeof value
}

/**
 * Whether `candidate` (a model's metrics) passes the gate: its metric is at least `min`
 * (higher-is-better metrics) or at most `max` (lower-is-better: see `isLowerBetter`), and beats
 * `deployed`'s (the deployed model's metrics; null when none is deployed) by `margin`. A bound on
 * the wrong side (which the config refuses) fails, so a hand-built gate never passes by mistake.
 *
 * @example
 * passesGate({ metric: 'f1', min: 0.6, max: null, margin: 0.01 }, { f1: 0.72 }, { f1: 0.7 })
 * // → { pass: true, reason: "f1 0.7200 is at least 0.6 and beats the deployed model's 0.7000 by at least 0.01" }
 */
export function passesGate(gate: Gate, candidate: Readonly<Record<string, unknown>>, deployed: Readonly<Record<string, unknown>> | null): GateVerdict {
  const metric = gate.metric
  if (!Object.hasOwn(candidate, metric)) return { pass: false, reason: `the new model has no metric "${metric}" (it has ${Object.keys(candidate).join(', ') || 'none'})` }
  const value = candidate[metric]
  if (typeof value !== 'number' || !Number.isFinite(value)) return { pass: false, reason: `the new model's ${metric} is ${notANumber(value)}, not a number the gate can compare` }
  const lower = isLowerBetter(metric)
  const wrongSide = lower ? gate.min : gate.max
  if (wrongSide !== null) return { pass: false, reason: `the gate bounds ${metric} with ${lower ? 'min' : 'max'}, but ${metric} is ${lower ? 'lower' : 'higher'}-is-better: give ${lower ? 'max' : 'min'}` }
  const bound = lower ? gate.max : gate.min
  const head = `${metric} ${shown(value)}`
  if (bound !== null && (lower ? value > bound : value < bound)) return { pass: false, reason: `${head} is ${lower ? 'above the maximum' : 'below the minimum'} ${bound}` }
  const parts: string[] = bound !== null ? [`is ${lower ? 'at most' : 'at least'} ${bound}`] : []
  let note = ''
  if (deployed === null) {
    note = ' (no model deployed yet)'
  } else if (!Object.hasOwn(deployed, metric)) {
    note = ` (the deployed model has no metric "${metric}" to compare with)`
  } else {
    const current = deployed[metric]
    if (typeof current !== 'number' || !Number.isFinite(current)) {
      note = ` (the deployed model's ${metric} is ${notANumber(current)}: nothing to compare with)`
    } else if (gate.margin !== null) {
      const needed = lower ? current - gate.margin : current + gate.margin
      if (lower ? value > needed : value < needed) {
        return { pass: false, reason: `${head} does not beat the deployed model's ${shown(current)} by ${gate.margin} (${lower ? 'at most' : 'at least'} ${shown(needed)} needed)` }
      }
      parts.push(`beats the deployed model's ${shown(current)} by at least ${gate.margin}`)
    }
  }
  return { pass: true, reason: `${[head, parts.join(' and ')].filter((p) => p !== '').join(' ')}${note}` }
}

interface DeployedModel {
  readonly id: number
  readonly metrics: Readonly<Record<string, unknown>>
}

/** The project's deployed model (pgml's rule: its latest deployment), or null. */
async function deployedModelOf(client: pg.ClientBase, project: string): Promise<DeployedModel | null> {
  const { rows } = await client.query<{ id: string; metrics: Record<string, unknown> | null }>(
    `SELECT m.id, m.metrics FROM pgml.deployments d JOIN pgml.projects p ON p.id = d.project_id JOIN pgml.models m ON m.id = d.model_id
     WHERE p.name = $1 ORDER BY d.id DESC LIMIT 1`, [project])
  return rows[0] ? { id: Number(rows[0].id), metrics: rows[0].metrics ?? {} } : null
}

function gateRecord(gate: Gate, model: { id: number; metrics: Readonly<Record<string, unknown>> }, deployed: DeployedModel | null, verdict: GateVerdict): GateRecord {
  const finite = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null)
  return {
    model: model.id, metric: gate.metric, value: finite(model.metrics[gate.metric]), min: gate.min, max: gate.max, margin: gate.margin,
    deployedModel: deployed?.id ?? null, deployedValue: deployed ? finite(deployed.metrics[gate.metric]) : null, pass: verdict.pass, reason: verdict.reason,
  }
}

/**
 * One gate decision, one train or one gated deploy of a project at a time (per database): the
 * gate compares with the deployed model, and two trainings judged against the same deployed model
 * could both deploy. A session-level advisory lock, released when `fn` ends (or the session does).
 */
async function withProjectLock<T>(client: pg.ClientBase, project: string, onWait: (() => void) | undefined, fn: () => Promise<T>): Promise<T> {
  const key = `pgml-kit train ${JSON.stringify(project)}`
  const { rows } = await client.query<{ ok: boolean }>('SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended($1, 0)) AS ok', [key])
  if (!rows[0]?.ok) {
    onWait?.()
    await client.query('SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtextextended($1, 0))', [key])
  }
  try {
    return await fn()
  } finally {
    await client.query('SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtextextended($1, 0))', [key]).catch(() => undefined)
  }
}

/** The ids of the project's models this session can see (none when pgml's tables are missing or unreadable: pgml.train then says why). */
async function visibleModelIds(client: pg.ClientBase, project: string): Promise<Set<number>> {
  const { rows: access } = await client.query<{ ok: boolean }>(
    `SELECT coalesce(pg_catalog.has_table_privilege(pg_catalog.to_regclass('pgml.models')::oid, 'SELECT')
                 AND pg_catalog.has_table_privilege(pg_catalog.to_regclass('pgml.projects')::oid, 'SELECT'), false) AS ok`)
  if (!access[0]?.ok) return new Set()
  const { rows } = await client.query<{ id: string }>('SELECT m.id FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE p.name = $1', [project])
  return new Set(rows.map((r) => Number(r.id)))
}

export interface TrainOptions {
  /** Called once if another `train` (or a gated `deploy`) of the project holds its lock; train then waits for it. */
  readonly onWait?: () => void
  /** Called before training again after a serialization failure (see `train`). */
  readonly onRetry?: (attempt: number, of: number) => void
}

const SERIALIZATION_ATTEMPTS = 3

/**
 * `pgml-kit train <project>`: calls pgml.train with the config's arguments; with a gate, trains
 * without deploying and deploys the best new model only if it passes; records lineage (the training
 * set's definition and each feature view's definition and high-water mark) when the relation is a
 * training set of the config, and the gate's verdict.
 *
 * The feature views' marks and pgml.train run in one REPEATABLE READ transaction: the marks are
 * those of the data the model was trained on, whatever is materialised meanwhile. The models this
 * call created are the ones visible after pgml.train and not before it in that snapshot — in a
 * snapshot, only the transaction's own writes appear, so another session's concurrent training is
 * never reported as this one's. (Not `xmin`: PL/Python runs each statement in a subtransaction, so
 * pgml_compat's rows carry a subtransaction's id.) A serialization failure (pgml_compat bumps one
 * row on every deployment, so an automatic deployment can collide with any other session's) rolls
 * back the training, which runs again, up to three times. `client` must not be in a transaction.
 */
export async function train(client: pg.ClientBase, config: ResolvedConfig, project: string, options: TrainOptions = {}): Promise<TrainResult> {
  const model = modelOf(config, project)
  const sql = trainSql(config, project)
  const views = model.trainingSet ? [...new Set(model.trainingSet.features.map((f) => f.view))].map((n) => config.state.featureViews.find((v) => v.name === n)!) : []
  return withProjectLock(client, project, options.onWait, async () => {
    const lineage = await lineageTableOf(client, model)
    const notes: string[] = []
    let createdIds: Set<number> | undefined
    for (let attempt = 1; createdIds === undefined; attempt++) {
      try {
        createdIds = await trainInOneSnapshot(client, model, project, sql, views, lineage)
      } catch (error) {
        if ((error as { code?: unknown }).code !== '40001' || attempt >= SERIALIZATION_ATTEMPTS) throw error
        options.onRetry?.(attempt + 1, SERIALIZATION_ATTEMPTS)
        notes.push(`training ${attempt} was rolled back by a serialization failure (another session deployed a model meanwhile) and ran again`)
      }
    }
    const ids = createdIds
    let gate: string | null = null
    let gateVerdict: GateRecord | null = null
    if (model.gate) {
      const g = model.gate
      const created = (await listModels(client, config, project)).filter((m) => ids.has(m.id))
      const lower = isLowerBetter(g.metric)
      const scored = created.filter((m) => Number.isFinite(m.metrics[g.metric]))
      const best = [...scored].sort((a, b) => (lower ? 1 : -1) * (a.metrics[g.metric]! - b.metrics[g.metric]!))[0] ?? created[0]!
      const current = await deployedModelOf(client, project)
      const verdict = passesGate(g, best.metrics, current?.metrics ?? null)
      gate = `${verdict.pass ? 'deployed' : 'not deployed'}: model ${best.id}: ${verdict.reason}`
      gateVerdict = gateRecord(g, best, current, verdict)
      if (verdict.pass) await client.query('SELECT * FROM pgml.deploy($1::bigint)', [best.id]).catch((error: unknown) => { throw notPermitted(error, 'deploy', project) })
      if (lineage?.gateColumns) await client.query(`UPDATE ${lineage.name} SET gate_verdict = $2::jsonb WHERE model_id = $1`, [best.id, JSON.stringify(gateVerdict)])
      else if (lineage) notes.push(`the gate's verdict is not recorded: ${lineage.display} ${NOT_UPGRADED}`)
    }
    const after = await listModels(client, config, project)
    return { sql, models: after.filter((m) => ids.has(m.id)), deployed: after.find((m) => m.deployed)?.id ?? null, gate, gateVerdict, notes }
  })
}

/** The marks, pgml.train and the lineage rows in one REPEATABLE READ transaction; the ids of the models it created. */
async function trainInOneSnapshot(client: pg.ClientBase, model: ModelNode, project: string, sql: string, views: readonly FeatureViewNode[], lineage: LineageTable | null): Promise<Set<number>> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ')
  try {
    // The first statement takes the snapshot every later one (pgml.train's reads included) sees.
    const marks: FeatureViewMark[] = []
    for (const view of views) {
      const { rows } = await client.query<{ high_water_mark: string | null }>(featureViewMarkSql(view))
      marks.push({ name: view.name, definitionSha256: sha256(view), highWaterMark: rows[0]?.high_water_mark ?? null })
    }
    const before = await visibleModelIds(client, project)
    await client.query(sql).catch((error: unknown) => { throw notPermitted(error, 'train', project) })
    const created = [...await visibleModelIds(client, project)].filter((id) => !before.has(id)).sort((a, b) => a - b)
    if (created.length === 0) throw new PgmlKitError('TRAIN_NO_MODEL', `pgml.train created no model for "${project}"`)
    if (lineage) {
      for (const id of created) {
        await client.query(`INSERT INTO ${lineage.name} (model_id, project, relation, training_set, definition_sha256, feature_views, train_sql) VALUES ($1, $2, $3, $4, $5, $6, $7)
          ON CONFLICT (model_id) DO NOTHING`, [id, project, model.relationName, model.trainingSet?.name ?? null, model.trainingSet ? sha256(model.trainingSet) : null, JSON.stringify(marks), sql])
      }
    }
    await client.query('COMMIT')
    return new Set(created)
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

/**
 * pgml_compat lets members of pgml_trainer train and deploy (README: Security model); PostgresML,
 * whoever may write its tables. A role that may not gets that said, with the grant to ask for.
 */
function notPermitted(error: unknown, what: 'train' | 'deploy', project: string): unknown {
  const e = error as { code?: string; message?: string }
  if (e.code !== '42501') return error
  return new PgmlKitError('TRAIN_NOT_PERMITTED', `this role may not ${what} models (project "${project}"): ${e.message ?? 'permission denied'}`, {
    where: `models.${project}`, cause: error,
    hint: 'with pgml_compat, an administrator runs: GRANT pgml_trainer TO <this role>; (README: Security model)',
  })
}

export type DeployChoice = { readonly strategy: 'best_score' | 'most_recent' | 'rollback'; readonly algorithm?: string } | { readonly model: number }

export interface DeployOptions {
  /**
   * Deploy a model chosen by id even though it fails the project's gate; the reason is recorded in
   * the lineage (when the model has a lineage row) and must not be empty.
   */
  readonly overrideGate?: string
  /** Called once if a `train` (or another gated deploy) of the project holds its lock; deploy then waits for it. */
  readonly onWait?: () => void
}

export interface DeployResult {
  /** The project's deployed model afterwards. */
  readonly deployed: ModelRow | null
  /** The gate's verdict on the model deployed by id (null without a gate, by strategy, or when it was deployed already). */
  readonly gate: GateRecord | null
  /** Set when the model failed its gate and `overrideGate` deployed it anyway. */
  readonly override: { readonly reason: string; readonly recordedIn: string | null } | null
  readonly notes: readonly string[]
}

/**
 * `pgml-kit deploy`: pgml.deploy by strategy (optionally for one algorithm) or by model id. A model
 * chosen by id is held to the project's gate (config `models.<project>.deploy`) against the deployed
 * model: one that fails it is refused (DEPLOY_GATE_FAILED) unless `overrideGate` gives a reason,
 * which is recorded beside the model's lineage. `client` must not be in a transaction.
 */
export async function deploy(client: pg.ClientBase, config: ResolvedConfig, project: string, choice: DeployChoice, options: DeployOptions = {}): Promise<DeployResult> {
  if (options.overrideGate !== undefined && options.overrideGate.trim() === '') throw new PgmlKitError('OVERRIDE_REASON_REQUIRED', '--override-gate needs a reason, recorded with the deployment')
  try {
    const model = config.models.find((m) => m.project === project)
    if ('model' in choice) {
      const { rows } = await client.query<{ ok: boolean }>('SELECT EXISTS (SELECT 1 FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE p.name = $1 AND m.id = $2) AS ok', [project, choice.model])
      if (!rows[0]?.ok) throw new PgmlKitError('MODEL_UNKNOWN', `model ${choice.model} is not a model of project "${project}"`, { hint: `pgml-kit models ${project}` })
      if (model?.gate) return await withProjectLock(client, project, options.onWait, () => deployGated(client, config, model, choice.model, options))
      await client.query('SELECT * FROM pgml.deploy($1::bigint)', [choice.model])
    } else if (choice.algorithm) {
      await client.query('SELECT * FROM pgml.deploy($1, $2::pgml.strategy, $3::pgml.algorithm)', [project, choice.strategy, choice.algorithm])
    } else {
      await client.query('SELECT * FROM pgml.deploy($1, $2::pgml.strategy)', [project, choice.strategy])
    }
    const notes = options.overrideGate !== undefined ? [model?.gate ? '--override-gate applies to a model chosen by id (--model); nothing was overridden' : `project "${project}" has no gate in the config; nothing was overridden`] : []
    return { deployed: (await listModels(client, config, project)).find((m) => m.deployed) ?? null, gate: null, override: null, notes }
  } catch (error) {
    throw notPermitted(error, 'deploy', project)
  }
}

async function deployGated(client: pg.ClientBase, config: ResolvedConfig, model: ModelNode, id: number, options: DeployOptions): Promise<DeployResult> {
  const project = model.project
  const gate = model.gate!
  const current = await deployedModelOf(client, project)
  const notes: string[] = []
  if (current?.id === id) {
    await client.query('SELECT * FROM pgml.deploy($1::bigint)', [id])
    if (options.overrideGate !== undefined) notes.push(`model ${id} was deployed already; nothing was overridden`)
    return { deployed: (await listModels(client, config, project)).find((m) => m.deployed) ?? null, gate: null, override: null, notes }
  }
  const { rows } = await client.query<{ metrics: Record<string, unknown> | null }>('SELECT m.metrics FROM pgml.models m WHERE m.id = $1', [id])
  const verdict = passesGate(gate, rows[0]?.metrics ?? {}, current?.metrics ?? null)
  const record = gateRecord(gate, { id, metrics: rows[0]?.metrics ?? {} }, current, verdict)
  if (!verdict.pass && options.overrideGate === undefined) {
    throw new PgmlKitError('DEPLOY_GATE_FAILED', `model ${id} fails the deployment gate of models.${project}.deploy: ${verdict.reason}; not deployed`, {
      where: `models.${project}.deploy`,
      hint: `to deploy it anyway, with the reason recorded: pgml-kit deploy ${project} --model ${id} --override-gate "<why>"`,
    })
  }
  let override: DeployResult['override'] = null
  await client.query('BEGIN')
  try {
    await client.query('SELECT * FROM pgml.deploy($1::bigint)', [id])
    if (!verdict.pass) {
      const reason = options.overrideGate!
      const lineage = await lineageTableOf(client, model)
      let recordedIn: string | null = null
      if (!lineage) {
        notes.push(`the override is not recorded in the database: ${model.trainingSet ? `the feature schema has no ${LINEAGE_TABLE} table` : `project "${project}" does not train on a training set, so it has no lineage table`}`)
      } else if (!lineage.gateColumns) {
        notes.push(`the override is not recorded in the database: ${lineage.display} ${NOT_UPGRADED}`)
      } else {
        const updated = await client.query(
          `UPDATE ${lineage.name} SET gate_overrides = coalesce(gate_overrides, '[]'::jsonb) OPERATOR(pg_catalog.||)
             pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('at', pg_catalog.now(), 'role', current_user::text, 'reason', $2::text, 'verdict', $3::jsonb))
           WHERE model_id = $1`, [id, reason, JSON.stringify(record)])
        if (updated.rowCount === 1) recordedIn = lineage.display
        else notes.push(`the override is not recorded in the database: model ${id} has no row in ${lineage.display} (pgml-kit train did not train it)`)
      }
      override = { reason, recordedIn }
    } else if (options.overrideGate !== undefined) {
      notes.push(`model ${id} passes the gate; --override-gate was not needed and is not recorded`)
    }
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
  return { deployed: (await listModels(client, config, project)).find((m) => m.deployed) ?? null, gate: record, override, notes }
}
