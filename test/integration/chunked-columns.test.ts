import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import type { ChunkedColumnNode } from '../../src/model/ir.js'
import { chunkRow } from '../../src/chunking/document.js'
import { chunkHash } from '../../src/chunking/plan.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { localEmbedderLoader } from '../../src/embed/embedder-for-config.js'
import type { LocalEmbedder } from '../../src/embed/local-embedder.js'
import type { Embedder } from '../../src/embed/embedder.js'
import { createEmbeddingWriter } from '../../src/app/embedding-writer.js'
import { createKit } from '../../src/query/create-kit.js'
import { Kysely, PostgresDialect, sql } from 'kysely'
import { MODELS_DIR, TINY_16, loadTiny, parseVector } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { runCli } from '../helpers/cli.js'
import { readStatus } from '../../src/status.js'
import { tiers, withClient, type TestDatabase } from '../helpers/targets.js'

/**
 * Chunked embedding columns generated from the config, on both tiers, with hostile but legal names
 * (a schema and table with quotes, a composite key with a space): the migration creates the chunk
 * table, its foreign key, view, index and queue; the worker splits and embeds only the chunks whose
 * text changed; deletes and key changes carry the chunks; concurrent edits leave no stale chunk;
 * up/down/up.
 */

const SCHEMA = 'Doc "store"'
const TABLE = "Doc's pages"
const Q = `"Doc ""store"""."Doc's pages"`
const CHUNKS = `"Doc ""store"""."Doc's pages_body_chunks"`

const SOURCE_TABLE = `
-- Up Migration
CREATE SCHEMA "Doc ""store""";
CREATE TABLE ${Q} ("Tenant id" text NOT NULL, n bigint NOT NULL, title text, body text, department text, PRIMARY KEY ("Tenant id", n));
-- Down Migration
DROP SCHEMA "Doc ""store""" CASCADE;
`

function config(mode: 'queue' | 'app' = 'queue', chunking: Record<string, unknown> = {}): PgmlKitConfig {
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
            chunking: { size: 120, template: '{title}: {chunk}', sectionEvery: 3, fullText: 'simple', ...chunking },
            indexes: [{ method: 'hnsw', distance: 'cosine' }],
          },
        },
      },
    },
  }
}

/** A document of `n` paragraphs whose words depend on `seed`. */
function doc(n: number, seed = 0): string[] {
  const words = ['river', 'bridge', 'tax', 'permit', 'library', 'park', 'school', 'tram', 'waste', 'garden', 'noise', 'parking']
  return Array.from({ length: n }, (_, i) => Array.from({ length: 8 + ((i * 7 + seed) % 9) }, (_, j) => words[(i * 5 + j * 3 + seed) % words.length]).join(' ') + ` (paragraph ${i})`)
}

