import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { listModels, materialize, train, trainSql } from '../../src/features/ml.js'
import { loadConfig } from '../../src/config/load.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { createKit } from '../../src/query/create-kit.js'
import { runCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { requireServerTier, tiers, withClient, type TestDatabase } from '../helpers/targets.js'

/**
 * End to end on the server with pgml_compat: a label that depends on time, materialised feature
 * views, a point-in-time training set, training with a deployment gate, online predictions — and
 * the same model trained on a leaky join (each customer's latest features, recorded after the
 * label) scoring far better than it could in production.
 */
const serverUrl = requireServerTier().url
const server = tiers.find((t) => t.name === 'server')!

const TABLES = `-- Up Migration
CREATE TABLE customer_events (customer_id int NOT NULL, event_ts timestamptz NOT NULL, created_ts timestamptz NOT NULL, spend double precision, visits double precision);
CREATE TABLE labels (customer_id int NOT NULL, label_ts timestamptz NOT NULL, churned int NOT NULL);
-- Down Migration
DROP TABLE customer_events; DROP TABLE labels;
`

/**
 * 600 customers, each labelled at its own time: churned or not at random. Before the label, spend
 * and visits carry a weak signal of the outcome; a week after it (once the customer has or has
 * not left) they carry a strong one. A join that ignores time sees the later rows.
 */
const DATA = `SELECT setseed(0.3);
INSERT INTO labels SELECT c, '2026-03-01'::timestamptz + (c % 30) * interval '1 day', (random() < 0.5)::int FROM generate_series(1, 600) AS c;
INSERT INTO customer_events
SELECT l.customer_id, l.label_ts - k * interval '3 days', l.label_ts - k * interval '3 days',
       100 + 8 * l.churned + 20 * (random() - 0.5), 10 - 1 * l.churned + 4 * (random() - 0.5)
FROM labels l, generate_series(1, 3) AS k;
INSERT INTO customer_events
SELECT l.customer_id, l.label_ts + interval '7 days', l.label_ts + interval '7 days',
       100 + 80 * l.churned + 10 * (random() - 0.5), 10 - 8 * l.churned + 2 * (random() - 0.5)
FROM labels l;`

/** The application's role: not the owner; granted by the migration only what online predictions read. */
const APP = `pgml_kit_app_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
/** A role that trains (roles.trainer), not the owner: granted by the migration what training on the training set reads and records. */
const TRAINER = `pgml_kit_trainer_${process.pid}_${Math.random().toString(36).slice(2, 8)}`

const config = (deploy: { metric: string; min?: number; margin?: number }): PgmlKitConfig => ({
  roles: { app: APP, trainer: TRAINER },
  tables: {},
  features: {
    views: {
      customer_stats: {
        // The data lies in the past; a TTL of ten years keeps the online rows servable today (the TTL itself is tested on both tiers).
        entities: 'customer_id', source: { table: 'customer_events' }, timestamp: 'event_ts', createdTimestamp: 'created_ts', ttl: '3650 days',
        features: { spend: 'double precision', visits: 'double precision' },
      },
    },
    trainingSets: {
      churn: { labels: { table: 'labels' }, entities: 'customer_id', timestamp: 'label_ts', label: 'churned', features: ['customer_stats.spend', 'customer_stats.visits'] },
    },
  },
  models: {
    // Served through the registry: predictOnline goes through pgml_kit.predict, the entity its key, and logs the request.
    churn: { task: 'classification', relation: 'churn', algorithm: 'linear', testSize: 0.25, testSampling: 'random', deploy, serving: { log: {} } },
    churn_leaky: { task: 'classification', relation: 'public.churn_leaky', target: 'churned', algorithm: 'linear', testSize: 0.25, testSampling: 'random' },
  },
})

describe('training as code on the server (pgml_compat)', () => {
  let db: TestDatabase
  let client: pg.Client
  beforeAll(async () => {
    db = await server.create()
    await db.query(`CREATE ROLE ${APP} LOGIN PASSWORD 'app'`)
    await db.query(`CREATE ROLE ${TRAINER} LOGIN PASSWORD 'trainer'`)
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', TABLES)
    await p.writeConfig(config({ metric: 'f1', min: 0.55 }))
    await p.generate('add-features')
    await db.query('CREATE EXTENSION IF NOT EXISTS pgml_compat CASCADE')
    await p.migrate()
    await db.query(DATA)
    client = new pg.Client({ connectionString: db.url })
    await client.connect()
  }, 120_000)
  afterAll(async () => {
    await client?.end()
    await db?.close()
    await withClient(serverUrl, async (c) => {
      await c.query(`DROP ROLE IF EXISTS ${APP}`)
      await c.query(`DROP ROLE IF EXISTS ${TRAINER}`)
    })
  })

  it('materialises, trains on the point-in-time set behind a gate, records lineage, deploys, predicts online; a leaky join scores unrealistically high', async () => {
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    expect(await materialize(client, loaded.state)).toEqual([expect.objectContaining({ view: 'customer_stats', offlineInserted: 2400, onlineUpserted: 600, fullRefresh: true })])

    // --dry-run prints exactly what train runs.
    const dry = await runCli(['train', 'churn', '--dry-run'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(dry.stdout.trim()).toBe(trainSql(loaded, 'churn'))
    expect(dry.stdout).toContain(`relation_name => '"features"."churn"'`)
    expect(dry.stdout).toContain('automatic_deploy => false')

    const first = await train(client, loaded, 'churn')
    expect(first.models).toHaveLength(1)
    const honest = first.models[0]!
    expect(first.gate).toMatch(new RegExp(`^deployed: model ${honest.id}: f1 0\\.\\d+ is at least 0\\.55`))
    expect(first.deployed).toBe(honest.id)
    // The mark: the materialisation the training read (its time, as the runs table records it).
    const [run] = await db.query<{ t: string }>("SELECT last_run_at::text AS t FROM features.pgml_kit_feature_runs WHERE view_name = 'customer_stats'")
    expect(honest.lineage).toMatchObject({ trainingSet: 'churn', featureViews: [{ name: 'customer_stats', highWaterMark: run!.t }] })

    // A second training that must beat the deployed model by 0.5 of f1 cannot: it is trained, not deployed.
    const strict = resolveConfig(config({ metric: 'f1', margin: 0.5 }))
    const second = await train(client, strict, 'churn')
    expect(second.gate).toMatch(/^not deployed: model \d+: f1 0\.\d+ does not beat the deployed model's 0\.\d+ by 0\.5/)
    expect(second.deployed).toBe(honest.id)
    const cli = (...args: string[]) => runCli(args, { cwd: db.cwd, databaseUrl: db.databaseUrl })
    const models = await cli('models', 'churn', '--lineage')
    expect(models.stdout).toMatch(/deployed/)
    expect(models.stdout).toMatch(/training set churn/)
    // By hand: the most recent model, then back to the first by id; nothing new to materialise.
    expect((await cli('deploy', 'churn', '--strategy', 'most_recent')).stdout).toMatch(new RegExp(`deployed model ${second.models[0]!.id} of churn`))
    expect((await cli('deploy', 'churn', '--model', String(honest.id))).stdout).toMatch(new RegExp(`deployed model ${honest.id} of churn`))
    expect((await cli('deploy', 'churn')).stderr).toMatch(/deploy needs exactly one of --strategy or --model/)
    expect((await cli('deploy', 'churn', '--model', '999999')).stderr).toMatch(/model 999999 is not a model of project "churn"/)
    expect((await cli('materialize')).stdout).toMatch(/materialized customer_stats \(0 changed entities\): offline \+0 −0 rows/)
    expect(JSON.parse((await cli('--json', 'training-set', 'churn', '--to', 'churn_snapshot')).stdout)).toEqual({ trainingSet: 'churn', table: 'churn_snapshot', rows: 600, columns: ['customer_id', 'label_ts', 'spend', 'visits', 'churned'] })

    // Online, as the application's role: one statement reads the online store with the training set's features.
    // USAGE on schema pgml is the DBA's to grant (pgml-kit did not install pgml here); the online table is granted by the migration.
    await db.query(`GRANT USAGE ON SCHEMA pgml TO ${APP}`)
    const asApp = new URL(db.url)
    asApp.username = APP
    asApp.password = 'app'
    await expect(withClient(asApp.toString(), (c) => c.query('SELECT count(*) FROM features.customer_stats_offline')))
      .rejects.toThrow(/permission denied for table customer_stats_offline/)
    const pool = new pg.Pool({ connectionString: asApp.toString(), max: 1 })
    const kit = createKit(config({ metric: 'f1' }), { db: new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) }) })
    try {
      const online = await kit.predictOnline('churn', { customer_id: 7 })
      const expected = await db.query<{ p: number }>(`SELECT pgml.predict('churn', ARRAY[spend, visits]::real[]) AS p FROM features.customer_stats_online WHERE customer_id = 7`)
      expect(online).toEqual({ status: 'ok', prediction: expected[0]!.p, imputed: [] })
      expect(await db.query(`SELECT arm, entity_key, prediction FROM pgml_kit.prediction_log WHERE project = 'churn'`)).toEqual([{ arm: 'champion', entity_key: '7', prediction: expected[0]!.p }])
      await expect(kit.predictOnline('churn', {})).rejects.toThrow(/needs customer_id; missing customer_id/)
    } finally {
      await pool.end()
    }

    // The leak: each customer's latest features, whenever they were recorded.
    await db.query(`CREATE TABLE churn_leaky AS SELECT o.spend, o.visits, l.churned FROM labels l JOIN features.customer_stats_online o USING (customer_id)`)
    const leaky = await train(client, loaded, 'churn_leaky')
    const leakyF1 = leaky.models[0]!.metrics.f1!
    const honestF1 = honest.metrics.f1!
    process.stderr.write(`[training] honest f1 ${honestF1} accuracy ${honest.metrics.accuracy}, leaky f1 ${leakyF1} accuracy ${leaky.models[0]!.metrics.accuracy}\n`)
    expect(leakyF1).toBeGreaterThan(0.95)
    expect(leakyF1 - honestF1).toBeGreaterThan(0.15)
    expect((await listModels(client, loaded, 'churn')).filter((m) => m.deployed).map((m) => m.id)).toEqual([honest.id])

    // The trainer (not the owner) trains on the training set: the migration granted it the set's
    // view, the materialisation marks and the lineage table; its model's lineage has the 600 rows.
    await db.query(`GRANT pgml_trainer TO ${TRAINER}`)
    const asTrainer = new URL(db.url)
    asTrainer.username = TRAINER
    asTrainer.password = 'trainer'
    const byTrainer = await withClient(asTrainer.toString(), (c) => train(c, loaded, 'churn'))
    expect(byTrainer.models).toHaveLength(1)
    expect(byTrainer.notes.filter((n) => /not permitted|may not|permission/i.test(n))).toEqual([])
    const trainerModel = byTrainer.models[0]!.id
    expect(await db.query(`SELECT training_set, feature_views->0->>'name' AS view FROM features.pgml_kit_model_lineage WHERE model_id = $1`, [trainerModel])).toEqual([{ training_set: 'churn', view: 'customer_stats' }])
    expect(await db.query(`SELECT row_count::int AS n, trained_by::text AS who, baseline IS NOT NULL AS baseline FROM pgml_kit.model_lineage WHERE model_id = $1`, [trainerModel])).toEqual([{ n: 600, who: TRAINER, baseline: true }])
  }, 240_000)
})
