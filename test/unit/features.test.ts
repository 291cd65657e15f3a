import { describe, expect, it } from 'vitest'
import { EMPTY_STATE } from '../../src/model/ir.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { planMigration, planOperations } from '../../src/plan/plan-migration.js'
import { renderMigrationFiles } from '../../src/migrations/render-files.js'
import { passesGate, renderTrainCall } from '../../src/features/ml.js'
import { featureRef, renderCopyTrainingSet, renderPredictOnline } from '../../src/sql/render-features.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { parseFiles, parseStatements } from '../helpers/sql.js'

const base: PgmlKitConfig = {
  tables: {},
  features: {
    views: {
      'customer stats': {
        entities: ['tenant', 'customer_id'], source: { sql: 'SELECT * FROM events WHERE kind = \'purchase\';' }, timestamp: 'event_ts', ttl: '30 days',
        features: { spend: 'double precision', 'odd"name': 'numeric(10,2)', profile: 'vector(4)' },
      },
    },
    trainingSets: {
      churn: { labels: { table: 'labels', schema: 'crm' }, entities: ['tenant', 'customer'], timestamp: 'label_ts', label: 'churned', features: ['customer stats.spend', 'customer stats.profile', 'customer stats.odd"name'] },
    },
  },
  models: {
    churn: { task: 'classification', relation: 'churn', algorithm: 'xgboost', hyperparams: { n_estimators: 10 }, search: 'grid', searchParams: { max_depth: [2, 4] }, deploy: { metric: 'f1', min: 0.6, margin: 0.01 } },
  },
}

