import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { Kysely, PostgresDialect, type Generated } from 'kysely'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { createKit } from '../../src/query/create-kit.js'
import { createEmbeddingWriter } from '../../src/app/embedding-writer.js'
import { backfill } from '../../src/worker/backfill.js'
import { readColumnWithCopies } from '../../src/db/live-catalog.js'
import { readStatus } from '../../src/status.js'
import { checkGenerated, planFromConfig } from '../../src/migrations/generate.js'
import { readSnapshot } from '../../src/migrations/snapshot.js'
import { localEmbedderLoader } from '../../src/embed/embedder-for-config.js'
import { embedderSettingsAt, resolveConfig } from '../../src/model/resolve.js'
import type { ResolvedModel } from '../../src/model/ir.js'
import { MODELS_DIR, cosine, loadTiny, parseVector } from '../helpers/embedders.js'
import { runCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * A staged model change, end to end, with the real fixture models (no test double): the column
 * goes from one model to another while rows are written, and searches answer at every stage with
 * the model the column holds then — from a kit created with the *new* config before anything was
 * migrated, as an application deployed early would be.
 */
const A: ResolvedModel = { id: 'pgml-kit/tiny-bert-16', revision: null, dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ', normalize: true, pooling: null }
const B: ResolvedModel = { id: 'pgml-kit/tiny-bert-32', revision: null, dimensions: 32, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null }
/** Same model as A, other prefixes: a change only the catalog's fingerprint can tell (same dimensions, same type). */
const A2: ResolvedModel = { ...A, documentPrefix: 'search_document: ', queryPrefix: 'search_query: ' }

const spec = (m: ResolvedModel) => ({ id: m.id, dimensions: m.dimensions, documentPrefix: m.documentPrefix, queryPrefix: m.queryPrefix })
function config(model: ResolvedModel, mode: 'queue' | 'app' = 'queue'): PgmlKitConfig {
  return {
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: spec(model), mode, indexes: [{ method: 'hnsw', distance: 'cosine' }] } } } },
  }
}

interface DB { documents: { id: Generated<number>; title: string | null; body: string | null; department: string | null } }

