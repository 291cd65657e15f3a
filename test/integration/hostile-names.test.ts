import { readFile } from 'node:fs/promises'
import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { readDirectives } from '../../src/migrations/directives.js'
import { createKit } from '../../src/query/create-kit.js'
import { quoteIdent, quoteQualified } from '../../src/sql/quote.js'
import { readStatus } from '../../src/status.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { backfill } from '../../src/worker/backfill.js'
import { readColumnWithCopies } from '../../src/db/live-catalog.js'
import { localEmbedderLoader } from '../../src/embed/embedder-for-config.js'
import { MODELS_DIR, loadTiny } from '../helpers/embedders.js'
import { DOUBLE_DIMENSIONS, PGML_EMBED_TEST_DOUBLE } from '../helpers/fixtures.js'
import { parseStatements, sections } from '../helpers/sql.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

const TINY = { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }
const DOUBLE = { id: 'test/double', dimensions: DOUBLE_DIMENSIONS }

interface HostileTable {
  readonly schema: string
  readonly table: string
  readonly key: string
  readonly sources: readonly string[]
  readonly column: string
  readonly mode: 'queue' | 'trigger' | 'generated'
  readonly index?: string
}

/** Names that are legal in PostgreSQL and hostile to anything that builds SQL or files from them. */
const CASES: Record<string, readonly HostileTable[]> = {
  'newlines that look like section markers and directives, quotes, comments and dollar quotes': [{
    schema: 'public',
    table: 'x\n-- Up Migration\nDROP TABLE victim; --',
    key: 'k"ey\\',
    sources: ['\n-- Down Migration', 'e\n-- pgml-kit:no-transaction', "it's /* not */ $$ a comment"],
    column: 'emb $pgml_kit$ -- x',
    mode: 'queue',
    index: 'i$$x\r\n-- pgml-kit:requires pgml',
  }],
  'names that collide when joined with "__"': [
    { schema: 'a__b', table: 'c', key: 'id', sources: ['body'], column: 'emb', mode: 'queue' },
    { schema: 'a', table: 'b__c', key: 'id', sources: ['body'], column: 'emb', mode: 'queue' },
  ],
  'table a__b with column c, table a with column b__c': [
    { schema: 'public', table: 'a__b', key: 'id', sources: ['body'], column: 'c', mode: 'queue' },
    { schema: 'public', table: 'a', key: 'id', sources: ['body'], column: 'b__c', mode: 'queue' },
  ],
  'names that read alike when joined with ".": schema a table b column c.d, schema a.b table c column d, with quotes and spaces': [
    { schema: 'a "x', table: 'b c', key: 'id', sources: ['body'], column: 'd.e', mode: 'queue' },
    { schema: 'a "x.b c', table: 'd', key: 'id', sources: ['body'], column: 'e', mode: 'queue' },
  ],
  'source and key columns named like the aliases in pgml-kit\'s own SQL': [{
    schema: 'public', table: 'aliases', key: 'key', sources: ['c', 'q', 't', 'job', 'input', 'n', 'present', 'source_md5', 'row_key'], column: 'locked', mode: 'queue',
  }],
  'reserved words, unicode and line separators, in trigger mode': [{
    schema: 'select', table: 'user', key: 'table', sources: ['order', '文档 😀\u2028x'], column: 'dökümanlar\u2029', mode: 'trigger',
  }],
  'names of exactly 63 bytes, multi-byte, colliding once shortened, in generated mode': [
    { schema: 'public', table: 'é'.repeat(31) + 'x', key: 'id', sources: ['s'.repeat(63)], column: `${'ü'.repeat(30)}_a_`, mode: 'generated', index: undefined },
    { schema: 'public', table: `${'é'.repeat(31)}y`, key: 'id', sources: ['body'], column: `${'ü'.repeat(30)}_b_`, mode: 'generated' },
  ],
}

