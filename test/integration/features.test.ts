import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { materialize, materializeTrainingSet } from '../../src/features/ml.js'
import { TestProject } from '../helpers/project.js'
import { tiers, withClient as withUrlClient, type TestDatabase } from '../helpers/targets.js'

const TABLES = `-- Up Migration
CREATE TABLE customer_events (customer_id int NOT NULL, event_ts timestamptz NOT NULL, created_ts timestamptz NOT NULL, spend numeric, visits bigint);
CREATE TABLE labels (customer_id int NOT NULL, label_ts timestamptz NOT NULL, churned int NOT NULL);
-- Down Migration
DROP TABLE customer_events; DROP TABLE labels;
`

export const FEATURES_CONFIG: PgmlKitConfig = {
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
}

const day = (d: number, hour = 0) => `'2026-01-01'::timestamptz + interval '${d} days' + interval '${hour} hours'`

describe.each(tiers)('feature views and point-in-time training sets on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function setup() {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', TABLES)
    await p.writeConfig(FEATURES_CONFIG)
    await p.generate('add-features')
    await p.migrate()
    return { p, config: await loadConfig('pgml-kit.config.ts', db.cwd) }
  }

  const withClient = <T>(fn: (client: pg.Client) => Promise<T>) => withUrlClient(db.url, fn)

  it('never gives a label a feature from after its time; honours the TTL and the created-time tie-break; misses are NULL', async () => {
    const { config } = await setup()
    await db.query(`INSERT INTO customer_events VALUES
      (1, ${day(1)}, ${day(1)}, 10, 1), (1, ${day(5)}, ${day(5)}, 50, 5), (1, ${day(9)}, ${day(9)}, 90, 9),
      (2, ${day(3)}, ${day(3, 10)}, 20, 2), (2, ${day(3)}, ${day(3, 11)}, 30, 3),
      (3, ${day(1)}, ${day(1)}, 11, 1),
      (5, ${day(7)}, ${day(7)}, 70, 7)`)
    await db.query(`INSERT INTO labels VALUES (1, ${day(6)}, 1), (2, ${day(4)}, 0), (3, ${day(20)}, 1), (4, ${day(2)}, 0), (5, ${day(7)}, 1)`)
    expect(await withClient((c) => materialize(c, config.state))).toEqual([{ view: 'customer_stats', offlineInserted: 7, offlineDeleted: 0, onlineUpserted: 4, onlineDeleted: 0, entities: 4, fullRefresh: true }])

    const rows = await db.query<{ customer_id: number; spend: number | null; visits: number | null; churned: number }>('SELECT * FROM features.churn_audit ORDER BY customer_id')
    expect(rows.map((r) => [r.customer_id, r.spend, r.visits, r.churned])).toEqual([
      [1, 50, 5, 1], // day 5, not the day-9 row after the label
      [2, 30, 3, 0], // two rows at the same event time: the later created wins
      [3, null, null, 1], // the only row is 19 days old: past the 10-day TTL
      [4, null, null, 0], // no row at all
      [5, 70, 7, 1], // an event at the label's very time counts
    ])
    // No row anywhere sees a feature from after its label.
    expect(await db.query(`SELECT count(*)::int AS n FROM features.churn_audit WHERE customer_stats__event_timestamp > label_ts`)).toEqual([{ n: 0 }])
    // What pgml.train reads: the features in the config's order, then the label.
    expect(await db.query(`SELECT attname AS c FROM pg_attribute WHERE attrelid = 'features.churn'::regclass AND attnum > 0 ORDER BY attnum`)).toEqual([{ c: 'spend' }, { c: 'visits' }, { c: 'churned' }])

    expect(await withClient((c) => materializeTrainingSet(c, config.state, 'churn', 'public.churn_snapshot'))).toMatchObject({ rows: 5 })
    expect(await db.query('SELECT count(*)::int AS n FROM churn_snapshot WHERE spend IS NOT NULL')).toEqual([{ n: 3 }])
  })

  it('materialises incrementally and idempotently; the online store keeps the newest row per entity', async () => {
    const { config } = await setup()
    const run = () => withClient((c) => materialize(c, config.state, ['customer_stats']))
    await db.query(`INSERT INTO customer_events VALUES (1, ${day(5)}, ${day(5)}, 50, 5), (2, ${day(3)}, ${day(3)}, 20, 2)`)
    expect((await run())[0]).toMatchObject({ offlineInserted: 2, onlineUpserted: 2, fullRefresh: true })
    // Again: nothing changed, nothing written.
    expect((await run())[0]).toEqual({ view: 'customer_stats', offlineInserted: 0, offlineDeleted: 0, onlineUpserted: 0, onlineDeleted: 0, entities: 0, fullRefresh: false })
    // A late row: recorded now, but its event is older than the online row's — history gets it, the online store keeps the newer.
    await db.query(`INSERT INTO customer_events VALUES (1, ${day(2)}, ${day(8)}, 99, 9), (2, ${day(6)}, ${day(8)}, 60, 6)`)
    expect((await run())[0]).toMatchObject({ offlineInserted: 2, offlineDeleted: 0, onlineUpserted: 1, entities: 2, fullRefresh: false })
    expect(await db.query('SELECT customer_id, spend, visits FROM features.customer_stats_online ORDER BY customer_id')).toEqual([
      { customer_id: 1, spend: 50, visits: 5 }, { customer_id: 2, spend: 60, visits: 6 },
    ])
    expect(await db.query('SELECT count(*)::int AS n FROM features.customer_stats_offline')).toEqual([{ n: 4 }])
    await expect(withClient((c) => materialize(c, config.state, ['nope']))).rejects.toThrow(/no feature view "nope" in the config/)
  })

  it('works with hostile but legal names everywhere: schema, view, entity, timestamps, features, training set', async () => {
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
        views: { 'v; DROP TABLE x': { entities: 'Cust;Id', source: { table: 'Ev "ents"' }, timestamp: 'at time', features: { '$1 spend': 'double precision' } } },
        trainingSets: { "set's": { labels: { table: 'la-bels' }, entities: 'Cust;Id', timestamp: 'when?', label: "y'", features: ['v; DROP TABLE x.$1 spend'] } },
      },
    }
    await p.writeConfig(hostile)
    await p.generate('hostile')
    await p.migrate()
    const config = await loadConfig('pgml-kit.config.ts', db.cwd)
    await db.query(`INSERT INTO "Ev ""ents""" VALUES (1, ${day(1)}, 10), (1, ${day(5)}, 50)`)
    await db.query(`INSERT INTO "la-bels" VALUES (1, ${day(3)}, 1)`)
    expect(await withClient((c) => materialize(c, config.state))).toEqual([expect.objectContaining({ offlineInserted: 2, onlineUpserted: 1 })])
    expect(await db.query(`SELECT * FROM "feat ""ures"."set's"`)).toEqual([{ '$1 spend': 10, "y'": 1 }])
    await p.migrate('down', 1)
    expect(await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'feat "ures'`)).toEqual([{ n: 0 }])
  })

  it('reverts: down removes the views, tables, function and schema', async () => {
    const { p } = await setup()
    await p.migrate('down', 1)
    expect(await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'features'`)).toEqual([{ n: 0 }])
  })
})
