import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { train } from '../../src/features/ml.js'
import { monitorHistory, monitorModels } from '../../src/features/monitor.js'
import { runCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * Drift monitoring on the server with pgml_compat. A regression model is trained on readings whose
 * x1 is roughly normal around 0; then rows from the same distribution arrive (five batches, each a
 * different seed: no alarm may fire), then rows whose x1 is shifted by one standard deviation (drift
 * injected at a known point: x1 and the predictions alarm, x2 does not).
 */
const server = tiers.find((t) => t.name === 'server')!

const TABLES = `-- Up Migration
CREATE TABLE readings (x1 double precision NOT NULL, x2 double precision NOT NULL, y double precision NOT NULL);
-- Down Migration
DROP TABLE readings;
`
/** n rows with x1 ≈ N(shift, 1) (a sum of 12 uniforms), x2 ~ U(0, 1), y = 3·x1 + 2·x2 + noise; `seed` in (-1, 1). */
const rows = (n: number, seed: number, shift = 0) => `SELECT setseed(${seed});
INSERT INTO readings (x1, x2, y)
SELECT x1, x2, 3 * x1 + 2 * x2 + 0.1 * (random() - 0.5)
FROM (SELECT ${shift} + (SELECT sum(random()) FROM generate_series(1, 12) WHERE g > 0) - 6 AS x1, random() AS x2 FROM generate_series(1, ${n}) AS g) AS r;`

const config: PgmlKitConfig = {
  tables: {},
  models: { sensor: { task: 'regression', relation: 'public.readings', target: 'y', algorithm: 'linear', testSize: 0.2, testSampling: 'random' } },
}

describe('pgml-kit monitor on the server (pgml_compat)', () => {
  let db: TestDatabase
  let client: pg.Client
  beforeAll(async () => {
    db = await server.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-tables.sql', TABLES)
    await p.writeConfig(config)
    await p.generate('models')
    await db.query('CREATE EXTENSION IF NOT EXISTS pgml_compat CASCADE')
    await p.migrate()
    await db.query(rows(2000, 0.1))
    client = new pg.Client({ connectionString: db.url })
    await client.connect()
  }, 240_000)
  afterAll(async () => {
    await client?.end()
    await db?.close()
  })

  it('finds drift injected at a known point, and raises no alarm on five batches without it', async () => {
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const trained = await train(client, loaded, 'sensor')
    expect(trained.deployed).not.toBeNull()
    const baseline = await db.query<{ n: number; p: number }>(`SELECT jsonb_array_length(baseline->'features'->'x1') AS n, jsonb_array_length(baseline->'predictions') AS p FROM pgml_kit.model_lineage`)
    expect(baseline).toEqual([{ n: 1000, p: 1000 }])

    for (const seed of [0.2, 0.3, 0.4, 0.5, 0.6]) {
      await db.query(rows(1000, seed))
      const [report] = await monitorModels(client, loaded)
      expect(report!.alarms, `seed ${seed}: ${JSON.stringify(report!.metrics)}`).toEqual([])
      expect(report!.metrics.map((m) => m.name)).toEqual(['x1', 'x2', 'prediction'])
    }
    const quiet = await runCli(['monitor'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(quiet.code, quiet.stderr).toBe(0)
    expect(quiet.stdout).toMatch(/sensor version 1 \(model \d+\): 1000 rows now against 1000 at training: no drift/)

    // The drift: 14,000 rows with x1 shifted by one standard deviation (2/3 of the table).
    await db.query(rows(14000, 0.7, 1))
    const [drifted] = await monitorModels(client, loaded)
    expect(drifted!.alarms).toEqual(['x1', 'prediction'])
    const x1 = drifted!.metrics.find((m) => m.name === 'x1')!
    expect(x1.psi).toBeGreaterThan(0.2)
    expect(x1.ksP).toBeLessThan(1e-6)
    const cli = await runCli(['monitor', 'sensor', '--json'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(cli.code).toBe(1)
    expect((JSON.parse(cli.stdout) as { alarms: string[] }[])[0]!.alarms).toEqual(['x1', 'prediction'])

    // Every run is recorded, for the history (and a chart) over time.
    const history = await monitorHistory(client, 'sensor')
    expect(history.map((r) => r.alarms.length > 0)).toEqual([false, false, false, false, false, false, true, true])
    const shown = await runCli(['monitor', '--history', '--chart', 'charts'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(shown.stdout).toMatch(/sensor: 8 run\(s\)/)
    // The chart: a line per metric over the eight runs, the threshold, the alarmed runs in red.
    const svg = await readFile(join(db.cwd, 'charts', 'sensor.svg'), 'utf8')
    expect(svg.match(/<polyline /g)).toHaveLength(3)
    expect(svg).toMatch(/alarm at PSI 0.2/)
    expect(svg.match(/<circle [^>]*r="4" fill="#d62728"><title>/g)).toHaveLength(history.filter((r) => r.alarms.length > 0).length)
  }, 240_000)
})
