import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { materialize, materializeTrainingSet } from '../../src/features/ml.js'
import { createKit } from '../../src/query/create-kit.js'
import { runCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { tiers, withClient as withUrlClient, type TestDatabase } from '../helpers/targets.js'

/**
 * Serving: `kit.predictOnline` reads features as of the request's time (never a row dated after
 * it), or as of `asOf` from the offline table with exactly the training join's semantics; an
 * entity without features gets a typed answer and pgml.predict is not called. `pgml.predict` is a
 * stand-in here (both tiers; the real one on the server: test/server/feature-serving.test.ts) that
 * records each call and returns the first feature, so a prediction says which row was served.
 */

const TABLES = `-- Up Migration
CREATE TABLE customer_events (customer_id int NOT NULL, event_ts timestamptz NOT NULL, created_ts timestamptz, spend numeric, visits bigint);
CREATE TABLE labels (customer_id int NOT NULL, label_ts timestamptz NOT NULL, churned int NOT NULL);
-- Down Migration
DROP TABLE customer_events; DROP TABLE labels;
`

const CONFIG: PgmlKitConfig = {
  tables: {},
  features: {
    views: {
      customer_stats: {
        entities: 'customer_id', source: { table: 'customer_events' }, timestamp: 'event_ts', createdTimestamp: 'created_ts', ttl: '10 days',
        features: { spend: 'double precision', visits: 'integer' },
      },
    },
    trainingSets: {
      churn: { labels: { table: 'labels' }, entities: 'customer_id', timestamp: 'label_ts', label: 'churned', features: ['customer_stats.spend', 'customer_stats.visits'] },
    },
  },
  models: { churn: { task: 'classification', relation: 'churn' } },
}

const STUB_PREDICT = `CREATE SCHEMA pgml;
CREATE TABLE pgml.calls (features real[]);
CREATE FUNCTION pgml.predict(project_name text, features real[]) RETURNS real LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pgml.calls VALUES (features);
  RETURN coalesce(features[1], -1);
END $$;`

const BOTH = ['customer_stats.spend', 'customer_stats.visits']
const day = (d: number, hour = 0) => `'2026-01-01'::timestamptz + interval '${d} days' + interval '${hour} hours'`
const at = (d: number, hour = 0) => new Date(Date.UTC(2026, 0, 1 + d, hour))

describe.each(tiers)('serving features on the $name tier', (tier) => {
  let db: TestDatabase
  let pool: pg.Pool | undefined
  afterEach(async () => {
    await pool?.end()
    pool = undefined
    await db?.close()
  })

  async function setup() {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', TABLES)
    await p.writeConfig(CONFIG)
    await p.generate('add-features')
    await p.migrate()
    await db.query(STUB_PREDICT)
    pool = new pg.Pool({ connectionString: db.url, max: 1 })
    const kit = createKit(CONFIG, { db: new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) }) })
    return { p, kit, config: await loadConfig('pgml-kit.config.ts', db.cwd) }
  }
  const calls = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml.calls'))[0]!.n

  it('serves as of now: never a row dated after the request, nor one past the TTL; no features is a result, not an error, and pgml.predict is not called', async () => {
    const { kit } = await setup()
    // The online table in the state a materialisation may have left it: one row per entity.
    await db.query(`INSERT INTO features.customer_stats_online (customer_id, event_ts, created_ts, spend, visits, updated_at) VALUES
      (1, now() + interval '1 day', now(), 90, 9, now()),       -- dated tomorrow: not a fact yet
      (2, now() - interval '1 day', now(), 20, 2, now()),       -- yesterday: served
      (3, now() - interval '11 days', now(), 30, 3, now()),     -- past the 10-day TTL
      (5, now() - interval '1 hour', now(), NULL, 5, now())     -- a row, but its spend is NULL`)
    expect(await kit.predictOnline('churn', { customer_id: 1 })).toEqual({ status: 'no-features', missing: BOTH })
    expect(await calls()).toBe(0)
    expect(await kit.predictOnline('churn', { customer_id: 2 })).toEqual({ status: 'ok', prediction: 20, imputed: [] })
    expect(await calls()).toBe(1)
    expect(await kit.predictOnline('churn', { customer_id: 3 })).toEqual({ status: 'no-features', missing: BOTH })
    expect(await kit.predictOnline('churn', { customer_id: 4 })).toEqual({ status: 'no-features', missing: BOTH })
    expect(await kit.predictOnline('churn', { customer_id: 5 })).toEqual({ status: 'no-features', missing: ['customer_stats.spend'] })
    expect(await calls()).toBe(1)
    await expect(kit.predictOnline('churn', { customer_id: 2 }, { asOf: new Date(Number.NaN) })).rejects.toThrow(/asOf must be a valid Date/)
  })

  it('serves as of a time from the offline table with exactly the training join: the same features as the training set for every label', async () => {
    const { kit, config } = await setup()
    await db.query(`INSERT INTO customer_events VALUES
      (1, ${day(1)}, ${day(1)}, 10, 1), (1, ${day(5)}, ${day(5)}, 50, 5), (1, ${day(9)}, ${day(9)}, 90, 9),
      (2, ${day(3)}, ${day(3, 10)}, 20, 2), (2, ${day(3)}, ${day(3, 11)}, 30, 3), (2, ${day(3)}, NULL, 40, 4),
      (3, ${day(1)}, ${day(1)}, 11, 1),
      (5, ${day(7)}, ${day(7)}, 70, 7)`)
    await db.query(`INSERT INTO labels VALUES (1, ${day(6)}, 1), (2, ${day(4)}, 0), (3, ${day(20)}, 1), (4, ${day(2)}, 0), (5, ${day(7)}, 1), (1, ${day(0)}, 0)`)
    await withUrlClient(db.url, (c) => materialize(c, config.state))

    const audit = await db.query<{ customer_id: number; label_ts: Date; spend: number | null; visits: number | null }>('SELECT customer_id, label_ts, spend, visits FROM features.churn_audit ORDER BY customer_id, label_ts')
    const served = []
    for (const row of audit) served.push(await kit.predictOnline('churn', { customer_id: row.customer_id }, { asOf: row.label_ts }))
    expect(served).toEqual(audit.map((r) => (r.spend === null ? { status: 'no-features', missing: BOTH } : { status: 'ok', prediction: r.spend, imputed: [] })))
    expect(served).toEqual([
      { status: 'no-features', missing: BOTH }, // customer 1 on day 0: nothing yet
      { status: 'ok', prediction: 50, imputed: [] }, // day 5, not the day-9 row after the label
      { status: 'ok', prediction: 30, imputed: [] }, // same event time: the later created wins, a NULL created time last
      { status: 'no-features', missing: BOTH }, // the only row is 19 days old
      { status: 'no-features', missing: BOTH }, // no row at all
      { status: 'ok', prediction: 70, imputed: [] }, // an event at the very time counts
    ])
    // The TTL's bound is inclusive, as in the training join: 10 days after day 1 still serves it, a millisecond later not.
    expect(await kit.predictOnline('churn', { customer_id: 3 }, { asOf: at(11) })).toEqual({ status: 'ok', prediction: 11, imputed: [] })
    expect(await kit.predictOnline('churn', { customer_id: 3 }, { asOf: new Date(at(11).getTime() + 1) })).toEqual({ status: 'no-features', missing: BOTH })
    expect(await calls()).toBe(4)
  })

  it('serves and copies with hostile but legal names everywhere', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', `-- Up Migration
CREATE TABLE "Ev ""ents""" ("Cust;Id" int NOT NULL, "at time" timestamptz NOT NULL, "$1 spend" numeric);
CREATE TABLE "la-bels" ("Cust;Id" int NOT NULL, "when?" timestamptz NOT NULL, "y'" int NOT NULL);
-- Down Migration
DROP TABLE "Ev ""ents"""; DROP TABLE "la-bels";
`)
    const hostile: PgmlKitConfig = {
      tables: {},
      features: {
        schema: 'feat "ures',
        views: { 'v; DROP TABLE x': { entities: 'Cust;Id', source: { table: 'Ev "ents"' }, timestamp: 'at time', ttl: '2 days', features: { '$1 spend': 'double precision' } } },
        trainingSets: { "set's": { labels: { table: 'la-bels' }, entities: 'Cust;Id', timestamp: 'when?', label: "y'", features: ['v; DROP TABLE x.$1 spend'] } },
      },
      models: { "m'1": { task: 'regression', relation: "set's" } },
    }
    await p.writeConfig(hostile)
    await p.generate('hostile')
    await p.migrate()
    await db.query(STUB_PREDICT)
    const config = await loadConfig('pgml-kit.config.ts', db.cwd)
    await db.query(`INSERT INTO "Ev ""ents""" VALUES (1, now() - interval '1 hour', 10), (1, now() - interval '3 days', 30)`)
    await db.query(`INSERT INTO "la-bels" VALUES (1, now(), 1)`)
    await withUrlClient(db.url, (c) => materialize(c, config.state))
    pool = new pg.Pool({ connectionString: db.url, max: 1 })
    const kit = createKit(hostile, { db: new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) }) })
    expect(await kit.predictOnline("m'1", { 'Cust;Id': 1 })).toEqual({ status: 'ok', prediction: 10, imputed: [] })
    expect(await kit.predictOnline("m'1", { 'Cust;Id': 1 }, { asOf: new Date(Date.now() - 2 * 86_400_000) })).toEqual({ status: 'ok', prediction: 30, imputed: [] })
    expect(await kit.predictOnline("m'1", { 'Cust;Id': 2 })).toEqual({ status: 'no-features', missing: ['v; DROP TABLE x.$1 spend'] })
    expect(await withUrlClient(db.url, (c) => materializeTrainingSet(c, config.state, "set's", 'feat "ures.copy; x'))).toEqual({ table: 'feat "ures.copy; x', rows: 1, columns: ['Cust;Id', 'when?', '$1 spend', "y'"] })
    expect(await db.query(`SELECT "Cust;Id", "$1 spend" FROM "feat ""ures"."copy; x"`)).toEqual([{ 'Cust;Id': 1, '$1 spend': 10 }])
  })

  it('training-set --to keeps the entity keys and the label time beside the features and the label, and says which columns it wrote', async () => {
    const { config } = await setup()
    await db.query(`INSERT INTO customer_events VALUES (1, ${day(1)}, ${day(1)}, 10, 1), (2, ${day(3)}, ${day(3)}, 20, 2)`)
    await db.query(`INSERT INTO labels VALUES (1, ${day(2)}, 1), (2, ${day(4)}, 0), (3, ${day(4)}, 1)`)
    await withUrlClient(db.url, (c) => materialize(c, config.state))
    const columns = ['customer_id', 'label_ts', 'spend', 'visits', 'churned']
    expect(await withUrlClient(db.url, (c) => materializeTrainingSet(c, config.state, 'churn', 'public.churn_copy'))).toEqual({ table: 'public.churn_copy', rows: 3, columns })
    expect(await db.query(`SELECT attname AS c FROM pg_attribute WHERE attrelid = 'public.churn_copy'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)).toEqual(columns.map((c) => ({ c })))
    // Joins back to the labels it came from.
    expect(await db.query('SELECT c.customer_id, c.spend, c.churned FROM churn_copy c JOIN labels l USING (customer_id, label_ts) ORDER BY 1')).toEqual([
      { customer_id: 1, spend: 10, churned: 1 }, { customer_id: 2, spend: 20, churned: 0 }, { customer_id: 3, spend: null, churned: 1 },
    ])
    const cli = (...args: string[]) => runCli(args, { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(JSON.parse((await cli('--json', 'training-set', 'churn', '--to', 'churn_cli')).stdout)).toEqual({ trainingSet: 'churn', table: 'churn_cli', rows: 3, columns })
    const human = await cli('training-set', 'churn', '--to', 'churn_cli2')
    expect(human.stdout).toContain('wrote 3 rows of training set churn to churn_cli2: customer_id, label_ts, spend, visits, churned')
    expect(human.stdout).toMatch(/train on "features"\."churn"/)
  })
})
