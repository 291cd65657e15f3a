import { afterEach, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { runCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * Mistakes in how the feature and training commands are called exit 2 (the usage code), and a
 * gate that names a metric pgml never records is refused before anything trains. What these
 * commands do on a database is tested on the server tier (test/server/training*.test.ts).
 */
const embedded = tiers.find((t) => t.name === 'embedded')!

const withModels = (deploy: { metric: string; min?: number; max?: number }): PgmlKitConfig => ({
  tables: {},
  features: {
    views: { customer_stats: { entities: 'customer_id', source: { table: 'customer_events' }, timestamp: 'event_ts', features: { spend: 'double precision' } } },
    trainingSets: { churn: { labels: { table: 'labels' }, entities: 'customer_id', timestamp: 'label_ts', label: 'churned', features: ['customer_stats.spend'] } },
  },
  models: { houses: { task: 'regression', relation: 'houses', target: 'price', algorithm: 'linear', deploy } },
})

describe('feature and training commands: usage errors', () => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  it('an unknown feature view, training set or model project exits 2, naming what there is', async () => {
    db = await embedded.create()
    await new TestProject(db).writeConfig(withModels({ metric: 'r2', min: 0.5 }))
    const cli = (...args: string[]) => runCli(args, { cwd: db.cwd, databaseUrl: db.databaseUrl })
    const view = await cli('materialize', 'nosuch')
    expect([view.code, view.stderr]).toEqual([2, expect.stringContaining('no feature view "nosuch" in the config')])
    expect(view.stderr).toContain('feature views: customer_stats')
    const set = await cli('training-set', 'nosuch', '--to', 't')
    expect([set.code, set.stderr]).toEqual([2, expect.stringContaining('no training set "nosuch" in the config')])
    const model = await cli('train', 'nosuch')
    expect([model.code, model.stderr]).toEqual([2, expect.stringContaining('no model "nosuch" in the config')])
    const dry = await cli('train', 'nosuch', '--dry-run')
    expect([dry.code, dry.stderr]).toEqual([2, expect.stringContaining('models: houses')])
    const json = await cli('--json', 'materialize', 'nosuch')
    expect([json.code, JSON.parse(json.stdout).error.code]).toEqual([2, 'FEATURE_VIEW_UNKNOWN'])
  }, 60_000)

  it('a gate metric pgml does not record is refused by generate --check and train --dry-run, at models.<project>.deploy.metric', async () => {
    db = await embedded.create()
    await new TestProject(db).writeConfig(withModels({ metric: 'mse', max: 1 }))
    for (const args of [['generate', '--check'], ['train', 'houses', '--dry-run']]) {
      const result = await runCli(args, { cwd: db.cwd, databaseUrl: db.databaseUrl })
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2)
      expect(result.stderr).toContain('models.houses.deploy.metric: "mse" is not a metric pgml records for regression models; it records r2, mean_absolute_error, mean_squared_error')
      expect(result.stdout).not.toContain('pgml.train')
    }
    await new TestProject(db).writeConfig(withModels({ metric: 'mean_squared_error', min: 1 }))
    const min = await runCli(['train', 'houses', '--dry-run'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect([min.code, min.stderr]).toEqual([2, expect.stringContaining('models.houses.deploy.min: mean_squared_error is lower-is-better')])
  }, 60_000)
})
