import { describe, expect, it } from 'vitest'
import { featureViewMarkSql } from '../../src/features/ml.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { renderCreateFeatureSchema, renderUpgradeFeatureSchema } from '../../src/sql/render-features.js'
import { parseStatements } from '../helpers/sql.js'

/** The lineage table's SQL: the gate columns on a new table and on one an earlier pgml-kit created; the mark a training records. */
describe('the lineage table and the marks training records', () => {
  it('creates the lineage table with nullable gate columns, and adds them idempotently to an older one', () => {
    const create = renderCreateFeatureSchema('feat "s"')
    expect(create.join('\n')).toMatch(/gate_verdict jsonb,\n {2}gate_overrides jsonb\n\);/)
    const upgrade = renderUpgradeFeatureSchema('feat "s"')
    expect(upgrade.slice(0, 2)).toEqual([
      'ALTER TABLE "feat ""s"""."pgml_kit_model_lineage" ADD COLUMN IF NOT EXISTS "gate_verdict" jsonb;',
      'ALTER TABLE "feat ""s"""."pgml_kit_model_lineage" ADD COLUMN IF NOT EXISTS "gate_overrides" jsonb;',
    ])
    for (const statement of [...create, ...upgrade]) expect(parseStatements(statement)).toBe(1)
  })

  it('reads a feature view\'s mark in one quoted statement', () => {
    const config = resolveConfig({
      tables: {}, features: { schema: 'f"s', views: { 'v"1': { entities: 'id', source: { table: 'src' }, timestamp: 'ts', createdTimestamp: 'created"ts', features: { x: 'integer' } } } },
    })
    // With change capture: the last materialisation's time.
    const sql = featureViewMarkSql(config.state.featureViews[0]!)
    expect(sql).toBe(`SELECT (SELECT r.last_run_at::text FROM "f""s"."pgml_kit_feature_runs" AS r WHERE r.view_name = 'v"1') AS high_water_mark`)
    expect(parseStatements(sql)).toBe(1)
    // A view from before it (not upgraded yet): the newest created time in the offline table.
    const legacy = featureViewMarkSql(config.state.featureViews[0]!, false)
    expect(legacy).toBe('SELECT pg_catalog.max("created""ts")::text AS high_water_mark FROM "f""s"."v""1_offline"')
    expect(parseStatements(legacy)).toBe(1)
  })
})
