import type { ConfigIssue } from '../errors.js'
import type { PgmlKitConfig } from '../config/schema.js'
import { deriveIdentifier } from './identifiers.js'
import { quoteQualified } from '../sql/quote.js'
import type { FeatureViewNode, RelationNode, TrainingSetNode } from './ir.js'
import { isLowerBetter, PGML_METRICS } from './metrics.js'
import type { ModelNode } from './resolve.js'

/** Feature views, training sets and models of a config, checked against each other; problems go to `issues` with their paths. */

function list(value: string | readonly string[]): string[] {
  return typeof value === 'string' ? [value] : [...value]
}

function relation(value: { table: string; schema?: string | undefined } | { sql: string }): RelationNode {
  return 'sql' in value ? { kind: 'sql', sql: value.sql } : { kind: 'table', schema: value.schema ?? 'public', table: value.table }
}

export function resolveFeatureViews(config: PgmlKitConfig, schema: string, issues: ConfigIssue[]): FeatureViewNode[] {
  const out: FeatureViewNode[] = []
  for (const [name, view] of Object.entries(config.features?.views ?? {})) {
    const path = `features.views.${name}`
    const entities = list(view.entities)
    const features = Object.entries(view.features).map(([feature, type]) => ({ name: feature, type }))
    const reserved = new Map<string, string>([...entities.map((e) => [e, 'entities'] as const), [view.timestamp, 'timestamp'], ...(view.createdTimestamp ? [[view.createdTimestamp, 'createdTimestamp'] as const] : [])])
    if (new Set(entities).size !== entities.length) issues.push({ path: `${path}.entities`, message: 'lists a column twice' })
    if (view.createdTimestamp === view.timestamp) issues.push({ path: `${path}.createdTimestamp`, message: 'must be another column than timestamp' })
    for (const f of features) {
      if (reserved.has(f.name)) issues.push({ path: `${path}.features.${f.name}`, message: `"${f.name}" is already the view's ${reserved.get(f.name)} column; a feature must be another column` })
    }
    for (const [column, where] of [...reserved.entries(), ...features.map((f) => [f.name, `features.${f.name}`] as const)]) {
      if (column === 'materialized_at' || column === 'updated_at' || column.startsWith('pgml_kit_')) {
        issues.push({ path: `${path}.${where}`, message: `"${column}" is a column name pgml-kit uses in the view's tables (materialized_at, updated_at, pgml_kit_*); select the column under another name in the source` })
      }
    }
    out.push({
      schema, name, entities, source: relation(view.source), timestamp: view.timestamp, createdTimestamp: view.createdTimestamp ?? null, ttl: view.ttl ?? null, features,
      offlineTable: deriveIdentifier([name, 'offline']), onlineTable: deriveIdentifier([name, 'online']), materializeFunction: deriveIdentifier(['materialize', name]),
      ...('sql' in view.source
        ? { changeCapture: 'recompute' as const }
        : { changeCapture: 'trigger' as const, changesTable: deriveIdentifier([name, 'changes']), captureFunction: deriveIdentifier(['capture', name]) }),
    })
  }
  return out.sort((a, b) => a.name.localeCompare(b.name))
}

export function resolveTrainingSets(config: PgmlKitConfig, schema: string, views: readonly FeatureViewNode[], issues: ConfigIssue[]): TrainingSetNode[] {
  const out: TrainingSetNode[] = []
  const byName = new Map(views.map((v) => [v.name, v]))
  for (const [name, set] of Object.entries(config.features?.trainingSets ?? {})) {
    const path = `features.trainingSets.${name}`
    if (byName.has(name) || views.some((v) => [v.offlineTable, v.onlineTable, v.changesTable].includes(name))) issues.push({ path, message: `"${name}" is already the name of a feature view or one of its tables; choose another name` })
    const entities = list(set.entities)
    const features: { view: string; feature: string }[] = []
    const seen = new Set<string>()
    for (const [i, ref] of set.features.entries()) {
      const [viewName, feature] = ref.split('.') as [string, string]
      const view = byName.get(viewName)
      if (!view) {
        issues.push({ path: `${path}.features[${i}]`, message: `no feature view "${viewName}"; declared: ${[...byName.keys()].join(', ') || 'none'}` })
        continue
      }
      if (!view.features.some((f) => f.name === feature)) {
        issues.push({ path: `${path}.features[${i}]`, message: `feature view "${viewName}" has no feature "${feature}"; it has ${view.features.map((f) => f.name).join(', ')}` })
        continue
      }
      if (view.entities.length !== entities.length) {
        issues.push({ path: `${path}.entities`, message: `has ${entities.length} column(s) but feature view "${viewName}" is keyed by ${view.entities.length} (${view.entities.join(', ')})` })
      }
      if (seen.has(feature)) issues.push({ path: `${path}.features[${i}]`, message: `a feature named "${feature}" is already in the set; each feature name may appear once` })
      if (feature === set.label || entities.includes(feature) || feature === set.timestamp) issues.push({ path: `${path}.features[${i}]`, message: `"${feature}" is also the set's label, entity or timestamp column` })
      seen.add(feature)
      features.push({ view: viewName, feature })
    }
    out.push({ schema, name, labels: relation(set.labels), entities, timestamp: set.timestamp, label: set.label, features, auditView: deriveIdentifier([name, 'audit']) })
  }
  return out.sort((a, b) => a.name.localeCompare(b.name))
}

