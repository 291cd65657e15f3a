import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { materialize, train } from '../../src/features/ml.js'
import { createKit, type Kit } from '../../src/query/create-kit.js'
import { renderPredictOnline } from '../../src/sql/render-features.js'
import { TestProject } from '../helpers/project.js'
import { requireServerTier, tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * Serving with a real model (pgml_compat): a row dated tomorrow is not served today; as of a time
 * the offline table gives the training join's row; an entity without features is a result, and a
 * feature the model imputes (its `preprocess`) may be missing. The offline lookup is an index scan.
 */
requireServerTier()
const server = tiers.find((t) => t.name === 'server')!

const TABLES = `-- Up Migration
CREATE TABLE customer_events (customer_id int NOT NULL, event_ts timestamptz NOT NULL, created_ts timestamptz NOT NULL, spend double precision, visits double precision);
CREATE TABLE labels (customer_id int NOT NULL, label_ts timestamptz NOT NULL, churned int NOT NULL);
-- Down Migration
DROP TABLE customer_events; DROP TABLE labels;
`

/** 400 customers labelled in the last three weeks; spend a day before the label says the outcome (high spend: churned). */
const DATA = `SELECT setseed(0.7);
INSERT INTO labels SELECT c, now() - (2 + c % 20) * interval '1 day', (random() < 0.5)::int FROM generate_series(1, 400) AS c;
INSERT INTO customer_events
SELECT l.customer_id, l.label_ts - k * interval '1 day', l.label_ts - k * interval '1 day',
       10 + 80 * l.churned + 10 * (random() - 0.5), 5 - 3 * l.churned + (random() - 0.5)
FROM labels l, generate_series(1, 5) AS k;`

const CONFIG: PgmlKitConfig = {
  tables: {},
  features: {
    views: {
      customer_stats: {
        entities: 'customer_id', source: { table: 'customer_events' }, timestamp: 'event_ts', createdTimestamp: 'created_ts', ttl: '30 days',
        features: { spend: 'double precision', visits: 'double precision' },
      },
    },
    trainingSets: {
      churn: { labels: { table: 'labels' }, entities: 'customer_id', timestamp: 'label_ts', label: 'churned', features: ['customer_stats.spend', 'customer_stats.visits'] },
    },
  },
  models: {
    churn: { task: 'classification', relation: 'churn', algorithm: 'linear', testSize: 0.25, testSampling: 'random' },
    churn_imputed: { task: 'classification', relation: 'churn', algorithm: 'linear', testSize: 0.25, testSampling: 'random', preprocess: { visits: { impute: 'mean' } } },
  },
}

const BOTH = ['customer_stats.spend', 'customer_stats.visits']

describe('serving features to a model on the server (pgml_compat)', () => {
  let db: TestDatabase
  let client: pg.Client
  let pool: pg.Pool
  let kit: Kit<typeof CONFIG, Record<string, never>>
  const predict = async (project: string, features: (number | null)[]) =>
    (await client.query<{ p: number }>('SELECT pgml.predict($1::text, $2::real[]) AS p', [project, features])).rows[0]!.p

  beforeAll(async () => {
    db = await server.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', TABLES)
    await p.writeConfig(CONFIG)
    await p.generate('add-features')
    await db.query('CREATE EXTENSION IF NOT EXISTS pgml_compat CASCADE')
    await p.migrate()
    await db.query(DATA)
    client = new pg.Client({ connectionString: db.url })
    await client.connect()
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    await materialize(client, loaded.state)
    await train(client, loaded, 'churn')
    await train(client, loaded, 'churn_imputed')
    pool = new pg.Pool({ connectionString: db.url, max: 1 })
    kit = createKit(CONFIG, { db: new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) }) })
  }, 180_000)
  afterAll(async () => {
    await pool?.end()
    await client?.end()
    await db?.close()
  })

  it('serves as of now, never a row dated tomorrow; as of a time, the offline row the training join would give', async () => {
    // The model: low spend, not churned; high spend, churned.
    expect(await predict('churn', [10, 5])).toBe(0)
    expect(await predict('churn', [90, 2])).toBe(1)
    // Customer 9001: yesterday's row (low spend) and one dated tomorrow (high spend), in history;
    // the online table holding tomorrow's — the state a materialisation that takes the newest row leaves.
    await db.query(`INSERT INTO features.customer_stats_offline (customer_id, event_ts, created_ts, spend, visits) VALUES
      (9001, now() - interval '1 day', now(), 10, 5), (9001, now() + interval '1 day', now(), 90, 2)`)
    await db.query(`INSERT INTO features.customer_stats_online (customer_id, event_ts, created_ts, spend, visits, updated_at)
      VALUES (9001, now() + interval '1 day', now(), 90, 2, now())`)
    // Before: the classifier served 1 from tomorrow's row. As of now, the online table has nothing that holds yet.
    expect(await kit.predictOnline('churn', { customer_id: 9001 })).toEqual({ status: 'no-features', missing: BOTH })
    // As of now from the history: yesterday's row, what the model gives for it.
    expect(await kit.predictOnline('churn', { customer_id: 9001 }, { asOf: new Date() })).toEqual({ status: 'ok', prediction: 0, imputed: [] })
    // A materialised customer, as of its label's time: the training set's row for that label.
    const [label] = await db.query<{ label_ts: Date; spend: number; visits: number }>('SELECT label_ts, spend, visits FROM features.churn_audit WHERE customer_id = 7')
    expect(await kit.predictOnline('churn', { customer_id: 7 }, { asOf: label!.label_ts })).toEqual({ status: 'ok', prediction: await predict('churn', [label!.spend, label!.visits]), imputed: [] })
  })

  it('an unknown entity is a result, not pgml.predict\'s error; a feature the model imputes may be missing', async () => {
    expect(await kit.predictOnline('churn', { customer_id: 9999 })).toEqual({ status: 'no-features', missing: BOTH })
    expect(await kit.predictOnline('churn_imputed', { customer_id: 9999 })).toEqual({ status: 'no-features', missing: BOTH })
    await db.query(`INSERT INTO features.customer_stats_online (customer_id, event_ts, created_ts, spend, visits, updated_at)
      VALUES (9002, now() - interval '1 hour', now(), 90, NULL, now())`)
    expect(await kit.predictOnline('churn', { customer_id: 9002 })).toEqual({ status: 'no-features', missing: ['customer_stats.visits'] })
    // churn_imputed was trained with preprocess { visits: { impute: 'mean' } }: pgml.predict fills it as training did.
    expect(await kit.predictOnline('churn_imputed', { customer_id: 9002 })).toEqual({ status: 'ok', prediction: await predict('churn_imputed', [90, null]), imputed: ['customer_stats.visits'] })
  })

  it('reads the offline table as of a time by index, not by scanning the history', async () => {
    await db.query('ANALYZE features.customer_stats_offline')
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const set = loaded.state.trainingSets[0]!
    const sql = renderPredictOnline(set, loaded.state.featureViews, { at: 'asOf', imputed: new Set() })
    const plan = (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, ['churn', 7, new Date()])).rows.map((r) => r['QUERY PLAN']).join('\n')
    expect(plan).toMatch(/Index (Only )?Scan( Backward)? using \S+ on customer_stats_offline/)
    expect(plan).not.toMatch(/Seq Scan on customer_stats_offline/)
  })
})
