import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import type { ChunkedColumnNode } from '../../src/model/ir.js'
import { chunkRow } from '../../src/chunking/document.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { localEmbedderLoader } from '../../src/embed/embedder-for-config.js'
import type { LocalEmbedder } from '../../src/embed/local-embedder.js'
import { createEmbeddingWriter } from '../../src/app/embedding-writer.js'
import { backfillChunks } from '../../src/chunking/backfill.js'
import { createKit } from '../../src/query/create-kit.js'
import { MODELS_DIR, TINY_16, loadTiny, parseVector } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { runCli } from '../helpers/cli.js'
import { tiers, withClient, type TestDatabase } from '../helpers/targets.js'
import { cp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { readStatus } from '../../src/status.js'
import { READ_CHUNK_TABLES } from '../../src/sql/render-chunks.js'

/**
 * A staged chunking change (issue 29), on both tiers, with hostile but legal names: the splitter's
 * size and the template change; `generate` adds a shadow chunk table with the new settings while
 * searches go on reading the live one, kept with the old settings; writes during the shadow reach
 * both tables, each chunked its own way; the switch is generated once the database says the
 * shadow is filled, and trades the tables in one transaction; down switches back exactly; the
 * previous table is dropped only with --allow-destructive. Every table is checked against a fresh
 * chunking and embedding of every row with the settings it records: nothing stale, nothing missing.
 */

const SCHEMA = 'Doc "store"'
const TABLE = "Doc's pages"
const Q = `"Doc ""store"""."Doc's pages"`
const LIVE = 'Doc\'s pages_body_chunks'
const chunkTable = (name: string) => `"Doc ""store"""."${name}"`

const SOURCE_TABLE = `
-- Up Migration
CREATE SCHEMA "Doc ""store""";
CREATE TABLE ${Q} ("Tenant id" text NOT NULL, n bigint NOT NULL, title text, body text, department text, PRIMARY KEY ("Tenant id", n));
-- Down Migration
DROP SCHEMA "Doc ""store""" CASCADE;
`

const OLD = { size: 120, template: '{title}: {chunk}' }
const NEW = { size: 70, overlap: 10, template: '{department} / {title}: {chunk}' }

function config(mode: 'queue' | 'app', chunking: Record<string, unknown>): PgmlKitConfig {
  return {
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    tables: {
      [TABLE]: {
        schema: SCHEMA,
        primaryKey: ['Tenant id', 'n'],
        embeddings: {
          body_chunks: {
            source: 'body',
            model: { id: TINY_16.id, dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ' },
            mode,
            chunking: { sectionEvery: 3, fullText: 'simple', ...chunking },
            indexes: [{ method: 'hnsw', distance: 'cosine' }],
          },
        },
      },
    },
  }
}

function doc(n: number, seed = 0): string {
  const words = ['river', 'bridge', 'tax', 'permit', 'library', 'park', 'school', 'tram', 'waste', 'garden', 'noise', 'parking']
  return Array.from({ length: n }, (_, i) => Array.from({ length: 8 + ((i * 7 + seed) % 9) }, (_, j) => words[(i * 5 + j * 3 + seed) % words.length]).join(' ') + ` (paragraph ${i})`).join('\n\n')
}

describe.each(tiers)('a staged chunking change on the $name tier', (tier) => {
  let db: TestDatabase
  let embedder: LocalEmbedder
  afterEach(async () => db?.close())

  async function setup(mode: 'queue' | 'app') {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-pages.sql', SOURCE_TABLE)
    await p.writeConfig(config(mode, OLD))
    embedder ??= await loadTiny()
    return p
  }
  /** A project with the pages table, `rows` rows of `tenant` (department `<department> n`), and the chunked column in `mode` (OLD settings) generated and migrated. */
  async function chunkedProject(mode: 'queue' | 'app', rows: number, tenant: string, department: string) {
    const p = await setup(mode)
    await p.migrate()
    for (let n = 1; n <= rows; n++) await db.query(`INSERT INTO ${Q} VALUES ($1, $2, $3, $4, $5)`, [tenant, n, `Page ${n}`, doc(3 + n, n), `${department} ${n}`])
    await p.generate('chunks')
    await p.migrate()
    return p
  }
  const nodeOf = async (): Promise<ChunkedColumnNode> => (await loadConfig('pgml-kit.config.ts', db.cwd)).state.chunkedColumns![0]!
  const tables = async () => (await db.query<{ name: string }>(`SELECT relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND relkind = 'r' AND relname LIKE '%chunks%' ORDER BY 1`, [SCHEMA])).map((r) => r.name)
  const jobs = (column: string) => db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs WHERE column_name = $1', [column]).then((r) => r[0]!.n)

  /** Table `name` holds exactly every row's chunks as `settings` makes them, each with a fresh embedding. */
  async function expectInSync(name: string, settings: ChunkedColumnNode) {
    const stored = await db.query<{ tenant: string; n: string; seq: number; chunk: string; embedding: string }>(
      `SELECT "Tenant id" AS tenant, n::text AS n, chunk_seq AS seq, chunk, embedding::text AS embedding FROM ${chunkTable(name)} ORDER BY 1, 2, 3`)
    const rows = await db.query<{ tenant: string; n: string; title: string | null; body: string | null; department: string | null }>(`SELECT "Tenant id" AS tenant, n::text AS n, title, body, department FROM ${Q} ORDER BY 1, 2`)
    for (const row of rows) {
      const want = chunkRow(settings, row.body, { title: row.title, department: row.department }, embedder)
      const have = stored.filter((c) => c.tenant === row.tenant && c.n === row.n)
      expect(have.map((c) => [c.seq, c.chunk]), `${name}: chunks of ${row.tenant}/${row.n}`).toEqual(want.map((w, i) => [i, w.chunk]))
      if (want.length === 0) continue
      const fresh = await embedder.embed(want.map((w) => w.embedded), { as: 'document' })
      have.forEach((c, i) => parseVector(c.embedding).forEach((x, k) => expect(Math.abs(x - fresh[i]![k]!), `${name}: vector of ${row.n}/${i}`).toBeLessThan(1e-5)))
    }
    const keys = new Set(rows.map((r) => `${r.tenant}/${r.n}`))
    expect(stored.filter((c) => !keys.has(`${c.tenant}/${c.n}`))).toEqual([])
  }

  it('queue mode: shadow, writes during it, the switch once filled (with a worker running across it), down and up, then the drop', async () => {
    const p = await chunkedProject('queue', 5, "a'b", 'dept')
    await p.work()
    const oldNode = await nodeOf()
    await expectInSync(LIVE, oldNode)

    // 1. The shadow: the config changes the size, overlap and template (a new template column).
    await p.writeConfig(config('queue', NEW))
    const newNode = await nodeOf()
    const shadow = await p.generateWith('resize', { sized: true })
    expect(shadow.plan.stages.map((s) => s.stage)).toEqual(['shadow'])
    await p.migrate()
    expect(await tables()).toEqual([LIVE, `${LIVE}__next`])
    // Every row queued for the shadow; the live table untouched and still searched.
    expect(await jobs('body_chunks__next')).toBe(5)
    await expectInSync(LIVE, oldNode)
    // generate without a filled shadow: the switch waits, saying how far it is.
    const waiting = await p.generateWith('too-early', { sized: true })
    expect(waiting.written).toEqual([])
    expect(waiting.plan.stages[0]).toMatchObject({ stage: 'waits-for-switch', waiting: true })
    expect(waiting.plan.stages[0]!.message).toMatch(/0\.0% filled \(5 of 5 rows with text have chunks in the live table and none in it yet/)

    // Writes during the shadow: each table is kept with its own settings.
    await db.query(`UPDATE ${Q} SET body = $1 WHERE n = 1`, [doc(6, 11)])
    await db.query(`UPDATE ${Q} SET department = 'renamed' WHERE n = 2`)
    await db.query(`INSERT INTO ${Q} VALUES ('x', 9, 'Nine', $1, 'dept 9')`, [doc(5, 9)])
    await db.query(`DELETE FROM ${Q} WHERE n = 3`)
    await p.work()
    await expectInSync(LIVE, oldNode)
    await expectInSync(`${LIVE}__next`, newNode)

    // 2. The switch, with a worker running and writers writing across it.
    const switched = await p.generateWith('resize-switch', { sized: true })
    expect(switched.plan.stages.map((s) => s.stage)).toEqual(['switch'])
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const controller = new AbortController()
    const failures: string[] = []
    const worker = runWorker({
      url: db.url, columns: [], chunked: loaded.state.chunkedColumns, loadEmbedder: async () => embedder, loadChunkEmbedder: async () => embedder,
      pollIntervalMs: 10, batchSize: 2, signal: controller.signal,
      onChunkBatch: (_node, r) => failures.push(...(r.failures ?? []).map((f) => f.error)),
    })
    const writes = withClient(db.url, async (c: pg.Client) => {
      for (let k = 0; k < 12; k++) {
        await c.query(`UPDATE ${Q} SET body = $1 WHERE n = $2`, [doc(4 + (k % 4), 100 + k), 1 + (k % 2)])
        // A delete (its chunks go by the foreign key's cascade, from the source table to the chunk tables) and the row again.
        if (k % 3 === 0) await c.query(`BEGIN; DELETE FROM ${Q} WHERE n = 5; INSERT INTO ${Q} VALUES ('a''b', 5, 'Page 5', '${doc(4, k)}', 'dept 5'); COMMIT`)
        await new Promise((r) => setTimeout(r, 15))
      }
    })
    await p.migrate()
    await writes
    // Let the worker drain what the writers queued, then stop it.
    for (let i = 0; i < 200 && (await jobs('body_chunks')) + (await jobs('body_chunks__previous')) > 0; i++) await new Promise((r) => setTimeout(r, 50))
    controller.abort()
    const totals = await worker
    expect(failures).toEqual([])
    expect(totals.failed).toBe(0)
    expect(await tables()).toEqual([LIVE, `${LIVE}__previous`])
    await expectInSync(LIVE, newNode)
    await expectInSync(`${LIVE}__previous`, oldNode)
    // Searches read the new chunks, through the kit built from the config, with no change to it.
    const pool = new pg.Pool({ connectionString: db.url, max: 1 })
    const kit = createKit(config('queue', NEW), { db: new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) }) })
    try {
      const hits = await kit.searchChunks(`${TABLE}.body_chunks` as never, 'parking permits', { return: 'chunks', k: 500 })
      const all = await db.query<{ chunk: string }>(`SELECT chunk FROM ${chunkTable(LIVE)}`)
      expect(hits.length).toBe(all.length)
      expect(new Set(hits.map((h) => h.chunk))).toEqual(new Set(all.map((r) => r.chunk)))
    } finally {
      await pool.end()
    }

    // 3. Down switches back exactly; up again.
    await p.migrate('down', 1)
    expect(await tables()).toEqual([LIVE, `${LIVE}__next`])
    await db.query(`UPDATE ${Q} SET title = 'Retitled' WHERE n = 4`)
    await p.work()
    await expectInSync(LIVE, oldNode)
    await expectInSync(`${LIVE}__next`, newNode)
    await p.migrate()
    await expectInSync(LIVE, newNode)

    // 4. The previous table waits for --allow-destructive, then goes with its jobs and triggers.
    const kept = await p.generateWith('done', { allowDestructive: false, sized: true })
    expect(kept.written).toEqual([])
    expect(kept.plan.stages[0]).toMatchObject({ stage: 'keeps-previous', waiting: true })
    const dropped = await p.generateWith('done', { allowDestructive: true, sized: true })
    expect(dropped.plan.stages.map((s) => s.stage)).toEqual(['drop-previous'])
    await p.migrate()
    expect(await tables()).toEqual([LIVE])
    await db.query(`UPDATE ${Q} SET body = $1 WHERE n = 2`, [doc(3, 77)])
    expect(await jobs('body_chunks__previous')).toBe(0)
    await p.work()
    await expectInSync(LIVE, newNode)
    const check = await runCli(['generate', '--check'], { cwd: db.cwd, databaseUrl: db.databaseUrl || undefined })
    expect(check.code, check.stdout + check.stderr).toBe(0)
  })

  it('app mode: the embedding writer keeps both tables, backfill fills the shadow; a switch refused while unfilled changes nothing', async () => {
    const p = await chunkedProject('app', 4, 't', 'dept')
    const loadEmbedder = async () => embedder
    await backfillChunks({ url: db.url, node: await nodeOf(), loadEmbedder })
    const oldNode = await nodeOf()
    await expectInSync(LIVE, oldNode)

    await p.writeConfig(config('app', NEW))
    const newNode = await nodeOf()
    await p.generate('resize')
    await p.migrate()
    expect(await tables()).toEqual([LIVE, `${LIVE}__next`])

    // The writer, built from the new config, writes the live table with the settings it records and the shadow with the new ones.
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    const writer = createEmbeddingWriter(config('app', NEW), { db: pool, loadChunkEmbedder: loadEmbedder })
    try {
      await writer.insert(TABLE, [{ 'Tenant id': 't', n: '7', title: 'Seven', body: doc(6, 7), department: 'dept 7' }])
      await writer.update(TABLE, { 'Tenant id': 't', n: 1 }, { department: 'moved' })
      await writer.update(TABLE, { 'Tenant id': 't', n: 2 }, { body: doc(5, 22) })
    } finally {
      await pool.end()
    }
    await expectInSync(LIVE, oldNode)
    const shadowRows = await db.query<{ n: string }>(`SELECT DISTINCT n::text AS n FROM ${chunkTable(`${LIVE}__next`)} ORDER BY 1`)
    expect(shadowRows.map((r) => r.n)).toEqual(['1', '2', '7'])

    // A switch written without looking (generate --switch) is refused by migrate while the shadow is not filled, changing nothing.
    await p.generate('resize-switch', { switch: 'always' })
    await expect(p.migrate()).rejects.toThrow(/body_chunks__next is not filled: 2 of 5 rows with text have chunks in Doc's pages_body_chunks but none in it yet, 2 have none and no queued job/)
    expect(await tables()).toEqual([LIVE, `${LIVE}__next`])
    await expectInSync(LIVE, oldNode)

    // Backfill fills it (the live table first, then the shadow); the same switch now runs.
    await backfillChunks({ url: db.url, node: newNode, loadEmbedder })
    await expectInSync(`${LIVE}__next`, newNode)
    await p.migrate()
    expect(await tables()).toEqual([LIVE, `${LIVE}__previous`])
    await expectInSync(LIVE, newNode)
    await expectInSync(`${LIVE}__previous`, oldNode)
  })

  it('the shadow migration records the live table\'s own settings (a table from before they were recorded, or a hand-written comment); one replaced during the stage stops the worker instead of re-chunking with the config\'s', async () => {
    const p = await chunkedProject('queue', 3, "a'b", 'dept')
    await p.work()
    const oldNode = await nodeOf()
    // As a table made before settings were recorded has it, or after a DBA documented it.
    await db.query(`COMMENT ON TABLE ${chunkTable(LIVE)} IS 'chunks of the pages, see the wiki'`)
    await p.writeConfig(config('queue', NEW))
    await p.generate('resize')
    await p.migrate()
    await db.query(`UPDATE ${Q} SET body = $1 WHERE n = 1`, [doc(6, 11)])
    await p.work()
    await expectInSync(LIVE, oldNode)
    await expectInSync(`${LIVE}__next`, await nodeOf())
    // status lists each chunk table once, with its own settings.
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const status = await readStatus({ cwd: db.cwd, databaseUrl: db.databaseUrl, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state })
    expect(status.chunkedColumns.map((c) => [c.column, c.role ?? 'live', c.chunking])).toEqual([['body_chunks', 'live', 'recursive 120/0 {title}: {chunk}'], ['body_chunks__next', 'next', 'recursive 70/10 {department} / {title}: {chunk}']])
    // Replaced by hand during the stage: the worker stops, saying why, and writes nothing.
    await db.query(`COMMENT ON TABLE ${chunkTable(LIVE)} IS 'edited'`)
    await db.query(`UPDATE ${Q} SET body = $1 WHERE n = 2`, [doc(5, 12)])
    await expect(p.work()).rejects.toMatchObject({ code: 'CHUNK_SETTINGS_UNKNOWN' })
    // status says so too.
    const after = await readStatus({ cwd: db.cwd, databaseUrl: db.databaseUrl, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state })
    expect(after.chunkedColumns[0]!.problem).toMatch(/records no pgml-kit settings in its comment, and a staged chunking change .* is in progress/)
  })

  it('the shadow and its switch migrated in one run (generated against a filled database, deployed elsewhere): the switch is refused until the worker has filled the shadow there', async () => {
    const p = await setup('queue')
    const prodDb = await tier.create()
    const prod = new TestProject(prodDb)
    const copyMigrations = async () => {
      await rm(join(prodDb.cwd, 'migrations'), { recursive: true, force: true })
      await cp(join(db.cwd, 'migrations'), join(prodDb.cwd, 'migrations'), { recursive: true })
    }
    try {
      const seed = async (d: TestDatabase) => { for (let n = 1; n <= 5; n++) await d.query(`INSERT INTO ${Q} VALUES ('a', $1, $2, $3, $4)`, [n, `Page ${n}`, doc(3 + n, n), `dept ${n}`]) }
      await p.migrate()
      await seed(db)
      await p.generate('chunks')
      await p.migrate()
      await p.work()
      await prod.writeConfig(config('queue', OLD))
      await copyMigrations()
      await prod.migrate()
      await seed(prodDb)
      await prod.work()
      // Production's chunk table has its primary key under another name (PostgreSQL's own, as before pgml-kit named it): the shadow stage renames it for the switch.
      await prodDb.query(`ALTER TABLE ${chunkTable(LIVE)} RENAME CONSTRAINT "Doc's pages_body_chunks_pkey" TO "Doc's pages_body_chunks_pkey1"`)
      await p.writeConfig(config('queue', NEW))
      await p.generate('resize')
      await p.migrate()
      await p.work()
      expect((await p.generateWith('resize-switch', { sized: true })).plan.stages.map((s) => s.stage)).toEqual(['switch'])
      // Production gets both files at once.
      await prod.writeConfig(config('queue', NEW))
      await copyMigrations()
      await expect(prod.migrate()).rejects.toThrow(/body_chunks__next is not filled: 5 of 5 rows with text have chunks in Doc's pages_body_chunks but none in it yet, 0 have none and no queued job/)
      const prodTables = async () => (await prodDb.query<{ name: string }>(`SELECT relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND relkind = 'r' AND relname LIKE '%chunks%' ORDER BY 1`, [SCHEMA])).map((r) => r.name)
      expect(await prodTables()).toEqual([LIVE, `${LIVE}__next`])
      await prod.work()
      await prod.migrate()
      expect(await prodTables()).toEqual([LIVE, `${LIVE}__previous`])
      expect((await prodDb.query<{ n: number }>(`SELECT count(DISTINCT n)::int AS n FROM ${chunkTable(LIVE)}`))[0]!.n).toBe(5)
    } finally {
      await prodDb.close()
    }
  })

  if (tier.name === 'server') {
    it('a table named like a shadow or previous copy, made by another role with CREATE on the schema, is never read, written or trusted', async () => {
      const p = await chunkedProject('app', 3, 't', 'secret')
      const mallory = `mallory_${Math.random().toString(36).slice(2, 8)}`
      await db.query(`CREATE ROLE ${mallory} NOLOGIN`)
      try {
        await db.query(`GRANT USAGE, CREATE ON SCHEMA "Doc ""store""" TO ${mallory}`)
        const live = (await db.query<{ c: string }>(`SELECT obj_description('${chunkTable(LIVE).replace(/'/g, "''")}'::regclass, 'pg_class') AS c`))[0]!.c
        const forged = live.replace('{title}: {chunk}', 'LEAK {chunk}')
        await db.session(async (q) => {
          await q(`SET ROLE ${mallory}`)
          await q(`CREATE TABLE ${chunkTable(`${LIVE}__next`)} ("Tenant id" text, n bigint, chunk_seq int, chunk text, content_hash text, embedding text, model text)`)
          await q(`CREATE TABLE ${chunkTable(`${LIVE}__previous`)} (x int)`)
          await q(`GRANT ALL ON ${chunkTable(`${LIVE}__next`)} TO PUBLIC`)
          await q(`COMMENT ON TABLE ${chunkTable(`${LIVE}__next`)} IS '${forged.replace(/'/g, "''")}'`)
          await q(`COMMENT ON TABLE ${chunkTable(`${LIVE}__previous`)} IS 'pgml-kit chunks, made with: {"sourceColumns":[],"chunking":{},"model":{"id":"evil","dimensions":1},"vectorType":"vector"}'`)
          await q('RESET ROLE')
        })
        const result = await backfillChunks({ url: db.url, node: await nodeOf(), loadEmbedder: async () => embedder })
        expect(result.column).toBe(`${TABLE}.body_chunks`)
        expect(await db.query(`SELECT * FROM ${chunkTable(`${LIVE}__next`)}`)).toEqual([])
        const pool = new pg.Pool({ connectionString: db.url, max: 1 })
        try {
          await createEmbeddingWriter(config('app', OLD), { db: pool, loadChunkEmbedder: async () => embedder }).insert(TABLE, [{ 'Tenant id': 't', n: '9', title: 'Nine', body: doc(4, 9), department: 'd' }])
        } finally {
          await pool.end()
        }
        expect(await db.query(`SELECT * FROM ${chunkTable(`${LIVE}__next`)}`)).toEqual([])
        await expectInSync(LIVE, await nodeOf())
      } finally {
        await db.query(`DROP TABLE IF EXISTS ${chunkTable(`${LIVE}__next`)}, ${chunkTable(`${LIVE}__previous`)}`)
        await db.query(`REVOKE ALL ON SCHEMA "Doc ""store""" FROM ${mallory}`)
        await db.query(`DROP ROLE ${mallory}`)
      }
    })

    it('app mode: the switch and its down wait for the application\'s writes (their cascades reach the chunk tables) instead of deadlocking; a writer\'s insert in flight commits before the switch', async () => {
      const p = await chunkedProject('app', 4, 't', 'dept')
      const loadEmbedder = async () => embedder
      await backfillChunks({ url: db.url, node: await nodeOf(), loadEmbedder })
      await p.writeConfig(config('app', NEW))
      await p.generate('resize')
      await p.migrate()
      await backfillChunks({ url: db.url, node: await nodeOf(), loadEmbedder })
      await p.generate('switch', { switch: 'always' })
      // A writer whose insert is in flight when the switch starts: the switch waits for it.
      const client = new pg.Client({ connectionString: db.url })
      await client.connect()
      let migrating: Promise<string> | null = null
      const original = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>
      ;(client as unknown as { query: unknown }).query = async (...args: unknown[]) => {
        const out = await original(...args)
        if (migrating === null && args[0] === READ_CHUNK_TABLES) {
          migrating = p.migrate().then(() => 'switched', (e: Error) => `switch failed: ${e.message}`)
          await new Promise((r) => setTimeout(r, 300))
        }
        return out
      }
      const inserted = await createEmbeddingWriter(config('app', NEW), { db: client, loadChunkEmbedder: loadEmbedder })
        .insert(TABLE, [{ 'Tenant id': 't', n: '9', title: 'Nine', body: doc(4, 9), department: 'd' }]).then(() => 'inserted', (e: Error) => `insert failed: ${e.message}`)
      await client.end()
      expect([inserted, await migrating]).toEqual(['inserted', 'switched'])
      expect(await tables()).toEqual([LIVE, `${LIVE}__previous`])
      await expectInSync(LIVE, await nodeOf())
      // migrate down of the switch while an application DELETE cascades into both chunk tables, and another session holds a chunk row.
      const x = new pg.Client({ connectionString: db.url })
      const a = new pg.Client({ connectionString: db.url })
      await x.connect()
      await a.connect()
      try {
        await x.query('BEGIN')
        await x.query(`SELECT 1 FROM ${chunkTable(`${LIVE}__previous`)} WHERE n = 1 FOR UPDATE`)
        const deleted = a.query(`DELETE FROM ${Q} WHERE n = 1`).then(() => 'deleted', (e: Error) => `delete failed: ${e.message}`)
        await new Promise((r) => setTimeout(r, 300))
        const down = p.migrate('down', 1).then(() => 'down', (e: Error) => `down failed: ${e.message}`)
        await new Promise((r) => setTimeout(r, 500))
        await x.query('COMMIT')
        expect(await Promise.all([deleted, down])).toEqual(['deleted', 'down'])
      } finally {
        await x.end()
        await a.end()
      }
      expect(await tables()).toEqual([LIVE, `${LIVE}__next`])
    })

    it('a shadow made by a superuser that migrates, beside a live chunk table owned by another role, is served (its owner has the live owner\'s rights)', async () => {
      const p = await chunkedProject('queue', 3, 'o', 'dept')
      await p.work()
      const owners = `owners_${Math.random().toString(36).slice(2, 8)}`
      await db.query(`CREATE ROLE ${owners} NOLOGIN`)
      try {
        await db.query(`ALTER TABLE ${chunkTable(LIVE)} OWNER TO ${owners}`)
        await p.writeConfig(config('queue', NEW))
        await p.generate('resize')
        await p.migrate()
        await p.work()
        await expectInSync(`${LIVE}__next`, await nodeOf())
      } finally {
        await db.query(`REASSIGN OWNED BY ${owners} TO CURRENT_USER`)
        await db.query(`DROP ROLE ${owners}`)
      }
    })
  }
})