export function resolveModels(config: PgmlKitConfig, sets: readonly TrainingSetNode[], issues: ConfigIssue[]): ModelNode[] {
  const out: ModelNode[] = []
  for (const [project, model] of Object.entries(config.models ?? {})) {
    const path = `models.${project}`
    const set = sets.find((s) => s.name === model.relation) ?? null
    const target = model.target ?? set?.label
    if (target === undefined) {
      issues.push({ path: `${path}.target`, message: `"${model.relation}" is not a training set of this config, so the target column must be given` })
      continue
    }
    if (model.deploy) checkGate(model.task, model.deploy, `${path}.deploy`, issues)
    const qualified = (name: string) => {
      const parts = name.split('.')
      return parts.length === 2 ? quoteQualified(parts[0]!, parts[1]!) : quoteQualified('public', name)
    }
    const parts = model.relation.split('.')
    const relationName = set ? quoteQualified(set.schema, set.name) : parts.length === 2 ? quoteQualified(parts[0]!, parts[1]!) : quoteQualified('public', model.relation)
    out.push({
      project, task: model.task, trainingSet: set, relationName, target,
      algorithm: model.algorithm ?? null, hyperparams: model.hyperparams ?? null, search: model.search ?? null, searchParams: model.searchParams ?? null,
      searchArgs: model.searchArgs ?? null, testSize: model.testSize ?? null, testSampling: model.testSampling ?? null, preprocess: model.preprocess ?? null,
      gate: model.deploy ? { metric: model.deploy.metric, min: model.deploy.min ?? null, max: model.deploy.max ?? null, margin: model.deploy.margin ?? null } : null,
      monitor: { relation: model.monitor?.relation ? qualified(model.monitor.relation) : null, psi: model.monitor?.psi ?? 0.2, alpha: model.monitor?.alpha ?? 0.01 },
      serving: model.serving ? {
        log: model.serving.log ? { sample: model.serving.log.sample ?? 1, retentionDays: model.serving.log.retentionDays ?? 30 } : null,
        labels: model.serving.labels ? { relation: qualified(model.serving.labels.relation), key: model.serving.labels.key, label: model.serving.labels.label } : null,
      } : null,
    })
  }
  return out
}

/**
 * A gate names a metric pgml records for the task (a typo would hold back every model, found only
 * after training), and bounds it from the side that matters: `min` for a higher-is-better metric,
 * `max` for a lower-is-better one.
 */
function checkGate(task: 'regression' | 'classification', gate: { metric: string; min?: number | undefined; max?: number | undefined }, path: string, issues: ConfigIssue[]): void {
  const known: readonly string[] = PGML_METRICS[task]
  if (!known.includes(gate.metric)) {
    const other = task === 'regression' ? 'classification' : 'regression'
    const hint = (PGML_METRICS[other] as readonly string[]).includes(gate.metric) ? ` ("${gate.metric}" is a ${other} metric)` : ''
    issues.push({ path: `${path}.metric`, message: `"${gate.metric}" is not a metric pgml records for ${task} models${hint}; it records ${known.join(', ')}` })
    return
  }
  if (isLowerBetter(gate.metric) && gate.min !== undefined) {
    issues.push({ path: `${path}.min`, message: `${gate.metric} is lower-is-better: a model passes when it is at most a bound, so give max: ${gate.min} instead of min` })
  }
  if (!isLowerBetter(gate.metric) && gate.max !== undefined) {
    issues.push({ path: `${path}.max`, message: `${gate.metric} is higher-is-better: a model passes when it is at least a bound, so give min: ${gate.max} instead of max` })
  }
}
