import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { listVersions } from '../../src/features/registry.js'
import { listModels, materialize, train, type TrainResult } from '../../src/features/ml.js'
import type { ResolvedConfig } from '../../src/model/resolve.js'
import { renderUpgradeFeatureSchema } from '../../src/sql/render-features.js'
import { runCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { tiers, withClient, type TestDatabase } from '../helpers/targets.js'

/**
 * Training runs that cannot mix (server tier, pgml_compat): two trainings at once each report the
 * models they trained; a materialisation committed while a model trains is neither in its data nor
 * in its lineage; a model that fails its gate is deployed by id only with a recorded override.
 * Trainings are interleaved deterministically: a session holds a lock on the label table, so each
 * pgml.train waits for it (after its transaction took its snapshot), until the test lets it go.
 */
const server = tiers.find((t) => t.name === 'server')!

const TABLES = `-- Up Migration
CREATE TABLE events (id int NOT NULL, ts timestamptz NOT NULL, created timestamptz NOT NULL, x double precision);
CREATE TABLE labels (id int NOT NULL, label_ts timestamptz NOT NULL, y int NOT NULL);
-- Down Migration
DROP TABLE events; DROP TABLE labels;
`

/** 200 entities whose one feature is their label: a linear model separates them perfectly (f1 1). */
const DATA = `INSERT INTO labels SELECT i, '2026-03-01', i % 2 FROM generate_series(1, 200) AS i;
INSERT INTO events SELECT i, '2026-02-01', '2026-02-01', i % 2 FROM generate_series(1, 200) AS i;`

/** Newer rows (still before each label) where the feature says nothing: a model trained on them cannot separate. */
const LATER = `INSERT INTO events SELECT i, '2026-02-15', '2026-02-15', 0.5 FROM generate_series(1, 200) AS i`

const model = (extra: object = {}) => ({ task: 'classification' as const, relation: 'tset', algorithm: 'linear', testSize: 0.25, testSampling: 'random' as const, ...extra })
const CONFIG: PgmlKitConfig = {
  tables: {},
  features: {
    views: { stats: { entities: 'id', source: { table: 'events' }, timestamp: 'ts', createdTimestamp: 'created', features: { x: 'double precision' } } },
    trainingSets: { tset: { labels: { table: 'labels' }, entities: 'id', timestamp: 'label_ts', label: 'y', features: ['stats.x'] } },
  },
  models: {
    race: model(), race_a: model(), race_b: model(),
    // Passes on a first training; a later one cannot beat f1 1 by 0.5.
    gated: model({ deploy: { metric: 'f1', min: 0.5, margin: 0.5 } }),
  },
}

describe('training runs that cannot mix (pgml_compat)', () => {
  let db: TestDatabase
  let config: ResolvedConfig
  const clients: pg.Client[] = []
  async function connect(): Promise<{ client: pg.Client; pid: number }> {
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    clients.push(client)
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
    return { client, pid: rows[0]!.pid }
  }

  /** Runs `start` while a session holds the label table; `whileHeld` runs once `waiting` sessions wait on a lock. */
  async function withLabelsLocked<T>(pids: readonly number[], start: () => Promise<T>, whileHeld: () => Promise<void> = async () => undefined): Promise<T> {
    const { client: locker } = await connect()
    await locker.query('BEGIN')
    await locker.query('LOCK TABLE labels IN ACCESS EXCLUSIVE MODE')
    const running = start()
    running.catch(() => undefined)
    try {
      for (let i = 0; ; i++) {
        const { rows } = await locker.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY ($1) AND wait_event_type = 'Lock'`, [pids])
        if (rows[0]!.n === pids.length) break
        if (i > 600) throw new Error('the trainings never waited for the label table')
        await new Promise((r) => setTimeout(r, 100))
      }
      await whileHeld()
    } finally {
      await locker.query('COMMIT')
    }
    return running
  }

  beforeAll(async () => {
    db = await server.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', TABLES)
    await p.writeConfig(CONFIG)
    await p.generate('add-features')
    await db.query('CREATE EXTENSION IF NOT EXISTS pgml_compat CASCADE')
    await p.migrate()
    await db.query(DATA)
    config = await loadConfig('pgml-kit.config.ts', db.cwd)
    await withClient(db.url, (c) => materialize(c, config.state))
  }, 120_000)
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)))
    await db?.close()
  })

  it('two trainings of one project at once: each reports the model it trained, and they run one after the other', async () => {
    const a = await connect()
    const b = await connect()
    let waited = 0
    const [ra, rb] = await withLabelsLocked([a.pid, b.pid], () => Promise.all([
      train(a.client, config, 'race', { onWait: () => waited++ }),
      new Promise((r) => setTimeout(r, 300)).then(() => train(b.client, config, 'race', { onWait: () => waited++ })),
    ]))
    expect(ra.models).toHaveLength(1)
    expect(rb.models).toHaveLength(1)
    expect(ra.models[0]!.id).not.toBe(rb.models[0]!.id)
    expect((await withClient(db.url, (c) => listModels(c, config, 'race'))).map((m) => m.id).sort()).toEqual([ra.models[0]!.id, rb.models[0]!.id].sort())
    // The second waited for the first (the project's lock), instead of training beside it.
    expect(waited).toBe(1)
    // The CLI says which model it trained, and only that one.
    const cli = await runCli(['train', 'race'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(cli.code, cli.stderr).toBe(0)
    expect(cli.stdout.match(/^trained model \d+/gm)).toHaveLength(1)
  }, 240_000)

  it('two projects trained and deployed at once: both deploy and report their own model, and neither trains twice', async () => {
    const a = await connect()
    const b = await connect()
    const [ra, rb] = await withLabelsLocked([a.pid, b.pid], () => Promise.all([train(a.client, config, 'race_a'), train(b.client, config, 'race_b')]))
    expect([ra.models.length, rb.models.length]).toEqual([1, 1])
    expect([ra.deployed, rb.deployed]).toEqual([ra.models[0]!.id, rb.models[0]!.id])
    // pgml_compat bumps one row per deployment. Deployed by pgml.train inside the REPEATABLE READ
    // training, the second to deploy failed to serialise and trained again; train deploys after the
    // training now, in READ COMMITTED with the registry, so the two deployments only queue.
    expect([...ra.notes, ...rb.notes]).toEqual([])
    expect((await listVersions(a.client, 'race_a')).find((v) => v.deployed)?.aliases).toContain('champion')
  }, 240_000)

  it('a gate that fails holds the model back and records why; deploy --model refuses it; --override-gate deploys it and records the override', async () => {
    const { client } = await connect()
    const first = await train(client, config, 'gated')
    expect(first.gate).toMatch(/^deployed: model \d+: f1 1\.0000 is at least 0\.5 \(no model deployed yet\)$/)
    const second = await train(client, config, 'gated')
    const held = second.models[0]!.id
    expect(second.gate).toBe(`not deployed: model ${held}: f1 1.0000 does not beat the deployed model's 1.0000 by 0.5 (at least 1.5000 needed)`)
    expect(second.gateVerdict).toMatchObject({ model: held, metric: 'f1', value: 1, pass: false, deployedModel: first.deployed })
    expect((await listModels(client, config, 'gated')).find((m) => m.id === held)!.lineage!.gateVerdict).toMatchObject({ pass: false, deployedModel: first.deployed })

    const cli = (...args: string[]) => runCli(args, { cwd: db.cwd, databaseUrl: db.databaseUrl })
    const refused = await cli('deploy', 'gated', '--model', String(held))
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(`model ${held} fails the deployment gate of models.gated.deploy: f1 1.0000 does not beat the deployed model's 1.0000 by 0.5`)
    expect(refused.stderr).toContain(`--override-gate`)
    expect((await listModels(client, config, 'gated')).find((m) => m.deployed)!.id).toBe(first.deployed)

    const forced = await cli('deploy', 'gated', '--model', String(held), '--override-gate', 'incident 42: the deployed model\'s file is corrupt')
    expect(forced.code, forced.stderr).toBe(0)
    expect(forced.stdout).toMatch(new RegExp(`deployed model ${held} of gated`))
    expect(forced.stderr).toMatch(/warning gate overridden: model \d+ fails the gate \(f1 1\.0000 does not beat/)
    expect(forced.stderr).toContain('recorded in features.pgml_kit_model_lineage')
    const lineage = (await listModels(client, config, 'gated')).find((m) => m.id === held)!.lineage!
    expect(lineage.gateOverrides).toEqual([expect.objectContaining({ reason: 'incident 42: the deployed model\'s file is corrupt', role: expect.any(String), verdict: expect.objectContaining({ pass: false, deployedModel: first.deployed }) })])
    expect((await cli('models', 'gated', '--lineage')).stdout).toMatch(/gate overridden/)

    // A model pgml-kit did not train has no lineage row: the override is said, and said not to be recorded.
    await db.query(`SELECT * FROM pgml.train('gated', relation_name => 'features.tset', y_column_name => 'y', algorithm => 'linear', automatic_deploy => false)`)
    const outside = (await db.query<{ id: string }>(`SELECT max(id)::text AS id FROM pgml.models`))[0]!.id
    const unrecorded = await cli('deploy', 'gated', '--model', outside, '--override-gate', 'testing')
    expect(unrecorded.code, unrecorded.stderr).toBe(0)
    expect(unrecorded.stderr).toContain(`the override is not recorded in the database: model ${outside} has no row in features.pgml_kit_model_lineage`)

    // A lineage table an earlier pgml-kit created has no gate columns: the verdict is said not to be recorded; the upgrade adds them, idempotently.
    await db.query('ALTER TABLE features.pgml_kit_model_lineage DROP COLUMN gate_verdict, DROP COLUMN gate_overrides')
    const old = await train(client, config, 'gated')
    expect(old.notes).toEqual(['the gate\'s verdict is not recorded: features.pgml_kit_model_lineage has no gate columns yet (it was created by an earlier pgml-kit; the migration that upgrades the feature schema adds them)'])
    for (let i = 0; i < 2; i++) for (const statement of renderUpgradeFeatureSchema('features')) await db.query(statement)
    const upgraded = await train(client, config, 'gated')
    expect(upgraded.notes).toEqual([])
    expect((await listModels(client, config, 'gated')).find((m) => m.id === upgraded.gateVerdict!.model)!.lineage!.gateVerdict).toMatchObject({ pass: false })
  }, 240_000)

  it('a materialisation committed while a model trains is in neither its data nor its lineage', async () => {
    const { client, pid } = await connect()
    await db.query(LATER)
    let materialised = 0
    const lastRun = async () => (await db.query<{ t: string }>("SELECT last_run_at::text AS t FROM features.pgml_kit_feature_runs WHERE view_name = 'stats'"))[0]!.t
    const before = await lastRun()
    const result: TrainResult = await withLabelsLocked([pid], () => train(client, config, 'race'), async () => {
      // pgml.train waits for the label table; its transaction has read the marks already.
      materialised = (await withClient(db.url, (c) => materialize(c, config.state, ['stats'])))[0]!.offlineInserted
    })
    expect(materialised).toBe(200)
    const during = await lastRun()
    expect(during).not.toBe(before)
    const trained = result.models[0]!
    // The mark is the materialisation whose result the training read: the one before, not the one during.
    expect(trained.lineage!.featureViews).toEqual([expect.objectContaining({ name: 'stats', highWaterMark: before })])
    // What the model learned from: the rows up to that mark (a perfect feature), not the later constant ones.
    expect(trained.metrics.f1).toBe(1)
    // The next training sees the new rows, and records their mark.
    const next = await train(client, config, 'race')
    expect(next.models[0]!.lineage!.featureViews[0]!.highWaterMark).toBe(during)
    expect(next.models[0]!.metrics.f1).toBeLessThan(0.9)
  }, 240_000)
})