describe('feature views, training sets and models in the config', () => {
  it('plans schema, views and training sets whose every statement parses, and reverses them', () => {
    const { state } = resolveConfig(base)
    const plan = planMigration(EMPTY_STATE, state)
    // The models the config trains need the runtime's model registry.
    expect(planOperations(plan).map((op) => op.kind)).toEqual(['install-runtime', 'create-feature-schema', 'create-feature-view', 'create-training-set'])
    const files = renderMigrationFiles(plan, { name: 'features', timestamp: 1, settings: resolveConfig(base).migrations })
    expect(parseFiles(files)).toBeGreaterThan(10)
    const sql = files[0]!.content
    expect(sql).toContain('ON "features"."customer stats_offline" ("tenant", "customer_id", "event_ts")')
    expect(sql).toContain('CREATE FUNCTION "features"."materialize_customer stats"(refresh_all boolean DEFAULT false)')
    expect(sql).toContain('"odd""name"')
    expect(sql).toContain(`o."event_ts" >= l."label_ts" - '30 days'::interval`)
    expect(sql).toContain('"profile"::real[] AS "profile"')
    // Removing them all is the mirror image, drops last.
    const down = planMigration(state, EMPTY_STATE)
    expect(planOperations(down).map((op) => [op.kind, op.safety])).toEqual([['release-runtime', 'safe'], ['drop-training-set', 'safe'], ['drop-feature-view', 'destructive'], ['drop-feature-schema', 'destructive']])
    expect(planOperations(planMigration(state, state))).toEqual([])
  })

  it('locks each feature view\'s materialisation by a key of its own, even when schema and name read alike ("a.b"."c", "a"."b.c")', () => {
    const lockOf = (schema: string, view: string) => {
      const config: PgmlKitConfig = { tables: {}, features: { schema, views: { [view]: { entities: 'id', source: { table: 'events' }, timestamp: 'ts', features: { x: 'integer' } } } } }
      const sql = renderMigrationFiles(planMigration(EMPTY_STATE, resolveConfig(config).state), { name: 'f', timestamp: 1, settings: resolveConfig(config).migrations })[0]!.content
      return /pg_advisory_xact_lock\(pg_catalog\.hashtextextended\(('(?:[^']|'')*')/.exec(sql)?.[1]
    }
    expect(lockOf('a.b', 'c')).toBeDefined()
    expect(lockOf('a.b', 'c')).not.toBe(lockOf('a', 'b.c'))
  })

  it('refuses to change a feature view (its tables hold history) and re-creates a changed training set', () => {
    const { state } = resolveConfig(base)
    const changed = structuredClone(base)
    changed.features!.views!['customer stats']!.ttl = '7 days'
    expect(() => planMigration(state, resolveConfig(changed).state)).toThrow(/changing feature view features\.customer stats is not supported yet/)
    const reordered = structuredClone(base)
    reordered.features!.trainingSets!.churn!.features = ['customer stats.profile', 'customer stats.spend']
    expect(planOperations(planMigration(state, resolveConfig(reordered).state)).map((op) => op.kind)).toEqual(['drop-training-set', 'create-training-set'])
  })

  it('grants trainers the training set they train on, again when the set is made again (a dropped view loses its grants), and on down', () => {
    const withTrainer = { ...structuredClone(base), roles: { trainer: 'ml ops' } }
    const { state } = resolveConfig(withTrainer)
    const first = planOperations(planMigration(EMPTY_STATE, state))
    const granted = first.find((op) => op.kind === 'grant-privileges')!.up.join('\n')
    expect(granted).toContain('GRANT SELECT ON TABLE "features"."churn" TO "ml ops";')
    expect(granted).toContain('GRANT INSERT ("definition_sha256", "feature_views", "model_id", "project", "relation", "train_sql", "training_set"), UPDATE ("gate_overrides", "gate_verdict") ON TABLE "features"."pgml_kit_model_lineage" TO "ml ops";')
    const reordered = structuredClone(withTrainer)
    reordered.features!.trainingSets!.churn!.features = ['customer stats.profile', 'customer stats.spend']
    const ops = planOperations(planMigration(state, resolveConfig(reordered).state))
    expect(ops.map((op) => op.kind)).toEqual(['drop-training-set', 'create-training-set'])
    expect(ops[1]!.up.at(-1)).toBe('GRANT SELECT ON TABLE "features"."churn" TO "ml ops";')
    // The down of the drop puts the old view back, granted.
    expect(ops[0]!.down.at(-1)).toBe('GRANT SELECT ON TABLE "features"."churn" TO "ml ops";')
    // Each step one statement, each of them parsed: none lost, none merged.
    const statements = [...ops[0]!.down, ...ops[1]!.up]
    expect(parseStatements(statements.join('\n'))).toBe(statements.filter((t) => t.split('\n').some((line) => line.trim() !== '' && !line.trim().startsWith('--'))).length)
  })

  it('names what is wrong and where', () => {
    const bad = structuredClone(base)
    bad.features!.trainingSets!.churn!.features = ['nope.spend', 'customer stats.nothing']
    bad.features!.trainingSets!.churn!.entities = 'customer'
    bad.models!.other = { task: 'regression', relation: 'some_table' }
    expect(() => resolveConfig(bad)).toThrow(/features\.trainingSets\.churn\.features\[0\]: no feature view "nope"[\s\S]*features\[1\]: feature view "customer stats" has no feature "nothing"[\s\S]*models\.other\.target: "some_table" is not a training set/)
    expect(() => resolveConfig({ tables: {}, features: { views: { v: { entities: 'id', source: { table: 't' }, timestamp: 'ts', features: { x: 'text; DROP TABLE t' } } } } }))
      .toThrow(/features\.views\.v\.features\.x: must be a PostgreSQL type/)
  })

  it('trains with exactly the config\'s arguments, and gates deployment on the metric', () => {
    const model = resolveConfig(base).models[0]!
    const sql = renderTrainCall(model, false)
    expect(sql).toBe(`SELECT * FROM pgml.train(
  project_name => 'churn',
  task => 'classification',
  relation_name => '"features"."churn"',
  y_column_name => 'churned',
  algorithm => 'xgboost',
  hyperparams => '{"n_estimators":10}'::jsonb,
  search => 'grid',
  search_params => '{"max_depth":[2,4]}'::jsonb,
  automatic_deploy => false
);`)
    expect(parseStatements(sql)).toBe(1)
    const gate = model.gate!
    expect(passesGate(gate, { f1: 0.7 }, null)).toMatchObject({ pass: true })
    expect(passesGate(gate, { f1: 0.5 }, null)).toMatchObject({ pass: false, reason: 'f1 0.5000 is below the minimum 0.6' })
    expect(passesGate(gate, { f1: 0.705 }, { f1: 0.7 })).toMatchObject({ pass: false })
    expect(passesGate(gate, { f1: 0.72 }, { f1: 0.7 })).toMatchObject({ pass: true })
    expect(passesGate({ metric: 'mean_squared_error', min: null, max: 2, margin: null }, { mean_squared_error: 1.5 }, null)).toMatchObject({ pass: true })
    expect(passesGate({ metric: 'r2', min: null, max: null, margin: null }, { f1: 1 }, null)).toMatchObject({ pass: false, reason: 'the new model has no metric "r2" (it has f1)' })
  })

  it('predicts online in one statement: the training set\'s features in order, as of now from the online table or as of a time from the offline table', () => {
    const { state } = resolveConfig(base)
    const set = state.trainingSets[0]!
    const now = renderPredictOnline(set, state.featureViews, { at: 'now', imputed: new Set() })
    expect(parseStatements(now)).toBe(1)
    expect(now).toBe(`SELECT CASE WHEN v0."spend" IS NOT NULL AND v0."profile" IS NOT NULL AND v0."odd""name" IS NOT NULL THEN pgml.predict($1::text, (ARRAY[v0."spend"::real] OPERATOR(pg_catalog.||) v0."profile"::real[] OPERATOR(pg_catalog.||) ARRAY[v0."odd""name"::real])::real[]) END AS p,
       ARRAY[v0."spend" IS NULL, v0."profile" IS NULL, v0."odd""name" IS NULL] AS absent
FROM (SELECT pg_catalog.now() AS at) AS r
LEFT JOIN LATERAL (SELECT o."spend", o."profile", o."odd""name" FROM "features"."customer stats_online" AS o
    WHERE o."tenant" = $2 AND o."customer_id" = $3 AND o."event_ts" <= r.at AND o."event_ts" >= r.at - '30 days'::interval) AS v0 ON true`)
    // As of a time: the offline table, the training join's rule; a feature the model imputes need not be there.
    const asOf = renderPredictOnline(set, state.featureViews, { at: 'asOf', imputed: new Set(['customer stats.spend']) })
    expect(parseStatements(asOf)).toBe(1)
    expect(asOf).toContain('CASE WHEN v0."profile" IS NOT NULL AND v0."odd""name" IS NOT NULL THEN')
    expect(asOf).toContain(`FROM (SELECT $4::timestamptz AS at) AS r
LEFT JOIN LATERAL (SELECT o."spend", o."profile", o."odd""name" FROM "features"."customer stats_offline" AS o
    WHERE o."tenant" = $2 AND o."customer_id" = $3 AND o."event_ts" <= r.at AND o."event_ts" >= r.at - '30 days'::interval
    ORDER BY o."event_ts" DESC, ROW(o."spend", o."odd""name", o."profile")::text DESC LIMIT 1) AS v0 ON true`)
    // Every feature imputed: no condition.
    const all = renderPredictOnline(set, state.featureViews, { at: 'now', imputed: new Set(set.features.map(featureRef)) })
    expect(all).toMatch(/^SELECT pgml\.predict\(/)
    expect(parseStatements(all)).toBe(1)
  })

  it('copies a training set with its entity keys and label time', () => {
    const { state } = resolveConfig(base)
    const copy = renderCopyTrainingSet(state.trainingSets[0]!, state.featureViews, '"public"."churn copy"')
    expect(copy.columns).toEqual(['tenant', 'customer', 'label_ts', 'spend', 'profile', 'odd"name', 'churned'])
    expect(copy.sql).toBe('CREATE TABLE "public"."churn copy" AS SELECT "tenant", "customer", "label_ts", "spend", "profile"::real[] AS "profile", "odd""name", "churned" FROM "features"."churn_audit"')
    expect(parseStatements(copy.sql)).toBe(1)
  })
})
