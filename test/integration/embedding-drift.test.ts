import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineConfig } from '../../src/config/define-config.js'
import { loadConfig } from '../../src/config/load.js'
import { monitorEmbeddings } from '../../src/features/embedding-drift.js'
import { runCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * Embedding drift on the embedded database (the default). Documents of two topics arrive; the
 * first run keeps a baseline; five more batches of the same two topics (each another seed) raise no
 * alarm; then documents of a third topic arrive (drift injected at a known point): both columns —
 * one sampled by a hash of the key, one by the newest rows — alarm.
 */
const model = { id: 'test/vectors-16', dimensions: 16 }
const config = defineConfig({
  tables: {
    docs: {
      embeddings: {
        hashed: { source: 'body', model, mode: 'app', indexes: [{ method: 'hnsw', distance: 'cosine' }], monitor: {} },
        newest: { source: 'body', model, mode: 'app', monitor: { recent: 'id', rows: 300 } },
      },
    },
  },
})

/** n rows around topic axes (`topics`, chosen at random per row) with noise, both columns the same vector; `seed` in (-1, 1). */
const rows = (n: number, seed: number, topics: readonly number[]) => `SELECT setseed(${seed});
WITH v AS (
  SELECT g, ('[' || array_to_string(ARRAY(SELECT (CASE WHEN i = t.topic THEN 1.0 ELSE 0.0 END) + 0.35 * (random() - 0.5) + 0.2 * (CASE WHEN i = 16 THEN 1 ELSE 0 END) FROM generate_series(1, 16) AS i WHERE g > 0), ',') || ']') AS vec
  FROM generate_series(1, ${n}) AS g
  CROSS JOIN LATERAL (SELECT (ARRAY[${topics.join(', ')}])[1 + floor(random() * ${topics.length})::int + 0 * g] AS topic) AS t
)
INSERT INTO docs (body, hashed, newest) SELECT 'doc ' || g, vec::vector, vec::vector FROM v;`

describe('embedding drift on the embedded database', () => {
  const tier = tiers.find((t) => t.name === 'embedded')!
  let db: TestDatabase
  let client: pg.Client
  beforeAll(async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-docs.sql', `-- Up Migration
CREATE TABLE docs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);
-- Down Migration
DROP TABLE docs;
`)
    await p.writeConfig(config)
    await p.generate()
    await p.migrate()
    client = new pg.Client({ connectionString: db.url })
    await client.connect()
  }, 120_000)
  afterAll(async () => {
    await client?.end()
    await db?.close()
  })

  it('keeps a baseline, raises no alarm on five batches like it, and finds a new topic', async () => {
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    await client.query(rows(2000, 0.1, [1, 2]))
    const first = await monitorEmbeddings(client, loaded)
    expect(first.map((r) => [r.column, r.baselineCaptured, r.sampled])).toEqual([['public.docs.hashed', true, 500], ['public.docs.newest', true, 300]])

    for (const [i, seed] of [0.2, 0.3, 0.4, 0.5, 0.6].entries()) {
      await client.query(rows(300, seed, [1, 2]))
      const reports = await monitorEmbeddings(client, loaded)
      expect(reports.map((r) => r.alarms), `batch ${i + 1}: ${JSON.stringify(reports.map((r) => [r.centroidP, r.nnKsP]))}`).toEqual([[], []])
      expect(reports[0]!.centroidRatio!).toBeLessThan(3)
    }

    // Drift: a third topic arrives (1,500 rows, a third of the table and all of the newest).
    await client.query(rows(1500, 0.7, [3]))
    const drifted = await monitorEmbeddings(client, loaded)
    expect(drifted[0]!.alarms).toContain('centroid')
    expect(drifted[1]!.alarms).toContain('centroid')
    expect(drifted[1]!.centroidShift!).toBeGreaterThan(0.2)

    // The CLI exits 1 for cron; --baseline keeps the drifted state as the new normal.
    const cli = await runCli(['monitor'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(cli.code, cli.stderr).toBe(1)
    expect(cli.stdout).toMatch(/public\.docs\.hashed: 500 of 5000 vectors sampled against the baseline of .*DRIFT centroid/)
    const rebased = await runCli(['monitor', '--baseline'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(rebased.code, rebased.stderr).toBe(0)
    expect((await monitorEmbeddings(client, loaded)).map((r) => r.alarms)).toEqual([[], []])
  }, 240_000)
})