describe.each(tiers)('chunked embedding columns on the $name tier', (tier) => {
  let db: TestDatabase
  let embedder: LocalEmbedder
  afterEach(async () => db?.close())

  async function setup(c = config()) {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-pages.sql', SOURCE_TABLE)
    await p.writeConfig(c)
    embedder ??= await loadTiny()
    return p
  }
  const node = async (): Promise<ChunkedColumnNode> => (await loadConfig('pgml-kit.config.ts', db.cwd)).state.chunkedColumns![0]!
  type Row = { tenant: string; n: string; title: string | null; body: string | null }
  const rows = () => db.query<Row>(`SELECT "Tenant id" AS tenant, n::text AS n, title, body FROM ${Q} ORDER BY 1, 2`)
  const chunks = () => db.query<{ tenant: string; n: string; seq: number; chunk: string; hash: string; embedding: string; model: string }>(
    `SELECT "Tenant id" AS tenant, n::text AS n, chunk_seq AS seq, chunk, content_hash AS hash, embedding::text AS embedding, model FROM ${CHUNKS} ORDER BY 1, 2, 3`)
  const runOk = async (args: string[]) => {
    const r = await runCli(args, { cwd: db.cwd, databaseUrl: db.databaseUrl || undefined })
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
    return r
  }
  const jobs = () => db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs').then((r) => r[0]!.n)

  /** Every row's stored chunks are exactly its chunks as they are now, each with a fresh embedding of its formatted text: nothing stale, nothing missing. */
  async function expectInSync() {
    const n = await node()
    const stored = await chunks()
    for (const row of await rows()) {
      const want = chunkRow(n, row.body, { title: row.title }, embedder)
      const have = stored.filter((c) => c.tenant === row.tenant && c.n === row.n)
      expect(have.map((c) => [c.seq, c.chunk]), `chunks of ${row.tenant}/${row.n}`).toEqual(want.map((w, i) => [i, w.chunk]))
      if (want.length === 0) continue
      const fresh = await embedder.embed(want.map((w) => w.embedded), { as: 'document' })
      have.forEach((c, i) => {
        const v = parseVector(c.embedding)
        v.forEach((x, k) => expect(Math.abs(x - fresh[i]![k]!)).toBeLessThan(1e-5))
        expect(c.model).toBe(TINY_16.id)
      })
    }
    // No chunk of a row that is gone.
    const keys = new Set((await rows()).map((r) => `${r.tenant}/${r.n}`))
    expect(stored.filter((c) => !keys.has(`${c.tenant}/${c.n}`))).toEqual([])
  }

  it('queue mode: rows there before are queued; inserts, edits at the start, middle and end embed only changed chunks; other columns change nothing; key changes and deletes carry the chunks', async () => {
    const p = await setup()
    await p.migrate()
    await db.query(`INSERT INTO ${Q} VALUES ('a''b', 1, 'Before', $1, 'x')`, [doc(10).join('\n\n')])
    await p.generate('chunks')
    await p.migrate()
    // The view shows chunks beside their rows; the GIN index and the vector index exist.
    expect(await jobs()).toBe(1)
    let totals = await p.work()
    expect(totals.failed).toBe(0)
    await expectInSync()
    const first = (await chunks()).length
    expect(first).toBeGreaterThan(5)
    expect(totals.written).toBe(first)
    expect(await jobs()).toBe(0)
    const view = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "Doc ""store"""."Doc's pages_body_chunks_view" WHERE title = 'Before'`)
    expect(view[0]!.n).toBe(first)

    // Inserts.
    await db.query(`INSERT INTO ${Q} VALUES ('a''b', 2, 'Second', $1, 'y'), ('c', 3, NULL, NULL, 'z')`, [doc(6, 3).join('\n\n')])
    totals = await p.work()
    await expectInSync()

    // Edits of one paragraph: at the start, in the middle, at the end — only the chunks whose text changed are embedded.
    const n = await node()
    for (const at of [0, 5, 9]) {
      const [row] = await db.query<{ body: string; title: string }>(`SELECT body, title FROM ${Q} WHERE n = 1`)
      const paragraphs = row!.body.split('\n\n')
      paragraphs[at] = `rewritten paragraph ${at} about the harbour`
      const before = new Set(chunkRow(n, row!.body, { title: row!.title }, embedder).map((c) => c.embedded))
      const after = chunkRow(n, paragraphs.join('\n\n'), { title: row!.title }, embedder)
      const changed = after.filter((c) => !before.has(c.embedded)).length
      await db.query(`UPDATE ${Q} SET body = $1 WHERE n = 1`, [paragraphs.join('\n\n')])
      totals = await p.work()
      expect(totals.written, `edit at paragraph ${at}`).toBe(changed)
      expect(changed).toBeLessThan(after.length / 2)
      await expectInSync()
    }

    // A column the chunks do not use: no job, nothing embedded.
    await db.query(`UPDATE ${Q} SET department = 'other'`)
    expect(await jobs()).toBe(0)
    // The template's column: every chunk of the row is embedded again.
    await db.query(`UPDATE ${Q} SET title = 'Renamed' WHERE n = 2`)
    totals = await p.work()
    expect(totals.written).toBe((await chunks()).filter((c) => c.n === '2').length)
    await expectInSync()

    // A key change moves the chunks (nothing embedded); a delete takes them.
    const ofTwo = (await chunks()).filter((c) => c.n === '2').map((c) => c.hash)
    await db.query(`UPDATE ${Q} SET n = 20 WHERE n = 2`)
    expect((await chunks()).filter((c) => c.n === '20').map((c) => c.hash)).toEqual(ofTwo)
    totals = await p.work()
    expect(totals.written).toBe(0)
    await expectInSync()
    await db.query(`DELETE FROM ${Q} WHERE n = 20`)
    expect((await chunks()).filter((c) => c.n === '20')).toEqual([])
    expect(await jobs()).toBe(0)
    await expectInSync()
  })

  it('queue mode: concurrent edits from several connections while the worker runs leave no stale chunk', async () => {
    const p = await setup()
    await p.generate('chunks')
    await p.migrate()
    for (let i = 0; i < 6; i++) await db.query(`INSERT INTO ${Q} VALUES ('t', $1, $2, $3, NULL)`, [i, `Title ${i}`, doc(6 + i, i).join('\n\n')])
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const controller = new AbortController()
    const worker = runWorker({
      url: db.url, columns: [], chunked: loaded.state.chunkedColumns, loadEmbedder: localEmbedderLoader(loaded.embedder), loadChunkEmbedder: localEmbedderLoader(loaded.embedder),
      pollIntervalMs: 20, batchSize: 2, signal: controller.signal,
    })
    // Three writers, each editing random paragraphs of random rows 8 times.
    const writer = async (w: number) => withClient(db.url, async (c: pg.Client) => {
      for (let k = 0; k < 8; k++) {
        const id = (w * 5 + k * 3) % 6
        await c.query('BEGIN')
        const { rows: [row] } = await c.query<{ body: string }>(`SELECT body FROM ${Q} WHERE n = $1 FOR UPDATE`, [id])
        const paragraphs = row!.body.split('\n\n')
        paragraphs[(k * 7 + w) % paragraphs.length] = `writer ${w} edit ${k} ${doc(1, w + k)[0]}`
        if (k % 3 === 2) paragraphs.unshift(`new opening by ${w}`)
        await c.query(`UPDATE ${Q} SET body = $2 WHERE n = $1`, [id, paragraphs.join('\n\n')])
        await c.query('COMMIT')
        await new Promise((r) => setTimeout(r, 5))
      }
    })
    await Promise.all([0, 1, 2].map(writer))
    // The queue drains after the last write.
    for (let i = 0; i < 400 && (await jobs()) > 0; i++) await new Promise((r) => setTimeout(r, 50))
    controller.abort()
    const totals = await worker
    expect(totals.failed).toBe(0)
    expect(await jobs()).toBe(0)
    await expectInSync()
  })

  it('app mode: the embedding writer writes rows and their chunks in one transaction, embedding only the chunks whose text is new', async () => {
    const p = await setup(config('app'))
    await p.generate('chunks')
    await p.migrate()
    const appConfig = config('app')
    // Counts what the model is asked to embed (the real model computes it).
    const asked: string[] = []
    const counting: Embedder = { modelId: embedder.modelId, dimensions: embedder.dimensions, maxTokens: embedder.maxTokens, countTokens: (t) => embedder.countTokens(t), embed: async (texts, o) => { asked.push(...texts); return embedder.embed(texts, o) } }
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    try {
      const writer = createEmbeddingWriter(appConfig, { db: pool, loadChunkEmbedder: async () => counting })
      const inserted = await writer.insert(TABLE, [{ 'Tenant id': 'w', n: '1', title: 'One', body: doc(8).join('\n\n') }, { 'Tenant id': 'w', n: '2', title: 'Two', body: doc(4, 1).join('\n\n') }], { returning: ['n'] })
      expect(inserted).toEqual([{ n: '1' }, { n: '2' }])
      await expectInSync()
      const all = (await chunks()).length
      expect(new Set(asked).size).toBe(all)
      // An edit in the middle: only the chunks whose text changed are embedded.
      const n = await node()
      const paragraphs = doc(8)
      paragraphs[4] = 'a new paragraph about the harbour and its ferries'
      const before = new Set(chunkRow(n, doc(8).join('\n\n'), { title: 'One' }, embedder).map((c) => c.embedded))
      const changed = chunkRow(n, paragraphs.join('\n\n'), { title: 'One' }, embedder).filter((c) => !before.has(c.embedded)).length
      asked.length = 0
      expect(await writer.update(TABLE, { 'Tenant id': 'w', n: 1 }, { body: paragraphs.join('\n\n') })).toBe(1)
      expect(asked.length).toBe(changed)
      expect(changed).toBeGreaterThan(0)
      await expectInSync()
      // A column the chunks do not use, and a key change: nothing embedded; the chunks moved.
      asked.length = 0
      await writer.update(TABLE, { 'Tenant id': 'w', n: 1 }, { department: 'x' })
      await writer.update(TABLE, { 'Tenant id': 'w', n: 1 }, { n: 10 })
      expect(asked).toEqual([])
      await expectInSync()
      expect((await chunks()).some((c) => c.n === '10')).toBe(true)
      // Inside the caller's transaction: rolled back with it, rows and chunks alike.
      await withClient(db.url, async (c) => {
        await c.query('BEGIN')
        await createEmbeddingWriter(appConfig, { db: c, loadChunkEmbedder: async () => counting }).insert(TABLE, [{ 'Tenant id': 'w', n: '3', title: 'T', body: 'gone with the rollback' }])
        await c.query('ROLLBACK')
      })
      expect((await chunks()).filter((c) => c.n === '3')).toEqual([])
      // A failed embedding writes nothing.
      const failing: Embedder = { ...counting, embed: async () => { throw new Error('model failed') } }
      await expect(createEmbeddingWriter(appConfig, { db: pool, loadChunkEmbedder: async () => failing }).insert(TABLE, [{ 'Tenant id': 'w', n: '4', title: 'T', body: 'never written' }])).rejects.toThrow(/model failed/)
      expect(await db.query(`SELECT n FROM ${Q} WHERE n = 4`)).toEqual([])
      await expectInSync()
    } finally {
      await pool.end()
    }
  })

  it('backfill: rows written around the writer (mode app) are chunked by pgml-kit backfill; a second run, or --all, embeds nothing new', async () => {
    const p = await setup(config('app'))
    await p.migrate()
    for (let i = 0; i < 7; i++) await db.query(`INSERT INTO ${Q} VALUES ('b', $1, $2, $3, NULL)`, [i, `T${i}`, i === 3 ? '   ' : doc(4 + i, i).join('\n\n')])
    await p.generate('chunks')
    await p.migrate()
    const first = await runOk(['backfill', `${TABLE}.body_chunks`, '--batch-size', '3'])
    expect(first.stdout).toMatch(/6 rows synced, \d+ chunks embedded \(6 rows read\)/)
    await expectInSync()
    expect((await runOk(['backfill', `${TABLE}.body_chunks`])).stdout).toMatch(/0 rows synced, 0 chunks embedded \(0 rows read\)/)
    // --all reads every row again and embeds only chunks whose text is new: none.
    await db.query(`UPDATE ${Q} SET body = body || '\n\nan added closing paragraph' WHERE n = 2`)
    const all = JSON.parse((await runOk(['backfill', `${TABLE}.body_chunks`, '--all', '--json'])).stdout) as { rows: number; embedded: number; failed: unknown[] }
    expect(all).toMatchObject({ rows: 7, failed: [] })
    expect(all.embedded).toBeGreaterThan(0)
    expect(all.embedded).toBeLessThanOrEqual(2)
    await expectInSync()
  })

  it('search over chunks: documents with their best chunk, or chunks; hybrid with full text over chunks; the same order as an exact scan; settings end with the search', async () => {
    const p = await setup()
    await p.generate('chunks')
    await p.migrate()
    const topics: Record<string, string> = {
      1: 'Opening hours of the central library and its reading rooms',
      2: 'Parking permits for residents near the river bridge',
      3: 'Waste collection days and garden waste containers',
    }
    for (const [n, topic] of Object.entries(topics)) {
      const paragraphs = doc(9, Number(n))
      paragraphs[6] = `${topic}. ${topic.toLowerCase()} are listed here.`
      await db.query(`INSERT INTO ${Q} VALUES ('s', $1, $2, $3, NULL)`, [n, `Page ${n}`, paragraphs.join('\n\n')])
    }
    await p.work()
    const pool = new pg.Pool({ connectionString: db.url, max: 1 })
    const kysely = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) })
    try {
      const kit = createKit(config(), { db: kysely })
      const ref = `${TABLE}.body_chunks` as const
      // (The tiny test model ranks by little meaning: the order is checked against an exact scan, not by topic.)
      const text = 'parking permits for residents'
      const [query] = await kit.embed(ref as never, [text])
      const v = JSON.stringify(query)
      const docs = await kit.searchChunks(ref as never, text, { k: 3 })
      expect(docs).toHaveLength(3)
      const exactDocs = await db.query<{ n: string; seq: number }>(`SELECT DISTINCT ON (n) n::text AS n, chunk_seq AS seq, embedding <=> $1::vector AS d FROM ${CHUNKS} ORDER BY n, embedding <=> $1::vector, chunk_seq`, [v])
      exactDocs.sort((a, b) => Number((a as unknown as { d: number }).d) - Number((b as unknown as { d: number }).d))
      expect(docs.map((d) => [d.document.n, d.chunk.seq])).toEqual(exactDocs.map((e) => [e.n, e.seq]))
      expect(docs[0]!.document).toMatchObject({ 'Tenant id': 's', title: `Page ${exactDocs[0]!.n}` })
      const [bestText] = await db.query<{ chunk: string }>(`SELECT chunk FROM ${CHUNKS} WHERE n = $1 AND chunk_seq = $2`, [exactDocs[0]!.n, exactDocs[0]!.seq])
      expect(docs[0]!.chunk.text).toBe(bestText!.chunk)
      // Chunks: the nearest chunks with their row's key, in the order an exact scan gives.
      const hits = await kit.searchChunks(ref as never, text, { return: 'chunks', k: 8 })
      const exact = await db.query<{ n: string; seq: number }>(`SELECT n::text AS n, chunk_seq AS seq FROM ${CHUNKS} ORDER BY embedding <=> $1::vector, n, chunk_seq LIMIT 8`, [v])
      expect(hits.map((h) => [h.key.n, h.seq])).toEqual(exact.map((e) => [e.n, e.seq]))
      expect(hits[0]!.key['Tenant id']).toBe('s')
      // Hybrid: a rare word only full text knows finds its page, with the chunk that holds it.
      const hybrid = await kit.hybridSearchChunks(ref as never, 'containers', { k: 2, columns: ['n', 'title'] })
      expect(hybrid[0]!.document).toEqual({ n: '3', title: 'Page 3' })
      expect(hybrid[0]!.chunk.text).toContain('containers')
      expect(hybrid[0]!.chunk.textRank).toBe(1)
      const hybridChunks = await kit.hybridSearchChunks(ref as never, 'containers', { return: 'chunks', k: 3 })
      expect(hybridChunks[0]!.chunk).toContain('containers')
      // The search's settings ended with its transaction (one connection in the pool).
      expect((await sql<{ v: string }>`SELECT pg_catalog.current_setting('hnsw.ef_search') AS v`.execute(kysely)).rows[0]!.v).toBe('40')
      await expect(kit.searchChunks(ref as never, 'x', { k: 0 })).rejects.toThrow(/k must be a positive integer/)
      await expect(kit.searchChunks(`${TABLE}.nope` as never, 'x')).rejects.toThrow(/not a chunked embedding column/)
    } finally {
      await kysely.destroy()
    }
  })

  it('the CLI: generate, migrate, worker --once, search documents and chunks, hybrid', async () => {
    const p = await setup()
    await runOk(['migrate'])
    await db.query(`INSERT INTO ${Q} VALUES ('c', 1, 'Bins', $1, NULL)`, ['Green containers take garden waste.\n\n' + doc(4).join('\n\n')])
    const generated = await runOk(['generate', '--name', 'chunks'])
    expect(generated.stdout + generated.stderr).toMatch(/create chunk table/)
    await runOk(['migrate'])
    const worker = await runOk(['worker', '--once'])
    expect(worker.stderr).toMatch(/body_chunks: 1 rows synced, \d+ chunks embedded/)
    const search = await runOk(['search', `${TABLE}.body_chunks`, 'garden waste containers', '-k', '1'])
    expect(search.stdout).toMatch(/Bins/)
    const chunksJson = JSON.parse((await runOk(['search', `${TABLE}.body_chunks`, 'garden', '--chunks', '-k', '2', '--json'])).stdout) as { key: Record<string, unknown>; chunk: string }[]
    expect(chunksJson).toHaveLength(2)
    expect(chunksJson[0]!.key).toEqual({ 'Tenant id': 'c', n: '1' })
    const hybrid = JSON.parse((await runOk(['search', `${TABLE}.body_chunks`, 'containers', '--hybrid', '--json'])).stdout) as { document: Record<string, unknown>; chunk: { seq: number; text: string } }[]
    expect(hybrid[0]!.chunk).toMatchObject({ seq: 0 })
    expect(hybrid[0]!.chunk.text).toContain('Green containers')
    void p
  })

  it('status: rows an unchunked column\'s model truncates are counted; a chunked column reports rows without chunks; chunks never exceed the window', async () => {
    const c = config()
    // An unchunked column beside the chunked one, on the same long texts: the model sees only their start.
    c.tables[TABLE]!.embeddings.body_embedding = { source: 'body', model: { id: TINY_16.id, dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ' }, mode: 'app' }
    const p = await setup(c)
    await p.generate('chunks')
    await p.migrate()
    const bodies = [doc(2).join('\n\n'), doc(30, 1).join('\n\n'), 'short', null, 'déjà vu '.repeat(40), '😀'.repeat(100)]
    for (const [i, body] of bodies.entries()) await db.query(`INSERT INTO ${Q} VALUES ('s', $1, 'T', $2, NULL)`, [i, body])
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const read = () => readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state, truncation: { loadEmbedder: localEmbedderLoader(loaded.embedder) } })
    let status = await read()
    const expected = bodies.filter((b) => b !== null && embedder.countTokens(b) > embedder.maxTokens).length
    expect(expected).toBeGreaterThanOrEqual(2)
    const column = status.embeddingColumns.find((e) => e.column === 'body_embedding')!
    expect(column.truncation).toMatchObject({ truncated: expected, window: embedder.maxTokens })
    expect(status.chunkedColumns).toEqual([expect.objectContaining({ column: 'body_chunks', counts: { rowsWithText: 5, rowsWithoutChunks: 5, chunks: 0, chunksOfOtherModels: 0 } })])
    await p.work()
    status = await read()
    expect(status.chunkedColumns[0]!.counts).toMatchObject({ rowsWithText: 5, rowsWithoutChunks: 0 })
    // No stored chunk, as embedded, is longer than the model's window.
    for (const row of await chunks()) expect(embedder.countTokens(`T: ${row.chunk}`)).toBeLessThanOrEqual(embedder.maxTokens)
    await expectInSync()
  })

  it('queue mode, two workers: a row deleted and inserted again (a new job) while one worker embeds its old text is never overwritten with it; application deletes and key changes never deadlock with a worker', async () => {
    const p = await setup()
    await p.generate('chunks')
    await p.migrate()
    await db.query(`INSERT INTO ${Q} VALUES ('r', 1, 'Old', $1, NULL)`, ['old text about rivers and bridges\n\nand the old town'])
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    // TEST DOUBLE around the real model: the first call waits until released (a slow embedding).
    let release!: () => void
    const released = new Promise<void>((r) => { release = r })
    let paused!: () => void
    const pausedAt = new Promise<void>((r) => { paused = r })
    let first = true
    const slow: Embedder = { modelId: embedder.modelId, dimensions: embedder.dimensions, maxTokens: embedder.maxTokens, countTokens: (t) => embedder.countTokens(t),
      embed: async (texts, o) => { if (first) { first = false; paused(); await released } return embedder.embed(texts, o) } }
    const one = runWorker({ url: db.url, columns: [], chunked: loaded.state.chunkedColumns, loadEmbedder: async () => slow, loadChunkEmbedder: async () => slow, once: true, workerId: 'slow' })
    await pausedAt
    await db.query(`BEGIN; DELETE FROM ${Q} WHERE n = 1; INSERT INTO ${Q} VALUES ('r', 1, 'New', 'new text about taxes and permits', NULL); COMMIT`)
    await p.work()
    release()
    await one
    expect(await jobs()).toBe(0)
    await expectInSync()
    expect((await chunks()).map((c) => c.chunk).join(' ')).toContain('taxes')

    // Churn: writers delete, re-insert, re-key and edit rows while two workers sync them.
    for (let i = 0; i < 9; i++) await db.query(`INSERT INTO ${Q} VALUES ('c', $1, 'T', $2, NULL)`, [i, doc(5, i).join('\n\n')])
    const controller = new AbortController()
    const worker = (id: string) => runWorker({ url: db.url, columns: [], chunked: loaded.state.chunkedColumns, loadEmbedder: async () => embedder, loadChunkEmbedder: async () => embedder, pollIntervalMs: 10, batchSize: 2, signal: controller.signal, workerId: id })
    const workers = [worker('w1'), worker('w2')]
    const failures: string[] = []
    const writer = (w: number) => withClient(db.url, async (c: pg.Client) => {
      for (let k = 0; k < 12; k++) {
        // Each writer its own rows: the writers race the workers, not each other.
        const n = w * 3 + (k % 3)
        try {
          if (k % 3 === 0) await c.query(`BEGIN; DELETE FROM ${Q} WHERE "Tenant id" = 'c' AND n = ${n}; INSERT INTO ${Q} VALUES ('c', ${n}, 'T', $$${doc(4, w + k).join('\n\n')}$$, NULL); COMMIT`)
          else if (k % 3 === 1) await c.query(`UPDATE ${Q} SET n = n + 100 WHERE "Tenant id" = 'c' AND n = $1`, [n]).then(() => c.query(`UPDATE ${Q} SET n = n - 100 WHERE "Tenant id" = 'c' AND n = $1`, [n + 100]))
          else await c.query(`UPDATE ${Q} SET body = body || $2 WHERE "Tenant id" = 'c' AND n = $1`, [n, `\n\nedit ${w} ${k}`])
        } catch (error) {
          failures.push(String((error as Error).message))
          await c.query('ROLLBACK').catch(() => undefined)
        }
      }
    })
    await Promise.all([0, 1, 2].map(writer))
    for (let i = 0; i < 400 && (await jobs()) > 0; i++) await new Promise((r) => setTimeout(r, 50))
    controller.abort()
    const totals = await Promise.all(workers)
    expect(failures).toEqual([])
    expect(totals.every((t) => t.failed === 0)).toBe(true)
    expect(await jobs()).toBe(0)
    await expectInSync()
  })

  it('documents mode reads more candidate chunks when a long document crowds out the others; a wrong-dimension vector is refused', async () => {
    const p = await setup()
    await p.generate('chunks')
    await p.migrate()
    // One long document whose every chunk is about the query, and eleven short ones.
    await db.query(`INSERT INTO ${Q} VALUES ('d', 0, 'Long', $1, NULL)`, [Array.from({ length: 120 }, (_, i) => `river bridge river bridge number ${i}`).join('\n\n')])
    for (let i = 1; i <= 11; i++) await db.query(`INSERT INTO ${Q} VALUES ('d', $1, 'Short', $2, NULL)`, [i, `a note on ${doc(1, i)[0]} and a river`])
    await p.work()
    const pool = new pg.Pool({ connectionString: db.url, max: 1 })
    const kysely = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) })
    try {
      const kit = createKit(config(), { db: kysely })
      const ref = `${TABLE}.body_chunks` as never
      const docs = await kit.searchChunks(ref, 'river bridge', { k: 5 })
      expect(docs).toHaveLength(5)
      expect(new Set(docs.map((d) => d.document.n)).size).toBe(5)
      await expect(kit.searchChunks(ref, [1, 2, 3])).rejects.toThrow(/the query vector has 3 dimensions, and .* holds vectors of 16/)
    } finally {
      await kysely.destroy()
    }
  })

  it('app mode: keys and template columns are read back from the database (dates and timestamps in any time zone, defaults)', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_events.sql', `-- Up Migration
CREATE TABLE events (day date, at timestamptz, created timestamptz DEFAULT '2024-01-02 03:04:05.678901+00', body text, PRIMARY KEY (day, at));
-- Down Migration
DROP TABLE events;
`)
    const c: PgmlKitConfig = {
      embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
      tables: { events: { primaryKey: ['day', 'at'], embeddings: { body_chunks: { source: 'body', model: { id: TINY_16.id, dimensions: 16 }, mode: 'app', chunking: { size: 80, template: '{created} {chunk}' } } } } },
    }
    await p.writeConfig(c)
    embedder ??= await loadTiny()
    await p.generate('chunks')
    await p.migrate()
    const tz = process.env.TZ
    process.env.TZ = 'Asia/Tokyo'
    const pool = new pg.Pool({ connectionString: db.url, max: 1 })
    try {
      const writer = createEmbeddingWriter(c, { db: pool })
      await writer.insert('events', [{ day: '2024-03-01', at: '2024-03-01 10:00:00.123456+00', body: 'alpha document about rivers' }])
      await writer.update('events', { day: '2024-03-01', at: '2024-03-01 10:00:00.123456+00' }, { body: 'alpha document about rivers and bridges' })
    } finally {
      process.env.TZ = tz
      await pool.end()
    }
    const rows = await db.query<{ chunk: string; matched: boolean }>(`SELECT c.chunk, e.body IS NOT NULL AS matched FROM events_body_chunks c LEFT JOIN events e USING (day, at)`)
    expect(rows).toEqual([{ chunk: 'alpha document about rivers and bridges', matched: true }])
    // The template's column (left to its default) as the database prints it, microseconds and all.
    const [row] = await db.query<{ h: string; created: string }>('SELECT c.content_hash AS h, e.created::text AS created FROM events_body_chunks c JOIN events e USING (day, at)')
    expect(row!.created).toMatch(/\.678901/)
    expect(row!.h).toBe(chunkHash(`${row!.created} alpha document about rivers and bridges`))
  })

  it('up/down/up: down drops the chunk table, view, triggers and jobs; up again queues every row and the worker refills it', async () => {
    const p = await setup()
    await p.migrate()
    await db.query(`INSERT INTO ${Q} VALUES ('a', 1, 'T', $1, NULL)`, [doc(5).join('\n\n')])
    await p.generate('chunks')
    await p.migrate()
    await p.work()
    await expectInSync()
    // Down: the chunks migration's files (the index build, then the table).
    const objects = () => db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = $1 AND c.relname LIKE 'Doc''s pages\\_body\\_chunks%'`, [SCHEMA])
    expect((await objects())[0]!.n).toBeGreaterThanOrEqual(4)
    const plan = await p.generateWith('noop')
    expect(plan.written).toEqual([])
    await p.migrate('down', 2)
    expect((await objects())[0]!.n).toBe(0)
    expect(await db.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = '${Q.replace(/'/g, "''")}'::regclass AND NOT tgisinternal`)).toEqual([])
    // The runtime went with the last column that needed it; writes go on untouched.
    expect(await db.query(`SELECT pg_catalog.to_regclass('pgml_kit.embedding_jobs') AS t`)).toEqual([{ t: null }])
    await db.query(`UPDATE ${Q} SET body = body || ' more'`)
    await p.migrate()
    expect(await jobs()).toBe(1)
    await p.work()
    await expectInSync()
  })
})
