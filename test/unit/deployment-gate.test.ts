import { describe, expect, it } from 'vitest'
import type { ConfigError } from '../../src/errors.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { resolveConfig } from '../../src/model/resolve.js'

/** The deployment gate: what the config refuses before anything trains. */

function issuesOf(input: unknown): { path: string; message: string }[] {
  try {
    resolveConfig(input)
  } catch (error) {
    return [...(error as ConfigError).issues]
  }
  return []
}

const withGate = (task: 'regression' | 'classification', deploy: Record<string, unknown>): PgmlKitConfig => ({
  tables: {},
  models: { houses: { task, relation: 'houses', target: 'price', deploy: deploy as NonNullable<PgmlKitConfig['models']>[string]['deploy'] } },
})

describe('the gate in the config', () => {
  it('refuses a metric pgml does not record for the task, listing the ones it does', () => {
    expect(issuesOf(withGate('regression', { metric: 'mse', max: 1 }))).toEqual([{
      path: 'models.houses.deploy.metric', message: '"mse" is not a metric pgml records for regression models; it records r2, mean_absolute_error, mean_squared_error',
    }])
    expect(issuesOf(withGate('regression', { metric: 'f1', min: 0.5 }))).toEqual([{
      path: 'models.houses.deploy.metric', message: '"f1" is not a metric pgml records for regression models ("f1" is a classification metric); it records r2, mean_absolute_error, mean_squared_error',
    }])
    expect(issuesOf(withGate('classification', { metric: 'auc' }))[0]).toMatchObject({ path: 'models.houses.deploy.metric', message: expect.stringMatching(/it records f1, precision, recall, accuracy, mcc, roc_auc, log_loss$/) })
  })

  it('refuses min on a lower-is-better metric and max on a higher-is-better one', () => {
    expect(issuesOf(withGate('regression', { metric: 'mean_squared_error', min: 1 }))).toEqual([{
      path: 'models.houses.deploy.min', message: 'mean_squared_error is lower-is-better: a model passes when it is at most a bound, so give max: 1 instead of min',
    }])
    expect(issuesOf(withGate('regression', { metric: 'r2', max: 0.9 }))).toEqual([{
      path: 'models.houses.deploy.max', message: 'r2 is higher-is-better: a model passes when it is at least a bound, so give min: 0.9 instead of max',
    }])
    expect(issuesOf(withGate('regression', { metric: 'mean_squared_error', max: 1, margin: 0.1 }))).toEqual([])
    expect(resolveConfig(withGate('regression', { metric: 'mean_squared_error', max: 1 })).models[0]!.gate).toEqual({ metric: 'mean_squared_error', min: null, max: 1, margin: null })
  })
})
