import { copyFile, mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { materialize } from '../../src/features/ml.js'
import { checkFeatures } from '../../src/features/check.js'
import { runCli } from '../helpers/cli.js'
import type { DesiredState } from '../../src/model/ir.js'
import { TestProject } from '../helpers/project.js'
import { tiers, withClient as withUrlClient, type TestDatabase } from '../helpers/targets.js'

/**
 * Change capture: every committed insert, update, delete and truncate of a feature view's source
 * reaches the offline and online tables, whatever its timestamps and however long its transaction
 * ran. Each case below lost data with the old high-water-mark materialisation (issue 25).
 */

const TABLES = `-- Up Migration
CREATE TABLE customer_events (id serial PRIMARY KEY, customer_id int, event_ts timestamptz NOT NULL, created_ts timestamptz DEFAULT now(), spend numeric, visits bigint);
CREATE TABLE labels (customer_id int NOT NULL, label_ts timestamptz NOT NULL, churned int NOT NULL);
-- Down Migration
DROP TABLE customer_events; DROP TABLE labels;
`

function featuresConfig(source: { table: string } | { sql: string }, ttl = '1000 days'): PgmlKitConfig {
  return {
    tables: {},
    features: {
      views: {
        customer_stats: {
          entities: 'customer_id', source, timestamp: 'event_ts', createdTimestamp: 'created_ts', ttl,
          features: { spend: 'double precision', visits: 'integer' },
        },
      },
      trainingSets: { churn: { labels: { table: 'labels' }, entities: 'customer_id', timestamp: 'label_ts', label: 'churned', features: ['customer_stats.spend', 'customer_stats.visits'] } },
    },
  }
}

const day = (d: number) => `'2026-01-01'::timestamptz + interval '${d} days'`

type Row = [number, string, string | null, number | null, number | null]

/** Source rows as the view defines them (entity key not NULL), from the source itself: the reference. */
async function sourceRows(db: TestDatabase): Promise<Row[]> {
  const rows = await db.query<{ customer_id: number; event_ts: Date; created_ts: Date | null; spend: string | null; visits: string | null }>(
    'SELECT customer_id, event_ts, created_ts, spend, visits FROM customer_events WHERE customer_id IS NOT NULL')
  return rows.map((r) => [r.customer_id, r.event_ts.toISOString(), r.created_ts?.toISOString() ?? null, r.spend === null ? null : Number(r.spend), r.visits === null ? null : Number(r.visits)])
}

async function storedRows(db: TestDatabase, table: 'offline' | 'online'): Promise<Row[]> {
  const rows = await db.query<{ customer_id: number; event_ts: Date; created_ts: Date | null; spend: number | null; visits: number | null }>(
    `SELECT customer_id, event_ts, created_ts, spend, visits FROM features.customer_stats_${table}`)
  return rows.map((r) => [r.customer_id, r.event_ts.toISOString(), r.created_ts?.toISOString() ?? null, r.spend, r.visits])
}

const sorted = (rows: Row[]) => rows.map((r) => JSON.stringify(r)).sort()

/**
 * Offline equals the source row for row; online holds, per entity, one of the newest rows (event
 * time, then created time, NULL last) whose event time has come, and nothing for other entities.
 * Computed here in TypeScript from the source rows, independently of the SQL under test.
 */
async function expectInStep(db: TestDatabase): Promise<void> {
  const source = await sourceRows(db)
  expect(sorted(await storedRows(db, 'offline'))).toEqual(sorted(source))
  const now = Date.now()
  const byEntity = new Map<number, Row[]>()
  for (const r of source) if (Date.parse(r[1]) <= now) byEntity.set(r[0], [...(byEntity.get(r[0]) ?? []), r])
  const online = await storedRows(db, 'online')
  expect(online.map((r) => r[0]).sort()).toEqual([...byEntity.keys()].sort())
  for (const row of online) {
    const rows = byEntity.get(row[0])!
    const key = (r: Row) => [r[1], r[2] ?? ''] as const
    const best = rows.reduce((a, b) => (key(b)[0] > key(a)[0] || (key(b)[0] === key(a)[0] && key(b)[1] > key(a)[1]) ? b : a))
    const candidates = rows.filter((r) => r[1] === best[1] && r[2] === best[2]).map((r) => JSON.stringify(r))
    expect(candidates, `online row of entity ${row[0]}`).toContain(JSON.stringify(row))
  }
}

/** The migrations and snapshot the previous release (1790819) generated for this config: a view before change capture. */
async function copyPreviousRelease(p: TestProject): Promise<void> {
  const fixture = join(import.meta.dirname, '../fixtures/feature-view-before-capture')
  await mkdir(p.migrationsDir, { recursive: true })
  for (const file of await readdir(fixture)) await copyFile(join(fixture, file), join(p.migrationsDir, file))
}

describe.each(tiers)('feature view change capture on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function setup(source: { table: string } | { sql: string } = { table: 'customer_events' }): Promise<{ p: TestProject; state: DesiredState }> {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', TABLES)
    await p.writeConfig(featuresConfig(source))
    await p.generate('add-features')
    await p.migrate()
    return { p, state: (await loadConfig('pgml-kit.config.ts', db.cwd)).state }
  }
  const run = (state: DesiredState, options: { full?: boolean } = {}) => withUrlClient(db.url, (c) => materialize(c, state, [], options)).then((r) => r[0]!)
  const training = () => db.query<{ customer_id: number; spend: number | null }>('SELECT customer_id, spend FROM features.churn_audit ORDER BY customer_id')

  it('a historical backfill (old event and created time, inserted after a run) reaches offline, online and training', async () => {
    const { state } = await setup()
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (1, ${day(1)}, ${day(1)}, 0.35, 1), (1, ${day(20)}, ${day(20)}, 0.9, 9)`)
    await db.query(`INSERT INTO labels VALUES (1, ${day(12)}, 1)`)
    await run(state)
    expect(await training()).toEqual([{ customer_id: 1, spend: 0.35 }])
    // Inserted today for an event on day 10, recorded (by its own clock) on day 10: older than the mark the old code kept.
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (1, ${day(10)}, ${day(10)}, 0.5, 5)`)
    expect(await run(state)).toMatchObject({ offlineInserted: 1, offlineDeleted: 0, entities: 1, fullRefresh: false })
    expect(await training()).toEqual([{ customer_id: 1, spend: 0.5 }])
    await expectInStep(db)
  })

  it('rows with a NULL created time, updates in place and deletes all reach the stores; a TRUNCATE empties them', async () => {
    const { state } = await setup()
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (1, ${day(1)}, ${day(1)}, 0.2, 2), (2, ${day(2)}, NULL, 0.3, 3), (3, ${day(3)}, ${day(3)}, 0.4, 4), (NULL, ${day(3)}, ${day(3)}, 9, 9)`)
    await db.query(`INSERT INTO labels VALUES (1, ${day(5)}, 1), (2, ${day(5)}, 0), (3, ${day(5)}, 1)`)
    expect(await run(state)).toMatchObject({ offlineInserted: 3, onlineUpserted: 3, fullRefresh: true })
    await expectInStep(db)
    // A corrected value, same timestamps.
    await db.query('UPDATE customer_events SET spend = 0.21 WHERE customer_id = 1')
    // A NULL created time, inserted after the first run.
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (2, ${day(4)}, NULL, 0.33, 3)`)
    // Every row of an entity deleted.
    await db.query('DELETE FROM customer_events WHERE customer_id = 3')
    // An update that changes nothing the view reads logs nothing.
    await db.query('UPDATE customer_events SET id = id WHERE customer_id = 2')
    expect(await db.query('SELECT count(*)::int AS n FROM features.customer_stats_changes')).toEqual([{ n: 3 }])
    expect(await run(state)).toMatchObject({ offlineInserted: 2, offlineDeleted: 2, onlineUpserted: 2, onlineDeleted: 1, entities: 3 })
    expect(await db.query('SELECT customer_id, spend FROM features.customer_stats_online ORDER BY 1')).toEqual([{ customer_id: 1, spend: 0.21 }, { customer_id: 2, spend: 0.33 }])
    expect(await training()).toEqual([{ customer_id: 1, spend: 0.21 }, { customer_id: 2, spend: 0.33 }, { customer_id: 3, spend: null }])
    await expectInStep(db)
    // An entity moved to another key: both keys are re-read.
    await db.query('UPDATE customer_events SET customer_id = 4 WHERE customer_id = 1')
    expect(await run(state)).toMatchObject({ entities: 2, onlineUpserted: 1, onlineDeleted: 1 })
    await expectInStep(db)
    await db.query('TRUNCATE customer_events')
    expect(await run(state)).toMatchObject({ fullRefresh: true, offlineDeleted: 3, onlineDeleted: 2 })
    await expectInStep(db)
    expect(await db.query('SELECT count(*)::int AS n FROM features.customer_stats_offline')).toEqual([{ n: 0 }])
  })

  it('a row whose event lies in the future is not served until its time comes, then the next run serves it', async () => {
    const { state } = await setup()
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (1, now() - interval '1 day', now(), 1, 1), (1, clock_timestamp() + interval '2 seconds', now(), 2, 2), (2, clock_timestamp() + interval '2 seconds', now(), 3, 3)`)
    expect(await run(state)).toMatchObject({ offlineInserted: 3, onlineUpserted: 1 })
    expect(await db.query('SELECT customer_id, spend FROM features.customer_stats_online')).toEqual([{ customer_id: 1, spend: 1 }])
    await new Promise((resolve) => setTimeout(resolve, 2500))
    // Nothing changed in the source: the rows that came due are promoted.
    expect(await run(state)).toMatchObject({ entities: 0, offlineInserted: 0, onlineUpserted: 2 })
    expect(await db.query('SELECT customer_id, spend FROM features.customer_stats_online ORDER BY 1')).toEqual([{ customer_id: 1, spend: 2 }, { customer_id: 2, spend: 3 }])
    await expectInStep(db)
  })

  it('a source given as SQL is compared whole on every run: updates and deletes propagate', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', TABLES)
    // The materialize function's search_path is pinned: an unqualified table is refused at generate time.
    await p.writeConfig(featuresConfig({ sql: 'WITH e AS (SELECT * FROM customer_events) SELECT * FROM e' }))
    await expect(p.generate('add-features')).rejects.toThrow(/features\.views\.customer_stats\.source\.sql: names "customer_events" without a schema/)
    await db.close()
    const { state } = await setup({ sql: 'SELECT customer_id, event_ts, created_ts, spend, visits FROM public.customer_events WHERE visits >= 0' })
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (1, ${day(1)}, ${day(1)}, 0.2, 2), (2, ${day(2)}, ${day(2)}, 0.3, 3)`)
    expect(await run(state)).toMatchObject({ offlineInserted: 2, fullRefresh: true })
    await db.query('UPDATE customer_events SET spend = 0.25 WHERE customer_id = 1')
    await db.query('UPDATE customer_events SET visits = -1 WHERE customer_id = 2')
    expect(await run(state)).toMatchObject({ offlineInserted: 1, offlineDeleted: 2, onlineUpserted: 1, onlineDeleted: 1, fullRefresh: true })
    expect(await db.query('SELECT customer_id, spend FROM features.customer_stats_online')).toEqual([{ customer_id: 1, spend: 0.25 }])
    expect(await run(state)).toMatchObject({ offlineInserted: 0, offlineDeleted: 0, onlineUpserted: 0, onlineDeleted: 0 })
  })

  it('materialize --full finds and fixes what bypassed the triggers, and reports it; writers need no grant on the change log', async () => {
    const { state } = await setup()
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (1, ${day(1)}, ${day(1)}, 0.2, 2), (2, ${day(2)}, ${day(2)}, 0.3, 3)`)
    await run(state)
    // A bulk load with triggers off (as pg_restore --disable-triggers would): the change log misses it.
    await db.query(`ALTER TABLE customer_events DISABLE TRIGGER USER; INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (3, ${day(3)}, ${day(3)}, 0.4, 4); DELETE FROM customer_events WHERE customer_id = 1; ALTER TABLE customer_events ENABLE TRIGGER USER`)
    expect(await run(state)).toMatchObject({ entities: 0, offlineInserted: 0 })
    expect(await run(state, { full: true })).toEqual({ view: 'customer_stats', offlineInserted: 1, offlineDeleted: 1, onlineUpserted: 1, onlineDeleted: 1, entities: 2, fullRefresh: true })
    await expectInStep(db)
    expect(await run(state, { full: true })).toMatchObject({ offlineInserted: 0, offlineDeleted: 0, onlineUpserted: 0, onlineDeleted: 0 })
    // status --drift sees a disabled capture trigger, says what it loses and how to recover.
    await db.query('ALTER TABLE customer_events DISABLE TRIGGER pgml_kit_capture_customer_stats_update')
    const drift = await runCli(['status', '--drift'], { cwd: db.cwd, databaseUrl: db.url })
    expect(drift.code, drift.stdout + drift.stderr).toBe(1)
    expect(drift.stdout + drift.stderr).toMatch(/pgml_kit_capture_customer_stats_update on public\.customer_events[\s\S]*disabled: changes of public\.customer_events are not logged for feature view customer_stats/)
    expect(drift.stdout + drift.stderr).toMatch(/ENABLE TRIGGER "pgml_kit_capture_customer_stats_update";[\s\S]*pgml-kit materialize customer_stats --full/)
    await db.query('ALTER TABLE customer_events ENABLE REPLICA TRIGGER pgml_kit_capture_customer_stats_update')
    const replica = await runCli(['status', '--drift'], { cwd: db.cwd, databaseUrl: db.url })
    expect(replica.stdout + replica.stderr).toMatch(/enabled for replica sessions only: changes of public\.customer_events are not logged/)
    await db.query('ALTER TABLE customer_events ENABLE TRIGGER pgml_kit_capture_customer_stats_update')
    // A capture function replaced by hand is found, and the printed fix restores it.
    await db.query('CREATE OR REPLACE FUNCTION features.capture_customer_stats() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ BEGIN RETURN NULL; END $$')
    const replaced = await runCli(['status', '--drift', '--json'], { cwd: db.cwd, databaseUrl: db.url })
    const item = (JSON.parse(replaced.stdout) as { drift: { object: string; problem: string; fix: string }[] }).drift.find((d) => d.object === 'features.capture_customer_stats()')!
    expect(item.problem).toMatch(/its body is not the one pgml-kit generated/)
    await db.query(item.fix.replace(/-- then.*$/s, ''))
    const clean = await runCli(['status', '--drift'], { cwd: db.cwd, databaseUrl: db.url })
    expect(clean.code, clean.stdout + clean.stderr).toBe(0)
    // The capture function cannot be attached elsewhere by another role, nor called.
    expect(await db.query(`SELECT has_function_privilege('public', 'features.capture_customer_stats()', 'EXECUTE') AS x`)).toEqual([{ x: false }])
  })

  it('random inserts, updates, deletes and late commits interleaved with runs: offline and online equal a recomputation from the source', async () => {
    const { state } = await setup()
    const seed = Number(process.env.PGML_KIT_TEST_SEED ?? Date.now() % 100_000)
    let s = seed
    const rand = (n: number) => { s = (s * 1_103_515_245 + 12_345) % 2_147_483_648; return s % n }
    const value = () => (rand(10) === 0 ? 'NULL' : String(rand(1000) / 100))
    const created = () => (rand(6) === 0 ? 'NULL' : day(rand(30)))
    const event = () => (rand(15) === 0 ? `now() + interval '${1 + rand(5)} days'` : day(rand(30)))
    const entity = () => (rand(25) === 0 ? 'NULL' : String(1 + rand(12)))
    const statement = () => {
      switch (rand(7)) {
        case 0: case 1: return `INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES ${Array.from({ length: 1 + rand(4) }, () => `(${entity()}, ${event()}, ${created()}, ${value()}, ${rand(20)})`).join(', ')}`
        case 2: return `UPDATE customer_events SET spend = ${value()} WHERE id % 7 = ${rand(7)}`
        case 3: return `UPDATE customer_events SET event_ts = ${event()}, created_ts = ${created()} WHERE id = (SELECT id FROM customer_events ORDER BY id OFFSET ${rand(10)} LIMIT 1)`
        case 4: return `UPDATE customer_events SET customer_id = ${entity()} WHERE customer_id = ${1 + rand(12)}`
        case 5: return `DELETE FROM customer_events WHERE id % 11 = ${rand(11)}`
        default: return `DELETE FROM customer_events WHERE customer_id = ${1 + rand(12)}`
      }
    }
    // On the server, a second connection holds transactions open across runs and commits them late
    // (created_ts DEFAULT now() is its start); PGlite has one session, so there they cannot interleave.
    const late = tier.name === 'server' ? new pg.Client({ connectionString: db.url }) : null
    await late?.connect()
    try {
      let open = false
      for (let round = 0; round < 60; round++) {
        if (late && !open && rand(4) === 0) { await late.query('BEGIN'); open = true }
        // Only inserts (they take no lock another statement waits for), created at the transaction's start.
        if (late && open) await late.query(`INSERT INTO customer_events (customer_id, event_ts, spend, visits) VALUES (${entity()}, ${event()}, ${value()}, ${rand(20)})`)
        for (let i = rand(4); i > 0; i--) await db.query(statement())
        if (late && open && rand(3) === 0) { await late.query('COMMIT'); open = false }
        if (rand(3) === 0) await run(state)
      }
      if (open) await late!.query('COMMIT')
    } finally {
      await late?.end()
    }
    await run(state)
    await expectInStep(db).catch((error: unknown) => { throw new Error(`seed ${seed}: ${String(error)}`) })
    // A full comparison finds nothing left to fix.
    expect(await run(state, { full: true }), `seed ${seed}`).toMatchObject({ offlineInserted: 0, offlineDeleted: 0, onlineUpserted: 0, onlineDeleted: 0 })
  })

  it('features check: skew of every kind, lag with the pending entities, the source compared in a rolled-back transaction; status shows lag and last run', async () => {
    const { state } = await setup()
    const check = (source = false) => withUrlClient(db.url, (c) => checkFeatures(c, state, [], { source })).then((r) => r[0]!)
    expect((await check()).lag).toMatchObject({ lastRunAt: null, fullRefreshPending: true, lagSeconds: Infinity })
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (1, ${day(1)}, ${day(1)}, 1, 1), (1, ${day(2)}, ${day(2)}, 2, 2), (2, ${day(1)}, ${day(1)}, 3, 3), (3, ${day(1)}, ${day(1)}, 4, 4), (4, ${day(1)}, ${day(1)}, 5, 5)`)
    await run(state)
    expect(await check(true)).toMatchObject({ skew: { total: 0 }, lag: { pendingEntities: 0, fullRefreshPending: false, dueRows: 0, lagSeconds: 0, runs: 1 }, source: { offlineInserted: 0, offlineDeleted: 0, onlineUpserted: 0, onlineDeleted: 0 } })
    // Someone writes the online table by hand: each kind of skew is found.
    await db.query(`UPDATE features.customer_stats_online SET event_ts = ${day(1)}, spend = 1, visits = 1 WHERE customer_id = 1;
      UPDATE features.customer_stats_online SET spend = 33 WHERE customer_id = 2;
      DELETE FROM features.customer_stats_online WHERE customer_id = 3;
      INSERT INTO features.customer_stats_online VALUES (9, ${day(1)}, ${day(1)}, 9, 9, now())`)
    // And a source change not yet materialised.
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (4, ${day(3)}, ${day(3)}, 6, 6)`)
    const found = await check()
    expect(found.skew.total).toBe(4)
    expect(found.skew.differences.map((d) => [d.kind, d.entity])).toEqual([
      ['different', { customer_id: 2 }], ['extra', { customer_id: 9 }], ['missing', { customer_id: 3 }], ['stale', { customer_id: 1 }],
    ])
    expect(found.lag).toMatchObject({ pendingEntities: 1, sample: [{ customer_id: 4 }] })
    expect(found.lag.lagSeconds).toBeGreaterThan(0)
    // --source sees the unmaterialised change (and a hand-written online table), and changes nothing.
    expect(found.source).toBeNull()
    expect((await check(true)).source).toMatchObject({ offlineInserted: 1, onlineUpserted: 4, onlineDeleted: 1 })
    expect(await db.query('SELECT count(*)::int AS n FROM features.customer_stats_changes')).toEqual([{ n: 1 }])
    const cli = await runCli(['features', 'check'], { cwd: db.cwd, databaseUrl: db.url })
    expect(cli.code, cli.stderr).toBe(1)
    expect(cli.stdout).toMatch(/check failed customer_stats: 4 online rows differ from the offline definition; lag [\d.]+ s \(1 entities with unmaterialised changes\)/)
    expect(cli.stdout).toMatch(/missing +\{"customer_id":3\}/)
    const status = await runCli(['status'], { cwd: db.cwd, databaseUrl: db.url })
    expect(status.stdout).toMatch(/customer_stats .* 1 /)
    // A full refresh repairs all of it; the check passes, also with a lag limit.
    await run(state, { full: true })
    const ok = await runCli(['features', 'check', '--source', '--max-lag', '60', '--json'], { cwd: db.cwd, databaseUrl: db.url })
    expect(ok.code, ok.stdout + ok.stderr).toBe(0)
    expect(JSON.parse(ok.stdout)).toEqual([expect.objectContaining({ view: 'customer_stats', failed: false, skew: { total: 0, differences: [] } })])
  })

  it('refuses a view or a partitioned table as a table source at migrate time, naming the config path and what to do; nothing is created', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', `${TABLES.replace('-- Down Migration', `CREATE VIEW events_v AS SELECT * FROM customer_events;
CREATE TABLE pev (customer_id int, event_ts timestamptz NOT NULL, created_ts timestamptz, spend numeric, visits bigint) PARTITION BY RANGE (event_ts);
CREATE TABLE pev_2026 PARTITION OF pev FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
-- Down Migration
DROP TABLE pev; DROP VIEW events_v;`)}`)
    for (const [table, what] of [['events_v', 'a view'], ['pev', 'a partitioned table']] as const) {
      await p.writeConfig(featuresConfig({ table }))
      await p.generate(`on-${table}`)
      await expect(p.migrate()).rejects.toThrow(new RegExp(`features\\.views\\.customer_stats\\.source: public\\.${table} is ${what}; change capture needs a plain table`))
      expect(await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'features'`)).toEqual([{ n: 0 }])
      for (const f of await readdir(p.migrationsDir)) if (f !== '1000000000000_create-tables.sql') await rm(join(p.migrationsDir, f))
    }
    // As the hint says: the same rows as a query work (compared whole on every run).
    await p.writeConfig(featuresConfig({ sql: 'SELECT customer_id, event_ts, created_ts, spend, visits FROM public.pev' }))
    await p.generate('as-query')
    await p.migrate()
    await db.query(`INSERT INTO pev_2026 VALUES (1, ${day(1)}, ${day(1)}, 1, 1)`)
    const state = (await loadConfig('pgml-kit.config.ts', db.cwd)).state
    expect(await run(state)).toMatchObject({ offlineInserted: 1, onlineUpserted: 1 })
    expect((await withUrlClient(db.url, (c) => checkFeatures(c, state, [])))[0]).toMatchObject({ skew: { total: 0 }, lag: { pendingEntities: null, runs: 1 } })
  })

  it('capture does not depend on the writing session or on columns the view does not need to log a change', async () => {
    const { state } = await setup()
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (1, ${day(1)}, ${day(1)}, 0.1, 1), (2, ${day(1)}, ${day(1)}, 0.5, 1)`)
    await run(state)
    // A change only the 17th digit shows, written by a session that prints floats short: logged.
    await db.query('ALTER TABLE customer_events ALTER COLUMN spend TYPE double precision')
    await db.query('SET extra_float_digits = 0; UPDATE customer_events SET spend = 0.1 + 1e-16 WHERE customer_id = 1; RESET extra_float_digits')
    expect(await run(state)).toMatchObject({ entities: 1, offlineInserted: 1, offlineDeleted: 1 })
    await expectInStep(db)
    // Dropping a column of the source that the view reads breaks materialisation (it says which), not the application's writes.
    await db.query('ALTER TABLE customer_events DROP COLUMN visits')
    await db.query('UPDATE customer_events SET spend = 2 WHERE customer_id = 2')
    await db.query('DELETE FROM customer_events WHERE customer_id = 1')
    expect(await db.query('SELECT count(*)::int AS n FROM features.customer_stats_changes')).toEqual([{ n: 2 }])
    await expect(run(state)).rejects.toThrow(/visits/)
  })

  it('an event time without time zone is read as UTC, whatever the TimeZone of the session that materialises', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', TABLES.replace('-- Down Migration', 'CREATE TABLE naive (customer_id int, event_ts timestamp NOT NULL, spend numeric);\n-- Down Migration\nDROP TABLE naive;'))
    await p.writeConfig({ tables: {}, features: { views: { naive_stats: { entities: 'customer_id', source: { table: 'naive' }, timestamp: 'event_ts', features: { spend: 'double precision' } } } } })
    await p.generate('naive')
    await p.migrate()
    const state = (await loadConfig('pgml-kit.config.ts', db.cwd)).state
    await db.query(`INSERT INTO naive VALUES (1, (now() AT TIME ZONE 'UTC') - interval '1 hour', 1), (1, (now() AT TIME ZONE 'UTC') + interval '3 hours', 2)`)
    for (const zone of ['Asia/Tokyo', 'America/New_York']) {
      const r = await withUrlClient(db.url, async (c) => { await c.query(`SET TimeZone = '${zone}'`); return materialize(c, state, [], { full: true }) })
      expect(r[0], zone).toMatchObject({ offlineDeleted: 0 })
      expect(await db.query('SELECT spend FROM features.naive_stats_online'), zone).toEqual([{ spend: 1 }])
    }
  })

  it('a database view given as a table source (accepted before change capture) is upgraded to a query source in place', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await copyPreviousRelease(p)
    await p.writeConfig(featuresConfig({ table: 'customer_events' }, '10 days'))
    await p.migrate()
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (1, ${day(1)}, ${day(1)}, 0.2, 2)`)
    await db.query('SELECT * FROM features.materialize_customer_stats()')
    await db.query('UPDATE customer_events SET spend = 0.3')
    await p.writeConfig(featuresConfig({ sql: 'SELECT customer_id, event_ts, created_ts, spend, visits FROM public.customer_events' }, '10 days'))
    expect(await p.generate('as-query')).toHaveLength(1)
    await p.migrate()
    const state = (await loadConfig('pgml-kit.config.ts', db.cwd)).state
    expect(await run(state)).toMatchObject({ fullRefresh: true, offlineInserted: 1, offlineDeleted: 1 })
    await expectInStep(db)
    expect(await db.query(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'customer_events'::regclass`)).toEqual([{ n: 0 }])
  })

  it('upgrades a view generated before change capture in place: the first run recovers what the old materialisation missed; down restores it', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await copyPreviousRelease(p)
    await p.writeConfig(featuresConfig({ table: 'customer_events' }, '10 days'))
    await p.migrate()
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (1, ${day(1)}, ${day(1)}, 0.2, 2), (2, ${day(5)}, ${day(5)}, 0.3, 3)`)
    await db.query('SELECT * FROM features.materialize_customer_stats()')
    // What the old function never saw: an update in place and a historical backfill.
    await db.query(`UPDATE customer_events SET spend = 0.21 WHERE customer_id = 1; INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (1, ${day(2)}, ${day(2)}, 0.5, 5)`)
    expect(await db.query('SELECT (inserted, updated) AS r FROM features.materialize_customer_stats()')).toEqual([{ r: '(0,0)' }])

    const written = await p.generate('capture')
    expect(written).toHaveLength(1)
    await p.migrate()
    const state = (await loadConfig('pgml-kit.config.ts', db.cwd)).state
    expect(await run(state)).toMatchObject({ fullRefresh: true, offlineInserted: 2, offlineDeleted: 1, onlineUpserted: 1 })
    await expectInStep(db)
    await db.query(`INSERT INTO customer_events (customer_id, event_ts, created_ts, spend, visits) VALUES (2, ${day(1)}, ${day(1)}, 0.1, 1)`)
    expect(await run(state)).toMatchObject({ fullRefresh: false, entities: 1, offlineInserted: 1 })
    await expectInStep(db)
    // Nothing left to generate; and the upgrade reverts to the old function.
    expect(await p.generate('again')).toEqual([])
    await p.migrate('down', 1)
    expect(await db.query(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'customer_events'::regclass`)).toEqual([{ n: 0 }])
    expect(await db.query('SELECT (inserted, updated) AS r FROM features.materialize_customer_stats()')).toEqual([{ r: '(0,0)' }])
  })
})
