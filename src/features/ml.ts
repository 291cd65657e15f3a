import { createHash } from 'node:crypto'
import type pg from 'pg'
import { PgmlKitError } from '../errors.js'
import type { DesiredState, FeatureViewNode, TrainingSetNode } from '../model/ir.js'
import type { ModelNode, ResolvedConfig } from '../model/resolve.js'
import { highWaterColumn, LINEAGE_TABLE, renderCopyTrainingSet } from '../sql/render-features.js'
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

export interface TrainingSetCopy {
  /** The table as given (`name` or `schema.name`). */
  readonly table: string
  readonly rows: number
  /** Its columns in order: the entity keys, the label time, the features, the label. */
  readonly columns: readonly string[]
}

/**
 * Copies a training set (as it is now) into a new table: the entity keys and the label time, so
 * each row joins back to its label, then the features and the label. For inspection and export:
 * pgml.train on this table would take the keys and the time for features — train on the training
 * set's view, which has only the features and the label.
 */
export async function materializeTrainingSet(client: pg.ClientBase, state: DesiredState, name: string, to: string): Promise<TrainingSetCopy> {
  const set = setOf(state, name)
  const parts = to.split('.')
  if (parts.length > 2 || parts.some((p) => p === '')) throw new PgmlKitError('TABLE_NAME_INVALID', `--to ${to}: give a table name or schema.table`)
  const target = parts.length === 2 ? quoteQualified(parts[0]!, parts[1]!) : quoteIdent(parts[0]!)
  const copy = renderCopyTrainingSet(set, state.featureViews, target)
  const result = await client.query(copy.sql)
  return { table: to, rows: result.rowCount ?? 0, columns: copy.columns }
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

/** Metrics where lower is better; the rest (r2, f1, accuracy, precision, recall, roc_auc, ...) are higher-is-better. */
const LOWER_IS_BETTER = new Set(['mean_squared_error', 'mean_absolute_error', 'log_loss', 'max_error', 'median_absolute_error'])

export interface ModelRow {
  readonly id: number
  readonly algorithm: string
  readonly status: string
  readonly metrics: Record<string, number>
  readonly createdAt: string
  readonly deployed: boolean
  readonly lineage: LineageRow | null
}

export interface LineageRow {
  readonly relation: string
  readonly trainingSet: string | null
  readonly definitionSha256: string | null
  readonly featureViews: readonly { name: string; definitionSha256: string; highWaterMark: string | null }[]
  readonly trainedAt: string
}

export interface TrainResult {
  readonly sql: string
  /** Models this call created. */
  readonly models: readonly ModelRow[]
  /** The model deployed after the call (by pgml's rule without a gate, by the gate with one), or null. */
  readonly deployed: number | null
  /** Why the gate deployed or held back the new model (null without a gate). */
  readonly gate: string | null
}

async function lineageTableOf(client: pg.ClientBase, model: ModelNode): Promise<string | null> {
  const schema = model.trainingSet?.schema
  if (!schema) return null
  const { rows } = await client.query<{ ok: boolean }>('SELECT pg_catalog.to_regclass($1) IS NOT NULL AS ok', [quoteQualified(schema, LINEAGE_TABLE)])
  return rows[0]?.ok ? quoteQualified(schema, LINEAGE_TABLE) : null
}

export async function listModels(client: pg.ClientBase, config: ResolvedConfig, project: string): Promise<ModelRow[]> {
  const model = config.models.find((m) => m.project === project)
  const lineage = model ? await lineageTableOf(client, model) : null
  const { rows } = await client.query<{ id: string; algorithm: string; status: string; metrics: Record<string, number> | null; created_at: Date; deployed: boolean; lineage: Record<string, unknown> | null }>(
    `SELECT m.id, m.algorithm::text AS algorithm, m.status, m.metrics, m.created_at,
            m.id = (SELECT d.model_id FROM pgml.deployments d WHERE d.project_id = p.id ORDER BY d.id DESC LIMIT 1) AS deployed,
            ${lineage ? `(SELECT pg_catalog.to_jsonb(l) FROM ${lineage} l WHERE l.model_id = m.id)` : 'NULL::jsonb'} AS lineage
     FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE p.name = $1 ORDER BY m.id`, [project])
  return rows.map((r) => ({
    id: Number(r.id), algorithm: r.algorithm, status: r.status, metrics: r.metrics ?? {}, createdAt: new Date(r.created_at).toISOString(), deployed: Boolean(r.deployed),
    lineage: r.lineage ? {
      relation: String(r.lineage.relation), trainingSet: (r.lineage.training_set as string | null) ?? null, definitionSha256: (r.lineage.definition_sha256 as string | null) ?? null,
      featureViews: (r.lineage.feature_views as LineageRow['featureViews']) ?? [], trainedAt: String(r.lineage.trained_at),
    } : null,
  }))
}

/** Whether `candidate` passes the gate against the deployed model's metrics (null when none is deployed). */
export function passesGate(gate: NonNullable<ModelNode['gate']>, candidate: Record<string, number>, deployed: Record<string, number> | null): { pass: boolean; reason: string } {
  const value = candidate[gate.metric]
  if (typeof value !== 'number' || !Number.isFinite(value)) return { pass: false, reason: `the new model has no metric "${gate.metric}" (it has ${Object.keys(candidate).join(', ') || 'none'})` }
  const lower = LOWER_IS_BETTER.has(gate.metric)
  const better = (a: number, b: number) => (lower ? a < b : a > b)
  if (gate.min !== null && (lower ? value > gate.min : value < gate.min)) {
    return { pass: false, reason: `${gate.metric} ${value.toFixed(4)} does not reach ${lower ? 'the maximum' : 'the minimum'} ${gate.min}` }
  }
  const current = deployed?.[gate.metric]
  if (gate.margin !== null && typeof current === 'number') {
    const needed = lower ? current - gate.margin : current + gate.margin
    if (!(better(value, needed) || value === needed)) return { pass: false, reason: `${gate.metric} ${value.toFixed(4)} does not beat the deployed model's ${current.toFixed(4)} by ${gate.margin}` }
    return { pass: true, reason: `${gate.metric} ${value.toFixed(4)} beats the deployed model's ${current.toFixed(4)} by at least ${gate.margin}` }
  }
  return { pass: true, reason: `${gate.metric} ${value.toFixed(4)}${gate.min !== null ? ` reaches ${gate.min}` : ''}${current === undefined ? ' (no model deployed yet)' : ''}` }
}

/**
 * `pgml-kit train <project>`: calls pgml.train with the config's arguments; with a gate, trains
 * without deploying and deploys the best new model only if it passes; records lineage (the training
 * set's definition and each feature view's definition and high-water mark) when the relation is a
 * training set of the config.
 */
export async function train(client: pg.ClientBase, config: ResolvedConfig, project: string): Promise<TrainResult> {
  const model = modelOf(config, project)
  const sql = trainSql(config, project)
  const before = await client.query<{ id: string | null }>('SELECT pg_catalog.max(m.id) AS id FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE p.name = $1', [project]).catch(() => ({ rows: [{ id: null }] }))
  const lastId = Number(before.rows[0]?.id ?? 0)
  const deployedBefore = (await listModels(client, config, project).catch(() => [])).find((m) => m.deployed) ?? null
  // The feature views' marks as the training reads them.
  const views = model.trainingSet ? [...new Set(model.trainingSet.features.map((f) => f.view))].map((n) => config.state.featureViews.find((v) => v.name === n)!) : []
  const marks: { name: string; definitionSha256: string; highWaterMark: string | null }[] = []
  for (const view of views) {
    const { rows } = await client.query<{ m: string | null }>(`SELECT pg_catalog.max(${quoteIdent(highWaterColumn(view))})::text AS m FROM ${quoteQualified(view.schema, view.offlineTable)}`)
    marks.push({ name: view.name, definitionSha256: sha256(view), highWaterMark: rows[0]?.m ?? null })
  }
  await client.query(sql).catch((error: unknown) => { throw notPermitted(error, 'train', project) })
  const created = (await listModels(client, config, project)).filter((m) => m.id > lastId)
  if (created.length === 0) throw new PgmlKitError('TRAIN_NO_MODEL', `pgml.train created no model for "${project}"`)
  let gate: string | null = null
  if (model.gate) {
    const g = model.gate
    const lower = LOWER_IS_BETTER.has(g.metric)
    const best = [...created].sort((a, b) => (lower ? 1 : -1) * ((a.metrics[g.metric] ?? NaN) - (b.metrics[g.metric] ?? NaN)))[0]!
    const verdict = passesGate(g, best.metrics, deployedBefore?.metrics ?? null)
    gate = `${verdict.pass ? 'deployed' : 'not deployed'}: model ${best.id}: ${verdict.reason}`
    if (verdict.pass) await client.query('SELECT * FROM pgml.deploy($1::bigint)', [best.id]).catch((error: unknown) => { throw notPermitted(error, 'deploy', project) })
  }
  const lineage = await lineageTableOf(client, model)
  if (lineage) {
    for (const m of created) {
      await client.query(`INSERT INTO ${lineage} (model_id, project, relation, training_set, definition_sha256, feature_views, train_sql) VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (model_id) DO NOTHING`, [m.id, project, model.relationName, model.trainingSet?.name ?? null, model.trainingSet ? sha256(model.trainingSet) : null, JSON.stringify(marks), sql])
    }
  }
  const after = await listModels(client, config, project)
  return { sql, models: after.filter((m) => m.id > lastId), deployed: after.find((m) => m.deployed)?.id ?? null, gate }
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

/** `pgml-kit deploy`: pgml.deploy by strategy (optionally for one algorithm) or by model id. */
export async function deploy(client: pg.ClientBase, project: string, choice: { strategy: 'best_score' | 'most_recent' | 'rollback'; algorithm?: string } | { model: number }): Promise<void> {
  try {
    await deployUnchecked(client, project, choice)
  } catch (error) {
    throw notPermitted(error, 'deploy', project)
  }
}

async function deployUnchecked(client: pg.ClientBase, project: string, choice: { strategy: 'best_score' | 'most_recent' | 'rollback'; algorithm?: string } | { model: number }): Promise<void> {
  if ('model' in choice) {
    const { rows } = await client.query<{ ok: boolean }>('SELECT EXISTS (SELECT 1 FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE p.name = $1 AND m.id = $2) AS ok', [project, choice.model])
    if (!rows[0]?.ok) throw new PgmlKitError('MODEL_UNKNOWN', `model ${choice.model} is not a model of project "${project}"`, { hint: `pgml-kit models ${project}` })
    await client.query('SELECT * FROM pgml.deploy($1::bigint)', [choice.model])
    return
  }
  if (choice.algorithm) await client.query('SELECT * FROM pgml.deploy($1, $2::pgml.strategy, $3::pgml.algorithm)', [project, choice.strategy, choice.algorithm])
  else await client.query('SELECT * FROM pgml.deploy($1, $2::pgml.strategy)', [project, choice.strategy])
}
