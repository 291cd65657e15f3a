import { describe, expect, it } from 'vitest'
import { parseModelReference } from '../../src/features/registry.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { predictCall } from '../../src/sql/render-search.js'
import { Kysely, PostgresAdapter, DummyDriver, PostgresIntrospector, PostgresQueryCompiler } from 'kysely'

const kysely = new Kysely<Record<string, never>>({
  dialect: { createAdapter: () => new PostgresAdapter(), createDriver: () => new DummyDriver(), createIntrospector: (db) => new PostgresIntrospector(db), createQueryCompiler: () => new PostgresQueryCompiler() },
})

describe('model references', () => {
  it('are project@alias or project@v<number>; a plain name is the project (its deployed model)', () => {
    expect(parseModelReference('churn')).toBeNull()
    expect(parseModelReference('churn@champion')).toEqual({ project: 'churn', alias: 'champion' })
    expect(parseModelReference('churn@v12')).toEqual({ project: 'churn', version: 12 })
    expect(parseModelReference('churn@v12x')).toEqual({ project: 'churn', alias: 'v12x' })
    expect(() => parseModelReference('churn@')).toThrow(/is not a model reference/)
    expect(() => parseModelReference('@champion')).toThrow(/is not a model reference/)
  })

  it('predict by project binds the name; by reference, the model id pgml_kit.model_id resolves in the same statement', () => {
    const byProject = kysely.selectNoFrom(predictCall("o'neil", [1, 2]).as('p')).compile()
    expect(byProject.sql).toBe('select pgml.predict($1::text, $2::real[]) as "p"')
    const byAlias = kysely.selectNoFrom(predictCall("o'neil@challenger", [1, 2]).as('p')).compile()
    expect(byAlias.sql).toBe('select pgml.predict(pgml_kit.model_id($1::text), $2::real[]) as "p"')
    expect(byAlias.parameters[0]).toBe("o'neil@challenger")
  })

  it('the config refuses a project name with "@", which would read as a reference', () => {
    expect(() => resolveConfig({ tables: {}, models: { 'a@b': { task: 'regression', relation: 't', target: 'y' } } })).toThrow(/models\.a@b[\s\S]*must not contain "@"/)
  })
})