describe.each(tiers)('a staged model change on the $name tier (real fixture models)', (tier) => {
  let db: TestDatabase
  let pool: pg.Pool | undefined
  afterEach(async () => {
    await pool?.end()
    pool = undefined
    await db?.close()
  })

  const text = (title: string | null, body: string | null) => (title === null && body === null ? null : `${title ?? ''}\n\n${body ?? ''}`)
  /** Every row's stored vector of `column`, and what `model` computes for its text now. */
  async function agreement(column: string, model: ResolvedModel): Promise<{ rows: number; worst: number; missing: number }> {
    const rows = await db.query<{ title: string | null; body: string | null; v: string | null }>(`SELECT title, body, "${column}"::text AS v FROM documents ORDER BY id`)
    const embedder = await loadTiny(model)
    const texts = rows.map((r) => text(r.title, r.body)!)
    const expected = await embedder.embed(texts)
    let worst = 1
    let missing = 0
    rows.forEach((r, i) => {
      if (r.v === null) missing++
      else worst = Math.min(worst, cosine(parseVector(r.v), expected[i]!))
    })
    return { rows: rows.length, worst, missing }
  }
  /** The distance the kit returns for its best hit is the one `model`'s query embedding gives against the stored vector. */
  async function searchedWith(kit: ReturnType<typeof createKit<PgmlKitConfig, DB>>, model: ResolvedModel): Promise<void> {
    const hits = await kit.search('documents.body_embedding', 'a park for the children', { k: 3 }).select(['id']).execute()
    expect(hits).toHaveLength(3)
    expect(Object.keys(hits[0]!).sort()).toEqual(['distance', 'id', 'similarity'])
    const [query] = await (await loadTiny(model)).embed(['a park for the children'], { as: 'query' })
    const [stored] = await db.query<{ v: string }>('SELECT body_embedding::text AS v FROM documents WHERE id = $1', [hits[0]!.id])
    expect(hits[0]!.distance).toBeCloseTo(1 - cosine(query!, parseVector(stored!.v)), 5)
  }
  /** `status --drift`: the database against the snapshot (empty: they agree). */
  async function drift(): Promise<unknown[]> {
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const status = await readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state, drift: (await readSnapshot(loaded.migrationsDir)).state })
    return [...(status.drift ?? [])]
  }

  it('goes shadow → backfill → switch → drop while rows are written, and searches use the column\'s model at every stage', async () => {
    db = await tier.create()
    const p = await new TestProject(db).withDocumentsTable(config(A))
    await p.generate('add-embeddings')
    await p.migrate()
    await db.query(`INSERT INTO documents (title, body) SELECT 'page ' || i, CASE WHEN i % 3 = 0 THEN 'children play in the park' ELSE 'opening hours of the library ' || i END FROM generate_series(1, 60) AS i`)
    expect((await p.work({ batchSize: 16 })).written).toBe(60)

    // The application is deployed with the new config before anything is migrated.
    pool = new pg.Pool({ connectionString: db.url, max: 3 })
    // Teardown drops the database WITH (FORCE): a client of this pool still closing hears about it.
    pool.on('error', () => undefined)
    const kit = createKit<PgmlKitConfig, DB>(config(B), { db: new Kysely<DB>({ dialect: new PostgresDialect({ pool }) }), embedIn: 'local', cwd: db.cwd })
    await searchedWith(kit, A)

    // Stage 1: the shadow, its queue and its index.
    await p.writeConfig(config(B))
    const shadow = await p.generateWith('switch-model', { allowDestructive: false })
    expect(shadow.plan.stages.map((s) => s.stage)).toEqual(['shadow'])
    expect(shadow.written).toHaveLength(2)
    await p.migrate()
    expect((await checkGenerated(await loadConfig('pgml-kit.config.ts', db.cwd))).ok).toBe(true)
    expect(await drift()).toEqual([])
    // New writes are queued for both columns; the worker embeds each with its own model.
    await db.query(`INSERT INTO documents (title, body) SELECT 'new page ' || i, 'a park with a playground ' || i FROM generate_series(1, 10) AS i`)
    await db.query(`UPDATE documents SET body = 'children and the park, updated' WHERE id IN (1, 2, 3)`)
    await searchedWith(kit, A)
    await p.work({ batchSize: 16 })
    await searchedWith(kit, A)
    expect(await agreement('body_embedding', A)).toMatchObject({ rows: 70, missing: 0 })
    // parity compares the stored vectors with the model the column holds (the catalog's), not the config's.
    const parity = await runCli(['parity', 'documents.body_embedding', '--sample', '20'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(parity.code, parity.stderr).toBe(0)
    expect(parity.stdout).toMatch(/cosine min (0\.99|1\.0)/)

    // Not filled yet: plan says how far; a switch generated anyway is refused by migrate, changing nothing.
    const waiting = await p.generateWith('switch-model', { sized: true, allowDestructive: false })
    expect(waiting.written).toEqual([])
    expect(waiting.plan.stages[0]?.message).toMatch(/^backfill 1[0-9]\.[0-9]% \(5[0-9] of 70 rows with text have no pgml-kit\/tiny-bert-32 vector yet\): run `pgml-kit backfill documents\.body_embedding`/)
    const status = await readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: p.migrationsDir, settings: (await loadConfig('pgml-kit.config.ts', db.cwd)).migrations, state: resolveConfig(config(B)).state })
    expect(status.embeddingColumns.map((c) => [c.column, c.model, c.rollout?.role ?? 'live', c.progress?.missing])).toEqual([
      ['body_embedding', A.id, 'live', 0], ['body_embedding__next', B.id, 'next', 57],
    ])

    // The backfill fills the live column (nothing to do) and then the shadow, each with its model.
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const targets = await readColumnWithCopies(db.url, loaded.state.embeddingColumns[0]!)
    expect(targets.map((t) => [t.column, t.model.id])).toEqual([['body_embedding', A.id], ['body_embedding__next', B.id]])
    for (const column of targets) await backfill({ url: db.url, column, loadEmbedder: localEmbedderLoader(loaded.embedder), batchSize: 16 })
    expect(await agreement('body_embedding__next', B)).toMatchObject({ rows: 70, missing: 0 })
    expect((await agreement('body_embedding__next', B)).worst).toBeGreaterThan(0.9999)

    // Stage 2: the database says it is filled, so generate writes the switch.
    const switched = await p.generateWith('switch-model', { sized: true, allowDestructive: false })
    expect(switched.plan.stages.map((s) => s.stage)).toEqual(['switch'])
    expect(switched.written).toHaveLength(1)
    await p.migrate()
    expect(await drift()).toEqual([])
    // The previous column is waiting for approval, not a disagreement.
    const check = await checkGenerated(await loadConfig('pgml-kit.config.ts', db.cwd))
    expect(check.ok).toBe(true)
    expect(check.waiting.join('\n')).toMatch(/body_embedding__previous keeps the previous model's vectors/)
    // The kit created before the switch notices it in the search itself, without a restart.
    await searchedWith(kit, B)
    expect(await agreement('body_embedding', B)).toMatchObject({ rows: 70, missing: 0 })
    // Writes keep both columns in sync: the previous one so the switch can be undone exactly.
    await db.query(`INSERT INTO documents (title, body) VALUES ('after the switch', 'a park by the river')`)
    await db.query(`UPDATE documents SET title = 'renamed page' WHERE id = 4`)
    await p.work({ batchSize: 16 })
    expect(await agreement('body_embedding', B)).toMatchObject({ rows: 71, missing: 0 })
    expect(await agreement('body_embedding__previous', A)).toMatchObject({ rows: 71, missing: 0 })
    expect((await agreement('body_embedding__previous', A)).worst).toBeGreaterThan(0.9999)

    // The switch reverses, and goes forward again.
    await p.migrate('down', 1)
    await searchedWith(kit, A)
    expect(await agreement('body_embedding', A)).toMatchObject({ rows: 71, missing: 0 })
    await p.migrate()
    await searchedWith(kit, B)

    // Stage 3: the drop waits for approval, then goes.
    expect((await p.generateWith('drop-previous', { allowDestructive: false })).plan.stages).toMatchObject([{ stage: 'keeps-previous', waiting: true }])
    const dropped = await p.generateWith('drop-previous', { allowDestructive: true })
    expect(dropped.plan.stages.map((s) => s.stage)).toEqual(['drop-previous'])
    await p.migrate()
    expect((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'documents'::regclass AND attname LIKE 'body_embedding%' AND NOT attisdropped`))[0]?.n).toBe(1)
    expect(await db.query('SELECT column_name, model_id, rollout_role FROM pgml_kit.embedding_columns')).toEqual([{ column_name: 'body_embedding', model_id: B.id, rollout_role: null }])
    await searchedWith(kit, B)
    expect((await agreement('body_embedding', B)).worst).toBeGreaterThan(0.9999)
    expect((await p.generate('nothing', { sized: true })).length).toBe(0)
    expect(await drift()).toEqual([])
  })

  it('refuses at migrate time a switch written before the shadow is filled, and the drop of the previous column while the live one has gaps; nothing changes', async () => {
    db = await tier.create()
    const p = await new TestProject(db).withDocumentsTable(config(A))
    await p.generate('add-embeddings')
    await p.migrate()
    await db.query(`INSERT INTO documents (title, body) SELECT 'page ' || i, 'body ' || i FROM generate_series(1, 20) AS i`)
    await p.work({ batchSize: 16 })
    await p.writeConfig(config(B))
    await p.generate('shadow')
    await p.migrate()
    // Backfilled but for three rows (their jobs lost: as if a job table had been cleared by hand).
    await db.query(`DELETE FROM pgml_kit.embedding_jobs`)
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    await backfill({ url: db.url, column: { ...loaded.state.embeddingColumns[0]!, column: 'body_embedding__next', rollout: { role: 'next', of: 'body_embedding' } }, loadEmbedder: localEmbedderLoader(loaded.embedder) })
    await db.query(`UPDATE documents SET body_embedding__next = NULL WHERE id <= 3`)
    await p.generate('switch', { switch: 'always', allowDestructive: false })
    const catalogBefore = await db.query('SELECT column_name, model_id FROM pgml_kit.embedding_columns ORDER BY 1')
    await expect(p.migrate()).rejects.toThrow(/public\.documents\.body_embedding__next is 85\.0% filled: 3 of 20 rows with text have no vector yet/)
    expect(await db.query('SELECT column_name, model_id FROM pgml_kit.embedding_columns ORDER BY 1')).toEqual(catalogBefore)
    const cli = await runCli(['migrate'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(cli.code).toBe(1)
    expect(cli.stderr).toMatch(/run pgml-kit backfill documents\.body_embedding, then migrate again/)
    await backfill({ url: db.url, column: { ...loaded.state.embeddingColumns[0]!, column: 'body_embedding__next', rollout: { role: 'next', of: 'body_embedding' } }, loadEmbedder: localEmbedderLoader(loaded.embedder) })
    await p.migrate()
    expect(await db.query('SELECT column_name, model_id FROM pgml_kit.embedding_columns ORDER BY 1')).toEqual([
      { column_name: 'body_embedding', model_id: B.id }, { column_name: 'body_embedding__previous', model_id: A.id },
    ])
    // The drop of the previous column waits for the live one to hold every vector.
    await db.query(`UPDATE documents SET body_embedding = NULL WHERE id = 5`)
    await p.generate('drop', { allowDestructive: true })
    await expect(p.migrate()).rejects.toThrow(/public\.documents\.body_embedding is 95\.0% filled: 1 of 20 rows with text have no vector yet; dropping body_embedding__previous would leave those rows with no vector of either model/)
    expect((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'documents'::regclass AND attname = 'body_embedding__previous' AND NOT attisdropped`))[0]?.n).toBe(1)
  })

  it('a kit and the app-mode writer follow a switch that another process commits, with a model of the same dimensions', async () => {
    db = await tier.create()
    const p = await new TestProject(db).withDocumentsTable(config(A, 'app'))
    await p.generate('add-embeddings')
    await p.migrate()
    pool = new pg.Pool({ connectionString: db.url, max: 3 })
    pool.on('error', () => undefined)
    // The application, deployed with the new config from the start.
    const settings = embedderSettingsAt(resolveConfig(config(A2, 'app')).embedder, db.cwd)
    const writer = createEmbeddingWriter(config(A2, 'app'), { db: pool, loadEmbedder: localEmbedderLoader(settings) })
    const kit = createKit<PgmlKitConfig, DB>(config(A2, 'app'), { db: new Kysely<DB>({ dialect: new PostgresDialect({ pool }) }), embedIn: 'local', cwd: db.cwd })
    const row = (i: number) => ({ title: `page ${i}`, body: i % 2 ? 'children play in the park' : 'library opening hours' })
    await writer.insert('documents', Array.from({ length: 12 }, (_, i) => row(i)))
    expect(await agreement('body_embedding', A)).toMatchObject({ rows: 12, missing: 0 })
    await searchedWith(kit, A)

    await p.writeConfig(config(A2, 'app'))
    await p.generate('shadow', { allowDestructive: false })
    await p.migrate()
    // The writer writes both columns now, each with its own model; an update of a source re-embeds both.
    await writer.insert('documents', [row(100), row(101)])
    await writer.update('documents', { id: 1 }, { body: 'a quiet park' })
    const fresh = await db.query<{ a: string | null; b: string | null }>('SELECT body_embedding::text AS a, body_embedding__next::text AS b FROM documents WHERE id IN (1, 13, 14) ORDER BY id')
    expect(fresh.every((r) => r.a !== null && r.b !== null)).toBe(true)
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    await backfill({ url: db.url, column: { ...loaded.state.embeddingColumns[0]!, column: 'body_embedding__next', rollout: { role: 'next', of: 'body_embedding' } }, loadEmbedder: localEmbedderLoader(loaded.embedder) })
    expect(await agreement('body_embedding__next', A2)).toMatchObject({ rows: 14, missing: 0 })
    await searchedWith(kit, A)

    // Another process switches (the CLI); the kit and the writer of this one follow.
    // On the embedded default no URL is needed: the project's embedded database is checked.
    const planned = await runCli(tier.name === 'embedded' ? ['plan'] : ['plan', '--database-url', db.url], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(planned.stdout, planned.stderr).toMatch(/\[model change: switch\] public\.documents\.body_embedding: switches/)
    expect((await p.generateWith('switch', { sized: true, allowDestructive: false })).plan.stages.map((s) => s.stage)).toEqual(['switch'])
    const migrated = await runCli(['migrate'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(migrated.code, migrated.stderr).toBe(0)
    await searchedWith(kit, A2)
    await writer.insert('documents', [row(200)])
    await writer.update('documents', { id: 2 }, { title: 'changed title' })
    expect(await agreement('body_embedding', A2)).toMatchObject({ rows: 15, missing: 0 })
    expect((await agreement('body_embedding', A2)).worst).toBeGreaterThan(0.9999)
    expect((await agreement('body_embedding__previous', A)).worst).toBeGreaterThan(0.9999)
    // plan and status say what is next.
    expect((await runCli(['status'], { cwd: db.cwd, databaseUrl: db.databaseUrl })).stdout).toMatch(/previous model of body_embedding[\s\S]*generate --allow-destructive drops it/)
    const { plan } = await planFromConfig(await loadConfig('pgml-kit.config.ts', db.cwd), { dropPrevious: false })
    expect(plan.stages).toMatchObject([{ stage: 'keeps-previous' }])
  })
})
