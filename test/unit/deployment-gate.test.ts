import { describe, expect, it } from 'vitest'
import type { ConfigError } from '../../src/errors.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { passesGate } from '../../src/features/ml.js'
import { resolveConfig } from '../../src/model/resolve.js'

/** The deployment gate: its wording for both directions of metric, and what the config refuses before anything trains. */

const gate = (metric: string, bounds: { min?: number; max?: number; margin?: number } = {}) => ({ metric, min: bounds.min ?? null, max: bounds.max ?? null, margin: bounds.margin ?? null })

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

describe('the deployment gate', () => {
  it('bounds a lower-is-better metric with max, and says "at most"', () => {
    expect(passesGate(gate('mean_squared_error', { max: 1 }), { mean_squared_error: 0.8 }, null)).toEqual({ pass: true, reason: 'mean_squared_error 0.8000 is at most 1 (no model deployed yet)' })
    expect(passesGate(gate('mean_squared_error', { max: 1 }), { mean_squared_error: 1.2 }, null)).toEqual({ pass: false, reason: 'mean_squared_error 1.2000 is above the maximum 1' })
    expect(passesGate(gate('log_loss', { max: 0.7, margin: 0.05 }), { log_loss: 0.6 }, { log_loss: 0.62 })).toEqual({
      pass: false, reason: 'log_loss 0.6000 does not beat the deployed model\'s 0.6200 by 0.05 (at most 0.5700 needed)',
    })
    expect(passesGate(gate('log_loss', { max: 0.7, margin: 0.05 }), { log_loss: 0.5 }, { log_loss: 0.62 })).toEqual({
      pass: true, reason: 'log_loss 0.5000 is at most 0.7 and beats the deployed model\'s 0.6200 by at least 0.05',
    })
  })

  it('says "at least" for a higher-is-better minimum', () => {
    expect(passesGate(gate('f1', { min: 0.55 }), { f1: 0.6 }, { f1: 0.5 })).toEqual({ pass: true, reason: 'f1 0.6000 is at least 0.55' })
    expect(passesGate(gate('f1', { min: 0.55 }), { f1: 0.5 }, null)).toEqual({ pass: false, reason: 'f1 0.5000 is below the minimum 0.55' })
  })

  it('never treats a bound on the wrong side as the other bound (a hand-built gate; the config refuses it)', () => {
    expect(passesGate(gate('mean_squared_error', { min: 2 }), { mean_squared_error: 1.5 }, null)).toMatchObject({ pass: false, reason: expect.stringMatching(/lower-is-better: give max/) })
  })

  it('tells a deployed model without the metric from no deployed model', () => {
    const verdict = passesGate(gate('roc_auc', { min: 0.6, margin: 0.01 }), { roc_auc: 0.7 }, { f1: 0.9 })
    expect(verdict).toEqual({ pass: true, reason: 'roc_auc 0.7000 is at least 0.6 (the deployed model has no metric "roc_auc" to compare with)' })
    expect(verdict.reason).not.toMatch(/no model deployed/)
    expect(passesGate(gate('f1', { margin: 0.01 }), { f1: 0.7 }, { f1: Number.NaN }).reason).toBe('f1 0.7000 (the deployed model\'s f1 is NaN: nothing to compare with)')
  })

  it('says a NaN metric is NaN, not missing', () => {
    const verdict = passesGate(gate('f1', { min: 0.5 }), { f1: Number.NaN, accuracy: 0.5 }, null)
    expect(verdict).toEqual({ pass: false, reason: 'the new model\'s f1 is NaN, not a number the gate can compare' })
    expect(passesGate(gate('f1'), { accuracy: 0.5 }, null)).toEqual({ pass: false, reason: 'the new model has no metric "f1" (it has accuracy)' })
  })
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
