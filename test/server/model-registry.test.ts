import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { deploy, train } from '../../src/features/ml.js'
import { archiveVersion, describeVersion, listVersions, modelHistory, setAlias } from '../../src/features/registry.js'
import { createKit } from '../../src/query/create-kit.js'
import { runCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { requireServerTier, tiers, withClient, type TestDatabase } from '../helpers/targets.js'

/**
 * The model registry on the server with pgml_compat: versions numbered per project whatever the
 * global model ids, aliases an application (not the owner) predicts with, moved by a trainer role
 * (not the owner) and refused to a role the config does not name, every move an event with who and
 * why, archived versions never served, deployments that move `champion` or are rolled back.
 */
const serverUrl = requireServerTier().url
const server = tiers.find((t) => t.name === 'server')!
const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`
const APP = `pgml_kit_reg_app_${suffix}`
const TRAINER = `pgml_kit_reg_trainer_${suffix}`
const OUTSIDER = `pgml_kit_reg_outsider_${suffix}`

const TABLES = `-- Up Migration
CREATE TABLE houses (size real NOT NULL, rooms real NOT NULL, price real NOT NULL);
CREATE TABLE cars (age real NOT NULL, value real NOT NULL);
-- Down Migration
DROP TABLE houses; DROP TABLE cars;
`

const config: PgmlKitConfig = {
  roles: { app: APP, trainer: TRAINER },
  tables: {},
  models: {
    // A project name with a space and a quote: quoted and bound everywhere.
    "house price's": { task: 'regression', relation: 'public.houses', target: 'price', algorithm: 'linear', testSize: 0.25, testSampling: 'last' },
    cars: { task: 'regression', relation: 'public.cars', target: 'value', algorithm: 'linear', testSize: 0.25, testSampling: 'last' },
  },
}
const P = "house price's"

describe('the model registry on the server (pgml_compat)', () => {
  let db: TestDatabase
  let owner: pg.Client
  const as = (role: string) => {
    const u = new URL(db.url)
    u.username = role
    u.password = 'pw'
    return u.toString()
  }
  beforeAll(async () => {
    db = await server.create()
    for (const role of [APP, TRAINER, OUTSIDER]) await db.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`)
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', TABLES)
    await p.writeConfig(config)
    await p.generate('registry')
    await db.query('CREATE EXTENSION IF NOT EXISTS pgml_compat CASCADE')
    await p.migrate()
    await db.query(`GRANT pgml_trainer TO ${TRAINER}, ${OUTSIDER}`)
    await db.query(`GRANT USAGE ON SCHEMA pgml TO ${APP}`)
    await db.query(`INSERT INTO houses SELECT s, r, 1000 * s + 50 * r FROM generate_series(1, 40) AS s, generate_series(1, 4) AS r`)
    await db.query(`INSERT INTO cars SELECT a, 20000 - 1000 * a FROM generate_series(1, 60) AS a`)
    owner = new pg.Client({ connectionString: db.url })
    await owner.connect()
  }, 240_000)
  afterAll(async () => {
    await owner?.end()
    await db?.close()
    await withClient(serverUrl, async (c) => {
      for (const role of [APP, TRAINER, OUTSIDER]) await c.query(`DROP ROLE IF EXISTS ${role}`)
    })
  })

  it('numbers versions per project, serves aliases to the application, records every move, archives without serving', async () => {
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    // Version 1, then a model of another project (global ids interleave), then version 2 on data
    // whose prices doubled, then version 3 trained outside pgml-kit (plain SQL, not deployed).
    const first = await train(owner, loaded, P)
    expect(first.versions).toEqual([1])
    await train(owner, loaded, 'cars')
    await db.query('UPDATE houses SET price = price * 2')
    const second = await train(owner, loaded, P)
    expect(second.versions).toEqual([2])
    await db.query(`SELECT * FROM pgml.train($1, relation_name => 'public.houses', y_column_name => 'price', algorithm => 'linear', test_size => 0.25, test_sampling => 'last', automatic_deploy => false)`, [P])

    // Lineage: exactly the rows each version trained on (160 before the prices doubled, the same
    // 160 rows after: another digest), in the snapshot pgml.train read; none for the SQL-trained one.
    const digestNow = (await db.query<{ d: string }>(`SELECT encode(sha256(convert_to(string_agg(h, '' ORDER BY h), 'UTF8')), 'hex') AS d FROM (SELECT md5(houses::text) AS h FROM houses) AS x`))[0]!.d
    const lineage = await db.query<{ output: string; input: string; identity: { rows: number; sha256: string } }>(
      `SELECT output, input, input_identity AS identity FROM pgml_kit.lineage_edges WHERE input_kind = 'relation' AND output LIKE $1 ORDER BY model_id`, [`${P}@v%`])
    expect(lineage.map((e) => [e.output, e.input, e.identity.rows])).toEqual([[`${P}@v1`, '"public"."houses"', 160], [`${P}@v2`, '"public"."houses"', 160]])
    expect(lineage[1]!.identity.sha256).toBe(digestNow)
    expect(lineage[0]!.identity.sha256).not.toBe(digestNow)
    const env = await db.query<{ e: { extensions: Record<string, string>; pgml_version: string; pgml_kit: string } }>(`SELECT environment AS e FROM pgml_kit.model_lineage LIMIT 1`)
    expect(env[0]!.e).toMatchObject({ extensions: { pgml_compat: expect.any(String) }, pgml_version: expect.stringMatching(/^pgml_compat /), pgml_kit: expect.any(String) })

    let versions = await listVersions(owner, P)
    expect(versions.map((v) => v.version)).toEqual([1, 2, 3])
    expect(versions.map((v) => v.modelId)).toEqual([...versions.map((v) => v.modelId)].sort((a, b) => a - b))
    expect((await listVersions(owner, 'cars')).map((v) => v.version)).toEqual([1])
    // pgml.train deployed the better model automatically each time; champion followed.
    const champion = versions.find((v) => v.aliases.includes('champion'))!
    expect(champion.deployed).toBe(true)

    // The trainer role (not the owner) points challenger at version 1, with a reason.
    const trainer = new pg.Client({ connectionString: as(TRAINER) })
    await trainer.connect()
    try {
      expect(await setAlias(trainer, P, 'challenger', 1, { reason: 'compare the cheaper prices' })).toEqual({ fromVersion: null })
      expect(await setAlias(trainer, P, 'challenger', 3)).toEqual({ fromVersion: 1 })
      expect(await setAlias(trainer, P, 'challenger', 1)).toEqual({ fromVersion: 3 })
      await describeVersion(trainer, P, 1, { description: 'before the price change', tags: { data: 'v2026-01', owner: 'pricing' } })
      const described = await describeVersion(trainer, P, 1, { tags: { owner: null } })
      expect(described).toMatchObject({ description: 'before the price change', tags: { data: 'v2026-01' } })
      await expect(setAlias(trainer, P, 'champion', 1)).rejects.toMatchObject({ code: 'ALIAS_RESERVED' })
      await expect(setAlias(trainer, P, 'v2', 1)).rejects.toMatchObject({ code: 'ALIAS_INVALID' })
      await expect(setAlias(trainer, P, 'challenger', 9)).rejects.toMatchObject({ code: 'MODEL_VERSION_UNKNOWN' })
    } finally {
      await trainer.end()
    }
    // A role that may train in pgml but is not in roles.trainer moves nothing.
    const outsider = new pg.Client({ connectionString: as(OUTSIDER) })
    await outsider.connect()
    try {
      await expect(setAlias(outsider, P, 'challenger', 2)).rejects.toMatchObject({ code: 'REGISTRY_NOT_PERMITTED', where: 'roles.trainer' })
    } finally {
      await outsider.end()
    }

    // The application (not the owner) predicts with the alias, in the library and in SQL; the
    // champion (prices doubled) predicts about twice the challenger.
    const pool = new pg.Pool({ connectionString: as(APP), max: 1 })
    const kysely = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) })
    try {
      const kit = createKit(config, { db: kysely })
      const features = [20, 3]
      const challenger = await kit.predict(`${P}@challenger`, features)
      const byVersion = await kit.predict(`${P}@v1`, features)
      const deployed = await kit.predict(P, features)
      expect(challenger).toBeCloseTo(20150, -2)
      expect(byVersion).toBe(challenger)
      expect(deployed).toBeCloseTo(2 * 20150, -2)
      expect(await kit.predict(`${P}@champion`, features)).toBe(deployed)
      expect(await kit.predictBatch(`${P}@challenger`, [features, [10, 1]])).toEqual([challenger, await kit.predict(`${P}@v1`, [10, 1])])
      const sqlPath = await withClient(as(APP), (c) => c.query<{ p: number }>(`SELECT pgml.predict(pgml_kit.model_id($1), ARRAY[20, 3]::real[]) AS p`, [`${P}@challenger`]))
      expect(sqlPath.rows[0]!.p).toBe(challenger)
      await expect(kit.predict(`${P}@nobody`, features)).rejects.toThrow(/project 'house price''s' has no alias 'nobody'/)

      // Deploying version 1 by id moves champion and records from which version; version 2, no
      // longer aliased or deployed, is archived and never served again; deploying it is refused and
      // changes nothing.
      const v1 = versions.find((v) => v.version === 1)!
      const deployment = await deploy(owner, loaded, P, { model: v1.modelId })
      expect(deployment.registry).toEqual({ version: 1, fromVersion: champion.version })
      await archiveVersion(owner, P, 2, { reason: 'trained on the doubled prices by mistake' })
      await expect(kit.predict(`${P}@v2`, features)).rejects.toThrow(/version 2 of project 'house price''s' is archived/)
      const v2 = versions.find((v) => v.version === 2)!
      await expect(deploy(owner, loaded, P, { model: v2.modelId })).rejects.toMatchObject({ code: 'MODEL_ARCHIVED' })
      expect((await listVersions(owner, P)).find((v) => v.deployed)?.version).toBe(1)
      await expect(archiveVersion(owner, P, 1, { reason: 'x' })).rejects.toMatchObject({ code: 'MODEL_VERSION_IN_USE' })
      await expect(setAlias(owner, P, 'staging', 2)).rejects.toMatchObject({ code: 'MODEL_ARCHIVED' })
    } finally {
      await kysely.destroy()
    }

    versions = await listVersions(owner, P)
    expect(versions.map((v) => [v.version, v.aliases, v.archived?.reason ?? null])).toEqual([
      [1, ['challenger', 'champion'], null], [2, [], 'trained on the doubled prices by mistake'], [3, [], null],
    ])
    const history = await modelHistory(owner, P)
    const moves = history.filter((e) => e.event === 'alias_set').map((e) => [e.actor, e.alias, e.fromVersion, e.version, e.reason])
    expect(moves).toEqual([[TRAINER, 'challenger', null, 1, 'compare the cheaper prices'], [TRAINER, 'challenger', 1, 3, null], [TRAINER, 'challenger', 3, 1, null]])
    expect(history.filter((e) => e.event === 'registered').map((e) => e.version)).toEqual([1, 2, 3])
    expect(history.at(-1)).toMatchObject({ event: 'archived', version: 2, actor: 'postgres', reason: 'trained on the doubled prices by mistake' })
    const lastDeploy = history.filter((e) => e.event === 'deployed').at(-1)!
    expect(lastDeploy).toMatchObject({ version: 1, fromVersion: champion.version, alias: 'champion', detail: { model_id: versions[0]!.modelId, strategy: 'specific' } })

    // The CLI shows it.
    const shown = await runCli(['models', P], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(shown.code).toBe(0)
    expect(shown.stdout).toMatch(/@challenger @champion/)
    expect(shown.stdout).toMatch(/2 archived/)
    const withLineage = await runCli(['models', P, '--lineage'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(withLineage.stdout.replace(/[│\s]+/g, ' ')).toContain(`"public"."houses": 160 rows, sha256 ${lineage[0]!.identity.sha256.slice(0, 12)}`)
    const events = await runCli(['models', 'history', P], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(events.stdout).toMatch(new RegExp(`${TRAINER}.*alias_set.*compare the cheaper prices`))
  }, 240_000)

  it('keeps its rules against a trainer writing its tables directly: actors, history, archives, models of the project', async () => {
    const trainer = (sql: string, params: unknown[] = []) => withClient(as(TRAINER), (c) => c.query(sql, params))
    const cars = (await db.query<{ id: string }>(`SELECT m.id::text AS id FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE p.name = 'cars'`))[0]!.id
    const eventsBefore = (await modelHistory(owner, P)).length
    // Events are the registry's own: no role inserts one, changes one or removes one.
    await expect(trainer(`INSERT INTO pgml_kit.model_events (project, version, event, reason) VALUES ($1, 1, 'deployed', 'forged')`, [P])).rejects.toThrow(/permission denied/)
    await expect(db.query(`INSERT INTO pgml_kit.model_events (project, version, event, reason) VALUES ($1, 1, 'deployed', 'forged')`, [P])).rejects.toThrow(/writes its events itself/)
    await expect(trainer(`UPDATE pgml_kit.model_events SET reason = 'rewritten'`)).rejects.toThrow(/permission denied/)
    await expect(db.query(`DELETE FROM pgml_kit.model_events`)).rejects.toThrow(/never changed or removed/)
    // A version keeps its model; an archived one stays archived; a version names only a model of its project.
    await expect(trainer(`UPDATE pgml_kit.model_versions SET model_id = $2 WHERE project = $1 AND version = 1`, [P, cars])).rejects.toThrow(/permission denied/)
    await expect(db.query(`UPDATE pgml_kit.model_versions SET model_id = $2 WHERE project = $1 AND version = 1`, [P, cars])).rejects.toThrow(/keeps its project, number, model/)
    await expect(trainer(`UPDATE pgml_kit.model_versions SET archived_at = NULL WHERE project = $1 AND version = 2`, [P])).rejects.toThrow(/is archived and stays archived/)
    await expect(trainer(`INSERT INTO pgml_kit.model_versions (project, version, model_id) VALUES ($1, 50, $2)`, [P, cars])).rejects.toThrow(/is not a model of project/)
    await expect(trainer(`INSERT INTO pgml_kit.model_versions (project, version, model_id) VALUES ($1, 51, 999999)`, [P])).rejects.toThrow(/is not a model of project/)
    // Archiving by hand: not while an alias names the version, not without a reason.
    await expect(trainer(`UPDATE pgml_kit.model_versions SET archived_at = now(), archive_reason = 'x' WHERE project = $1 AND version = 1`, [P])).rejects.toThrow(/named by an alias/)
    await expect(trainer(`UPDATE pgml_kit.model_versions SET archived_at = now() WHERE project = $1 AND version = 3`, [P])).rejects.toThrow(/needs a reason/)
    // An alias moved by hand is an event, with who and from which version; it keeps its project and
    // name; none names an archived version; champion names only what pgml serves.
    await trainer(`UPDATE pgml_kit.model_aliases SET version = 3 WHERE project = $1 AND alias = 'challenger'`, [P])
    const history = await modelHistory(owner, P)
    expect(history).toHaveLength(eventsBefore + 1)
    expect(history.at(-1)).toMatchObject({ event: 'alias_set', alias: 'challenger', version: 3, fromVersion: 1, actor: TRAINER })
    await expect(trainer(`UPDATE pgml_kit.model_aliases SET version = 2 WHERE project = $1 AND alias = 'challenger'`, [P])).rejects.toThrow(/archived; no alias may name it/)
    await expect(db.query(`UPDATE pgml_kit.model_aliases SET project = 'cars' WHERE project = $1 AND alias = 'challenger'`, [P])).rejects.toThrow(/keeps its project and name/)
    await expect(trainer(`UPDATE pgml_kit.model_aliases SET version = 3 WHERE project = $1 AND alias = 'champion'`, [P])).rejects.toThrow(/champion names the version pgml serves/)
    await expect(trainer(`SELECT set_config('pgml_kit.alias_event', 'archived', true); UPDATE pgml_kit.model_aliases SET version = 1 WHERE project = $1 AND alias = 'challenger'`.replace('$1', `'${P.replace(/'/g, "''")}'`))).rejects.toThrow(/recorded as alias_set, alias_removed or \(champion\) deployed/)
    // Lineage and monitor runs: written once, for models of the project, by whoever writes them.
    await expect(trainer(`INSERT INTO pgml_kit.model_lineage (model_id, project, relation, training_config, train_sql) VALUES (999999, $1, 'x', '{}', 'x')`, [P])).rejects.toThrow(/is not a model of project/)
  }, 120_000)

  it('a trainer trains with a lineage and a drift baseline; a role pgml lets train but the config does not name trains without deploying', async () => {
    await db.query(`GRANT SELECT ON cars TO ${TRAINER}, ${OUTSIDER}`)
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const trainer = new pg.Client({ connectionString: as(TRAINER) })
    await trainer.connect()
    try {
      const result = await train(trainer, loaded, 'cars')
      expect(result.versions).toEqual([2])
      const lineage = await db.query<{ by: string; rows: string; baseline: boolean }>(`SELECT trained_by::text AS by, row_count::text AS rows, baseline IS NOT NULL AS baseline FROM pgml_kit.model_lineage WHERE model_id = $1`, [result.models[0]!.id])
      expect(lineage).toEqual([{ by: TRAINER, rows: '60', baseline: true }])
    } finally {
      await trainer.end()
    }
    const outsider = new pg.Client({ connectionString: as(OUTSIDER) })
    await outsider.connect()
    try {
      const deployedBefore = (await listVersions(owner, 'cars')).find((v) => v.deployed)!.modelId
      const result = await train(outsider, loaded, 'cars')
      expect(result.models).toHaveLength(1)
      expect(result.notes.join('\n')).toMatch(/trained but not deployed[\s\S]*roles\.trainer|may not write it/)
      expect((await listVersions(owner, 'cars')).find((v) => v.deployed)!.modelId).toBe(deployedBefore)
    } finally {
      await outsider.end()
    }
  }, 180_000)

  it('a migration down keeps the registry and its history; up again serves the same aliases', async () => {
    const before = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.model_events')
    expect(before[0]!.n).toBeGreaterThan(0)
    const down = await runCli(['migrate', 'down', '--count', '1'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(down.code, down.stderr).toBe(0)
    expect(await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.model_events')).toEqual(before)
    const up = await runCli(['migrate'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(up.code, up.stderr).toBe(0)
    expect(await db.query<{ v: string }>(`SELECT pgml_kit.model_id($1)::text AS v`, [`${P}@challenger`])).toHaveLength(1)
  }, 120_000)
})
