import { describe, expect, it } from 'vitest'
import { renderCreateFeatureSchema, renderUpgradeFeatureSchema } from '../../src/sql/render-features.js'
import { parseStatements } from '../helpers/sql.js'

/** The lineage table's SQL: the gate columns on a new table and on one an earlier pgml-kit created. */
describe('the lineage table', () => {
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
})