describe.each(tiers)('hostile but legal names on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  it.each(Object.entries(CASES))('%s: generates, applies, works and rolls back', async (_name, tables) => {
    db = await tier.create()
    const p = new TestProject(db)
    const usesPgml = tables.some((t) => t.mode !== 'queue')
    const create = tables.map((t) => `${t.schema === 'public' ? '' : `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(t.schema)};\n`}CREATE TABLE ${quoteQualified(t.schema, t.table)} (${quoteIdent(t.key)} bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ${t.sources.map((s) => `${quoteIdent(s)} text`).join(', ')});`)
    await p.writeMigration('1000000000000_base.sql', `-- Up Migration
CREATE TABLE victim (id int);
${create.join('\n')}
${usesPgml ? PGML_EMBED_TEST_DOUBLE : ''}
-- Down Migration
SELECT 1;
`)
    const config: PgmlKitConfig = { embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false }, tables: {} }
    for (const t of tables) {
      config.tables[t.table] = {
        schema: t.schema, primaryKey: t.key,
        embeddings: { [t.column]: { source: [...t.sources], model: t.mode === 'queue' ? TINY : DOUBLE, mode: t.mode, indexes: [{ method: 'hnsw', distance: 'cosine', ...(t.index ? { name: t.index } : {}) }] } },
      }
    }
    // The base migration first: it installs the pgml.embed test double that later files need.
    await p.writeConfig({ tables: {} })
    await p.migrate()
    await p.writeConfig(config)
    const written = await p.generate()

    // Every file: one Up and one Down section, directives only where pgml-kit put them, every statement parses.
    for (const file of written) {
      const content = await readFile(file, 'utf8')
      expect(content.match(/^\s*--[\s-]*up\s+migration/gim), file).toHaveLength(1)
      expect(content.match(/^\s*--[\s-]*down\s+migration/gim), file).toHaveLength(1)
      const concurrent = file.includes('--create-vector-index')
      expect(readDirectives(content), file).toEqual({ noTransaction: concurrent, requires: !concurrent && usesPgml ? ['pgml'] : [], downRequires: [] })
      const { up, down } = sections(content)
      expect(parseStatements(up), `${file} up`).toBeGreaterThan(0)
      expect(parseStatements(down), `${file} down`).toBeGreaterThan(0)
    }
    await p.migrate()
    expect(await db.query(`SELECT count(*)::int AS n FROM victim`)).toEqual([{ n: 0 }])

    // Writes work, and every row gets its vector.
    for (const t of tables) {
      await db.query(`INSERT INTO ${quoteQualified(t.schema, t.table)} (${t.sources.map(quoteIdent).join(', ')}) SELECT ${t.sources.map(() => `'text ' || i`).join(', ')} FROM generate_series(1, 5) AS i`)
      await db.query(`UPDATE ${quoteQualified(t.schema, t.table)} SET ${quoteIdent(t.sources[0]!)} = 'changed' WHERE ${quoteIdent(t.key)} = 2`)
    }
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const queued = loaded.state.embeddingColumns.filter((c) => c.mode === 'queue')
    if (queued.length > 0) {
      const embedder = await loadTiny({ ...TINY, revision: null, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null })
      expect((await runWorker({ url: db.url, columns: queued, loadEmbedder: async () => embedder, once: true })).written).toBe(5 * queued.length)
    }
    for (const t of tables) {
      expect(await db.query(`SELECT count(*)::int AS n FROM ${quoteQualified(t.schema, t.table)} WHERE ${quoteIdent(t.column)} IS NULL`)).toEqual([{ n: 0 }])
    }
    // Searches and status work with these names.
    const pool = new pg.Pool({ connectionString: db.url, max: 1 })
    try {
      const kit = createKit(loaded.source, { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool }) }), cwd: db.cwd }) as unknown as {
        search(r: string, q: number[]): { selectAll(): { execute(): Promise<unknown[]> } }
      }
      for (const c of loaded.state.embeddingColumns) {
        expect(await kit.search(`${c.table}.${c.column}`, Array.from({ length: c.model.dimensions }, (_, i) => (i === 0 ? 1 : 0))).selectAll().execute()).toHaveLength(5)
      }
    } finally {
      await pool.end()
    }
    const status = await readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state })
    expect(status.embeddingColumns.map((c) => c.column).sort()).toEqual(tables.map((t) => t.column).sort())

    // A staged model change with these names: the shadow, its backfill, the switch; searches follow.
    const changed: PgmlKitConfig = structuredClone(config)
    for (const t of tables) {
      const e = changed.tables[t.table]!.embeddings[t.column]!
      if (t.mode === 'queue') e.model = { ...TINY, documentPrefix: 'passage: ' }
      else Object.assign(e, { model: { ...DOUBLE, documentPrefix: 'p: ' }, mode: 'trigger' })
    }
    await p.writeConfig(changed)
    const rollout = [...await p.generate('shadow', { allowDestructive: false })]
    await p.migrate()
    const loadedChanged = await loadConfig('pgml-kit.config.ts', db.cwd)
    for (const c of loadedChanged.state.embeddingColumns) {
      for (const target of await readColumnWithCopies(db.url, c)) {
        expect((await backfill({ url: db.url, column: target, loadEmbedder: localEmbedderLoader(loadedChanged.embedder) })).failedCount).toBe(0)
      }
    }
    rollout.push(...await p.generate('switch', { switch: 'always', allowDestructive: false }))
    for (const file of rollout) {
      const content = await readFile(file, 'utf8')
      expect(content.match(/^\s*--[\s-]*up\s+migration/gim), file).toHaveLength(1)
      expect(content.match(/^\s*--[\s-]*down\s+migration/gim), file).toHaveLength(1)
      const directives = readDirectives(content)
      expect(directives.noTransaction, file).toBe(file.includes('--create-vector-index'))
      expect([...directives.requires, ...directives.downRequires].every((d) => d === 'pgml'), file).toBe(true)
      const { up, down } = sections(content)
      expect(parseStatements(up) + parseStatements(down), file).toBeGreaterThan(1)
    }
    await p.migrate()
    expect(await db.query(`SELECT count(*)::int AS n FROM victim`)).toEqual([{ n: 0 }])
    expect((await db.query<{ role: string | null }>('SELECT rollout_role AS role FROM pgml_kit.embedding_columns ORDER BY 1')).map((r) => r.role)).toEqual([...tables.map(() => 'previous'), ...tables.map(() => null)])
    const searchPool = new pg.Pool({ connectionString: db.url, max: 1 })
    try {
      const kit = createKit(loadedChanged.source, { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool: searchPool }) }), cwd: db.cwd }) as unknown as {
        search(r: string, q: string): { selectAll(): { execute(): Promise<unknown[]> } }
      }
      for (const c of loadedChanged.state.embeddingColumns) expect(await kit.search(`${c.table}.${c.column}`, 'text 3').selectAll().execute()).toHaveLength(5)
    } finally {
      await searchPool.end()
    }

    // And everything goes again — the switch, the shadow, the columns — the victim and the tables' own columns untouched.
    await p.migrate('down', rollout.length)
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.embedding_columns'))[0]!.n).toBe(tables.length)
    await p.migrate('down', written.length)
    expect(await db.query(`SELECT count(*)::int AS n FROM victim`)).toEqual([{ n: 0 }])
    expect(await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgml_kit'`)).toEqual([{ n: 0 }])
    for (const t of tables) {
      expect(await db.query(`SELECT count(*)::int AS n FROM ${quoteQualified(t.schema, t.table)}`)).toEqual([{ n: 5 }])
    }
  })
})
