import { writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { generate } from '../../src/migrations/generate.js'
import { migrate } from '../../src/migrations/run.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { MODELS_DIR, loadTiny } from '../helpers/embedders.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

const MODEL = { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }

/**
 * A database pgml-kit shares: with another tool that uses pgvector, with a second pgml-kit
 * project. pgml-kit creates, and removes again, only what is its own.
 */
describe.each(tiers)('a shared database on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  /** A project in the test directory: its own config file, migrations folder and history table. */
  async function project(name: string, tables: PgmlKitConfig['tables'], baseSql: string) {
    const dir = `migrations-${name}`
    await mkdir(join(db.cwd, dir), { recursive: true })
    await writeFile(join(db.cwd, dir, '1000000000000_base.sql'), `-- Up Migration\n${baseSql}\n-- Down Migration\nSELECT 1;\n`)
    const config: PgmlKitConfig = { embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false }, migrations: { dir, table: `history_${name}` }, tables }
    const file = `${name}.config.ts`
    const write = (c: PgmlKitConfig) => writeFile(join(db.cwd, file), `export default ${JSON.stringify(c)}\n`)
    await write(config)
    let timestamp = 2_000_000_000_000
    const load = () => loadConfig(file, db.cwd)
    return {
      load,
      async change(tablesNow: PgmlKitConfig['tables']) {
        await write({ ...config, tables: tablesNow })
        await generate(await load(), { name: 'change', timestamp: (timestamp += 1000), allowDestructive: true })
      },
      async migrate(direction: 'up' | 'down' = 'up', count?: number) {
        const c = await load()
        return migrate({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: c.migrationsDir, settings: c.migrations, direction, ...(count ? { count } : {}) })
      },
    }
  }

  const queueTable = (table: string): PgmlKitConfig['tables'] => ({ [table]: { embeddings: { emb: { source: 'body', model: MODEL, mode: 'queue' } } } })
  const extensions = () => db.query<{ extname: string }>(`SELECT extname FROM pg_extension WHERE extname = 'vector'`).then((r) => r.map((x) => x.extname))
  const hasRuntime = () => db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgml_kit'`).then((r) => r[0]!.n === 1)

  it('reverting in a database that already used pgvector keeps pgvector and the other tool\'s data', async () => {
    db = await tier.create()
    const p = await project('a', {}, `CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE other_tool (v vector(3)); INSERT INTO other_tool VALUES ('[1,2,3]');
CREATE TABLE docs (id int PRIMARY KEY, body text);`)
    await p.migrate()
    await p.change(queueTable('docs'))
    await p.migrate()
    await p.migrate('down', 1)
    expect(await extensions()).toEqual(['vector'])
    expect(await db.query(`SELECT v::text AS v FROM other_tool`)).toEqual([{ v: '[1,2,3]' }])
    expect(await hasRuntime()).toBe(false)
  })

  it('a second pgml-kit project shares the runtime schema; each reverts without breaking the other', async () => {
    db = await tier.create()
    const a = await project('a', {}, 'CREATE TABLE a_docs (id int PRIMARY KEY, body text);')
    const b = await project('b', {}, 'CREATE TABLE b_docs (id int PRIMARY KEY, body text);')
    await a.migrate()
    await b.migrate()
    await a.change(queueTable('a_docs'))
    await b.change(queueTable('b_docs'))
    await a.migrate()
    await b.migrate()
    const embedder = await loadTiny({ ...MODEL, revision: null, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null })
    const drain = async (project: typeof a) => runWorker({ url: db.url, columns: (await project.load()).state.embeddingColumns, loadEmbedder: async () => embedder, once: true })
    await db.query(`INSERT INTO a_docs VALUES (1, 'a'); INSERT INTO b_docs VALUES (1, 'b')`)
    expect((await drain(a)).written).toBe(1)
    expect((await drain(b)).written).toBe(1)

    // a goes away: b's queue keeps working.
    await a.migrate('down', 1)
    expect(await hasRuntime()).toBe(true)
    expect(await extensions()).toEqual(['vector'])
    await db.query(`INSERT INTO b_docs VALUES (2, 'b again')`)
    expect((await drain(b)).written).toBe(1)
    // b goes too: nothing of pgml-kit is left, pgvector included (pgml-kit created it).
    await b.migrate('down', 1)
    expect(await hasRuntime()).toBe(false)
    expect(await extensions()).toEqual([])
  })

  it('removing every embedding column and adding one back works, and reverts step by step', async () => {
    db = await tier.create()
    const p = await project('a', {}, 'CREATE TABLE docs (id int PRIMARY KEY, body text);')
    await p.migrate()
    await p.change(queueTable('docs'))
    await p.migrate()
    await p.change({})
    await p.migrate()
    expect(await hasRuntime()).toBe(false)
    await p.change(queueTable('docs'))
    await p.migrate()
    expect(await hasRuntime()).toBe(true)
    await db.query(`INSERT INTO docs VALUES (1, 'x')`)
    expect(await db.query('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs')).toEqual([{ n: 1 }])
    // Back through all three changes: each down finds what it needs.
    expect((await p.migrate('down', 3)).ran).toHaveLength(3)
    expect(await hasRuntime()).toBe(false)
    expect(await db.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'docs' AND column_name = 'emb'`)).toEqual([{ n: 0 }])
  })

  it('creates the schema of the migration history table when it does not exist', async () => {
    db = await tier.create()
    await writeFile(join(db.cwd, 'pgml-kit.config.ts'), `export default ${JSON.stringify({ migrations: { schema: 'pgml_kit_history' }, tables: {} })}\n`)
    await mkdir(join(db.cwd, 'migrations'))
    await writeFile(join(db.cwd, 'migrations/1000000000000_base.sql'), '-- Up Migration\nCREATE TABLE t (id int);\n-- Down Migration\nDROP TABLE t;\n')
    const c = await loadConfig('pgml-kit.config.ts', db.cwd)
    expect((await migrate({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: c.migrationsDir, settings: c.migrations })).ran).toEqual(['1000000000000_base'])
    expect(await db.query(`SELECT name FROM pgml_kit_history.pgmigrations`)).toEqual([{ name: '1000000000000_base' }])
  })
})
