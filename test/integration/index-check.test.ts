import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { renderBuildSettings } from '../../src/sql/render-index.js'
import type { IndexConfig } from '../../src/config/schema.js'
import { checkIndex, checkIndexReconnecting, recordCheck } from '../../src/indexes/check.js'
import { toConnector, type Connector } from '../../src/db/connect.js'
import { readStatus } from '../../src/status.js'
import { runCli } from '../helpers/cli.js'
import { documentsConfig } from '../helpers/fixtures.js'
import { TestProject } from '../helpers/project.js'
import { tiers, withClient as withUrlClient, type TestDatabase } from '../helpers/targets.js'

/** 2,000 rows of 8-dimensional vectors (the documents fixture's size), deterministic, every tenth in department 'tenth'. */
const FILL = `SELECT setseed(0.25);
INSERT INTO documents (title, body, department, body_embedding)
SELECT 'doc ' || i, 'body', CASE WHEN i % 10 = 0 THEN 'tenth' ELSE 'other' END,
       ARRAY(SELECT random()::real - 0.5 FROM generate_series(1, 8) AS d WHERE i > 0)::vector
FROM generate_series(1, 2000) AS i;
ANALYZE documents;`

describe.each(tiers)('index check on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function project(indexes: IndexConfig[]) {
    db = await tier.create()
    const p = await new TestProject(db).withDocumentsTable(documentsConfig({ indexes: [] }))
    await p.generate('add-column')
    await p.migrate()
    await db.query(FILL)
    await p.writeConfig(documentsConfig({ indexes }))
    await p.generate('add-index')
    await p.migrate()
    return loadConfig('pgml-kit.config.ts', db.cwd)
  }

  const withClient = <T>(fn: (client: pg.Client) => Promise<T>) => withUrlClient(db.url, fn)

  it('measures recall against exact search: all lists probed is exact, one is not; the build ran with its \'auto\' settings', async () => {
    const config = await project([{ method: 'ivfflat', distance: 'l2', lists: 20, build: 'auto' }])
    const result = await withClient((c) => checkIndex(c, config.state, { column: 'documents.body_embedding', queries: 80, grid: [1, 20] }))
    expect(result).toMatchObject({ method: 'ivfflat', parameter: 'probes', k: 10, queries: 80, index: 'public.documents_body_embedding_ivfflat_l2_idx' })
    const [one, all] = result.rows
    expect(all).toMatchObject({ setting: 20, recall: 1, short: 0 })
    expect(all!.perQuery).toHaveLength(80)
    expect(all!.recallBound).toBeCloseTo(0.05 ** (1 / 80), 3)
    expect(one!.recall).toBeLessThan(0.9)
    expect(result.recommendation?.setting).toBe(20)
    // 40 queries without a miss cannot show 0.95 on queries not measured: no recommendation, and how many would.
    const few = await withClient((c) => checkIndex(c, config.state, { column: 'documents.body_embedding', queries: 40, grid: [20] }))
    expect(few.rows[0]).toMatchObject({ recall: 1 })
    expect(few.recommendation).toBeNull()
    expect(few.advice).toMatch(/probes 20 measured recall 1 on 40 queries, but 40 queries show only 0\.92\d* as the mean recall of queries like them \(95% confidence\): run again with 223 queries or more/)
    // The build step set maintenance_work_mem for its session and put it back.
    expect(await db.query(`SELECT current_setting('maintenance_work_mem') AS v`)).toEqual([{ v: '64MB' }])
    // READ ONLY: a filter that writes is refused, and nothing changed.
    await expect(withClient((c) => checkIndex(c, config.state, { column: 'documents.body_embedding', where: `nextval('documents_id_seq') > 0`, grid: [1] })))
      .rejects.toThrow(/cannot execute nextval\(\) in a read-only transaction/)
  })

  it('build: \'auto\' never asks for fewer parallel workers or less memory than the server\'s own settings', async () => {
    const config = await project([{ method: 'ivfflat', distance: 'l2', lists: 20, build: 'auto' }])
    const column = config.state.embeddingColumns[0]!
    const { set } = renderBuildSettings(config.state.indexes[0]!, { dimensions: column.model.dimensions, vectorType: column.vectorType })
    const after = async (c: pg.Client) => {
      for (const statement of set) await c.query(statement)
      return (await c.query(`SELECT current_setting('max_parallel_maintenance_workers') AS workers, current_setting('maintenance_work_mem') AS memory`)).rows[0]
    }
    await withClient(async (c) => {
      // 2,000 rows want no worker and little memory: the server's (or the session's) settings stay.
      const defaults = (await c.query(`SELECT current_setting('max_parallel_maintenance_workers') AS workers`)).rows[0]
      expect(await after(c)).toEqual({ workers: defaults.workers, memory: '64MB' })
      await c.query(`SET max_parallel_maintenance_workers = 3; SET maintenance_work_mem = '200MB'`)
      expect(await after(c)).toEqual({ workers: '3', memory: '200MB' })
    })
  })

  it('a connection lost in the middle of a check: measured again from the start on a new connection, and kept', async () => {
    const config = await project([{ method: 'hnsw', distance: 'l2' }])
    // TEST DOUBLE around the real connector: the first connection's socket is destroyed (as a
    // terminated backend's is) at its tenth statement, in the middle of the measurements.
    const real = toConnector(db.url)
    let connects = 0
    const connector: Connector = {
      description: real.description,
      async connect(name) {
        const client = await real.connect(name)
        if (++connects === 1) {
          let statements = 0
          const query = client.query.bind(client) as (...args: unknown[]) => unknown
          ;(client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
            if (++statements === 10) (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy()
            return query(...args)
          }
        }
        return client
      },
    }
    const lost: string[] = []
    const { result, recorded } = await checkIndexReconnecting(connector, config.state, { column: 'documents.body_embedding', queries: 20, grid: [10, 100], onReconnect: (e) => lost.push(e.message) })
    expect(lost).toHaveLength(1)
    expect(connects).toBe(2)
    expect(result).toMatchObject({ parameter: 'ef_search', queries: 20 })
    expect(result.rows.map((r) => r.setting)).toEqual([10, 100])
    expect(recorded).toBe(true)
    // An error a new connection cannot fix is not retried.
    await expect(checkIndexReconnecting(toConnector(db.url), config.state, { column: 'documents.body_embedding', where: 'no_such_column > 0', grid: [10] })).rejects.toThrow(/no_such_column/)
  })

  it('shows a tiny ef_search losing recall, a filter starving the index scan, iterative scans curing it; status keeps the last check', async () => {
    const config = await project([{ method: 'hnsw', distance: 'cosine', m: 4, efConstruction: 8 }])
    const result = await withClient((c) => checkIndex(c, config.state, { column: 'documents.body_embedding', queries: 80, grid: [1, 400] }))
    expect(result.rows.map((r) => r.setting)).toEqual([1, 400])
    // ef_search 1 returns at most one row of the ten asked for (a sampled row is searched with one
    // more candidate, as it finds itself: two, one of them usually itself).
    expect(result.rows[0]!.recall).toBeLessThanOrEqual(0.2)
    expect(result.rows[0]!.short).toBe(80)
    expect(result.rows[1]!.recall).toBeGreaterThanOrEqual(0.95)
    expect(result.recommendation?.setting).toBe(400)

    const filtered = await withClient((c) => checkIndex(c, config.state, { column: 'documents.body_embedding', queries: 30, grid: [10], where: `department = 'tenth'` }))
    const [off, on] = filtered.rows
    expect(off).toMatchObject({ setting: 10, iterative: false })
    expect(on).toMatchObject({ setting: 10, iterative: true })
    expect(off!.recall).toBeLessThan(0.5)
    expect(on!.recall).toBeGreaterThan(off!.recall)
    expect(on!.short).toBe(0)

    expect(await withClient((c) => recordCheck(c, config.state, result))).toBe(true)
    const status = await readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: config.migrationsDir, settings: config.migrations, state: config.state })
    expect(status.indexes[0]?.lastCheck).toMatchObject({ k: 10, parameter: 'ef_search', recommended: 400, recall: result.rows[1]!.recall, targetRecall: 0.95 })
  })

  it('pgml-kit index check prints the table and chart, keeps the result, and --write puts the setting into the config', async () => {
    const config = await project([{ method: 'hnsw', distance: 'cosine' }])
    const run = await runCli(['index', 'check', 'documents.body_embedding', '--queries', '80', '--grid', '1,200', '--write'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/ef_search[\s\S]*recall@10[\s\S]*unseen queries ≥[\s\S]*recommended ef_search 200: recall@10 1\.000 on these 80 queries, at least 0\.963 as the mean recall of queries like them/)
    expect(run.stdout).toMatch(/wrote tables\.documents\.embeddings\.body_embedding\.indexes: efSearch 200/)
    expect(await readFile(join(db.cwd, 'pgml-kit.config.ts'), 'utf8')).toMatch(/efSearch: 200/)
    const reloaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    expect(reloaded.state.indexes[0]?.search).toEqual({ efSearch: 200, probes: null })
    // A query-time default changes no migration.
    expect((await runCli(['generate', '--check'], { cwd: db.cwd, databaseUrl: db.databaseUrl })).code).toBe(0)

    const json = await runCli(['--json', 'index', 'check', 'documents.body_embedding', '--queries', '80', '--grid', '40'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(JSON.parse(json.stdout)).toMatchObject({ parameter: 'ef_search', queries: 80, recorded: true, rows: [{ setting: 40 }] })
    const status = await runCli(['status'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(status.stdout).toMatch(/recall@10 [\d.]+ at ef_search 40/)
    // Too few queries to show the target: status says so, not that the recall is below it.
    await runCli(['index', 'check', 'documents.body_embedding', '--queries', '5', '--grid', '40'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect((await runCli(['status'], { cwd: db.cwd, databaseUrl: db.databaseUrl })).stdout).toMatch(/recall@10 [\d.]+, 0\.95 not shown on unseen queries/)
    const unknown = await runCli(['index', 'check', 'documents.title'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/"documents.title" is not an embedding column in the config/)
    void config
  })

  it('a query sampled from the table is left out of its own answers: the index must find its neighbours, not the row itself', async () => {
    const config = await project([{ method: 'ivfflat', distance: 'l2', lists: 20 }])
    // IVFFlat with one probe reads the list of the centroid nearest the query: a row of the table is
    // always in it, its nearest other row often in another list.
    const sampled = await withClient((c) => checkIndex(c, config.state, { column: 'documents.body_embedding', k: 1, queries: 200, grid: [1, 20] }))
    const [one, all] = sampled.rows
    expect(one!.recall).toBeLessThan(0.95)
    expect(all).toMatchObject({ recall: 1, short: 0 })
    // The same rows given as vectors (not left out): each query finds itself at distance 0, with any probe.
    const vectors = (await db.query<{ v: string }>(`SELECT body_embedding::text AS v FROM documents ORDER BY id LIMIT 100`)).map((r) => JSON.parse(r.v) as number[])
    const given = await withClient((c) => checkIndex(c, config.state, { column: 'documents.body_embedding', k: 1, queryVectors: vectors, grid: [1] }))
    expect(given.rows[0]!.recall).toBe(1)
  })

  it('refuses to measure a plan that does not read the vector index, or settings it does not take; a role that may only read, and a hostile search_path, change nothing', async () => {
    const config = await project([{ method: 'hnsw', distance: 'l2' }])
    // A filter the primary key serves: the planner reads the B-tree and sorts — an exact scan.
    await expect(withClient((c) => checkIndex(c, config.state, { column: 'documents.body_embedding', queries: 20, grid: [10], where: 'id < 20' })))
      .rejects.toThrow(/with --where id < 20, the planner does not read public\.documents_body_embedding_hnsw_l2_idx for this search/)
    await expect(withClient((c) => checkIndex(c, config.state, { column: 'documents.body_embedding', queries: 20, grid: [10, 2000] })))
      .rejects.toThrow(/ef_search 2000 outside what public\.documents_body_embedding_hnsw_l2_idx takes \(1 to 1000\)/)
    const write = await runCli(['index', 'check', 'documents.body_embedding', '--where', "department = 'tenth'", '--write'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(write.code).toBe(2)
    expect(write.stderr).toMatch(/--write with --where: a setting measured on filtered searches is no default/)
    const k = await runCli(['index', 'check', 'documents.body_embedding', '-k', '2000'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(k.code).toBe(2)
    expect(k.stderr).toMatch(/--k must be at most 1000/)
    // Operators planted in a schema the session searches before pg_catalog, counting their calls.
    await db.query(`CREATE SCHEMA evil; CREATE SEQUENCE evil.calls;
      CREATE FUNCTION evil.eq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_catalog.nextval('evil.calls'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
      CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.eq);
      CREATE FUNCTION evil.eqn(name, name) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_catalog.nextval('evil.calls'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
      CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.eqn);
      CREATE ROLE reader; GRANT SELECT ON documents TO reader; GRANT USAGE ON SCHEMA evil TO reader`)
    const recorded = await withClient(async (c) => {
      await c.query('SET search_path = evil, pg_catalog, public')
      const result = await checkIndex(c, config.state, { column: 'documents.body_embedding', queries: 20, grid: [40] })
      return recordCheck(c, config.state, result)
    })
    expect(recorded).toBe(true)
    expect(await db.query(`SELECT is_called FROM evil.calls`)).toEqual([{ is_called: false }])
    // A role that may read the table and nothing of pgml_kit: measured, and not kept (no error).
    const asReader = await withClient(async (c) => {
      await c.query('SET ROLE reader')
      const result = await checkIndex(c, config.state, { column: 'documents.body_embedding', queries: 20, grid: [40] })
      return { result, kept: await recordCheck(c, config.state, result) }
    })
    expect(asReader.result.rows).toHaveLength(1)
    expect(asReader.kept).toBe(false)
  })

  it('plan and generate --database-url size \'auto\' parameters from the table and say why', async () => {
    await project([{ method: 'hnsw', distance: 'cosine' }])
    await new TestProject(db).writeConfig(documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine' }, { method: 'ivfflat', distance: 'l2', lists: 'auto', build: 'auto' }] }))
    const plan = await runCli(['plan', '--database-url', db.url], { cwd: db.cwd })
    expect(plan.code).toBe(0)
    expect(plan.stdout).toMatch(/lists=2 \(auto\)/)
    expect(plan.stdout).toMatch(/2,000 rows in public\.documents .*, 2,000 with a vector/)
    expect(plan.stdout).toMatch(/lists 2 \(auto: lists = rows \/ 1000 for up to 1M rows \(2,000 rows\), probes = √lists\); search with probes 1 to start/)
    expect(plan.stdout).toMatch(/set_config\('maintenance_work_mem'/)
    // Without a database: pgvector's default, said in a note.
    expect((await runCli(['plan'], { cwd: db.cwd })).stdout).toMatch(/lists 'auto': no database to size them from, so pgvector's defaults are used/)
    // A $DATABASE_URL that does not answer: the plan is made from the config alone, and says so.
    const unanswered = await runCli(['plan'], { cwd: db.cwd, databaseUrl: 'postgres://nobody@127.0.0.1:9/none' })
    expect(unanswered.code).toBe(0)
    expect(unanswered.stderr).toMatch(/not checked or sized: \$DATABASE_URL did not answer/)
    expect(unanswered.stdout).toMatch(/lists 'auto': no database to size them from/)
    const generated = await runCli(['generate', '--name', 'ivfflat', '--database-url', db.url], { cwd: db.cwd })
    expect(generated.code).toBe(0)
    // (The file is not migrated here: the test project's own migrations carry timestamps from the future.)
    const file = generated.stdout.match(/wrote (\S+--create-vector-index\.sql)/)?.[1]
    expect(await readFile(file!, 'utf8')).toMatch(/set_config\('maintenance_work_mem'[\s\S]*USING ivfflat \("body_embedding" "vector_l2_ops"\) WITH \(lists = 2\)/)
  })
})
