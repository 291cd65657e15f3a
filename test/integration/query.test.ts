import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { CamelCasePlugin, Kysely, PostgresDialect, sql, type Generated } from 'kysely'
import { relative } from 'node:path'
import { createKit } from '../../src/query/create-kit.js'
import { loadConfig } from '../../src/config/load.js'
import { registerVectorTypes } from '../../src/query/vector-types.js'
import { defineConfig } from '../../src/config/define-config.js'
import { toVectorLiteral } from '../../src/embed/embedder.js'
import { MODELS_DIR, cosine, loadTiny } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

interface DB {
  documents: { id: Generated<number>; title: string | null; body: string | null; department: string | null; body_embedding: string | null; search_tsv: unknown }
}

const config = defineConfig({
  embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
  tables: {
    documents: {
      embeddings: {
        body_embedding: {
          source: ['title', 'body'],
          model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ' },
          mode: 'app',
          indexes: [{ method: 'hnsw', distance: 'cosine' }],
        },
      },
      fullText: { language: 'english', source: [{ column: 'title', weight: 'A' }, { column: 'body', weight: 'B' }] },
    },
  },
})

/** A deterministic unit vector along axis i, mixed with a little of axis j. */
function direction(i: number, j = (i + 1) % 16, mix = 0): number[] {
  const v = Array.from({ length: 16 }, (_, n) => (n === i ? 1 : n === j ? mix : 0))
  const norm = Math.hypot(...v)
  return v.map((x) => x / norm)
}

describe.each(tiers)('typed query builders on the $name tier', (tier) => {
  let db: TestDatabase
  let pool: pg.Pool | undefined
  let kysely: Kysely<DB> | undefined
  afterEach(async () => {
    await kysely?.destroy()
    kysely = undefined
    pool = undefined
    await db?.close()
  })

  async function setup(max = 2) {
    db = await tier.create()
    const p = await new TestProject(db).withDocumentsTable(config)
    await p.generate()
    await p.migrate()
    pool = new pg.Pool({ connectionString: db.url, max })
    kysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
    return { kit: createKit(config, { db: kysely, embedIn: 'local' }), kysely, pool }
  }

  async function insert(rows: { title: string; body: string; department: string; vector: number[] }[]) {
    for (const r of rows) {
      await db.query('INSERT INTO documents (title, body, department, body_embedding) VALUES ($1, $2, $3, $4)', [r.title, r.body, r.department, toVectorLiteral(r.vector)])
    }
  }

  it('a fresh kit whose pool is held by transactions that search, beside a plain search: each reads the catalog on its own connection, none waits forever', async () => {
    for (const max of [1, 3]) {
      const { kit, kysely: k } = await setup(max)
      await insert([{ title: 'A', body: 'a', department: 'housing', vector: direction(0) }])
      // The plain search starts the shared catalog read and waits for a connection; every
      // connection is held by a transaction whose own search needs the catalog too.
      const searches: Promise<{ title: string | null }[]>[] = [kit.search('documents.body_embedding', direction(0), { k: 1 }).select(['title']).execute()]
      for (let i = 0; i < max; i++) {
        searches.push(kit.db.transaction().execute((trx) => trx.executeQuery(kit.search('documents.body_embedding', direction(0), { k: 1, efSearch: 40 }).where('department', '=', 'housing').select(['title']))).then((r) => r.rows as { title: string | null }[]))
      }
      let timer: NodeJS.Timeout | undefined
      const hung = new Promise<'hung'>((resolve) => { timer = setTimeout(() => resolve('hung'), 20_000) })
      const outcome = await Promise.race([Promise.all(searches), hung]).finally(() => clearTimeout(timer))
      expect(outcome, `pool of ${max}`).not.toBe('hung')
      expect((outcome as { title: string | null }[][]).map((rows) => rows.map((r) => r.title))).toEqual(Array.from({ length: max + 1 }, () => ['A']))
      await k.destroy()
      kysely = undefined
      await db.close()
    }
  })

  it('searches by vector with Kysely\'s own where/select, typed results, distance and similarity', async () => {
    const { kit } = await setup()
    await insert([
      { title: 'A', body: 'a', department: 'housing', vector: direction(0) },
      { title: 'B', body: 'b', department: 'parks', vector: direction(0, 1, 0.2) },
      { title: 'C', body: 'c', department: 'housing', vector: direction(0, 1, 0.5) },
      { title: 'D', body: 'd', department: 'housing', vector: direction(5) },
    ])
    const all = await kit.search('documents.body_embedding', direction(0), { k: 3 }).select(['id', 'title']).execute()
    expect(all.map((r) => r.title)).toEqual(['A', 'B', 'C'])
    expect(all[0]!.distance).toBeCloseTo(0, 5)
    expect(all[0]!.similarity).toBeCloseTo(1, 5)
    expect(all[2]!.similarity).toBeCloseTo(cosine(direction(0), direction(0, 1, 0.5)), 5)
    const housing = await kit.search('documents.body_embedding', direction(0), { k: 3 }).where('department', '=', 'housing').select(['title']).execute()
    expect(housing.map((r) => r.title)).toEqual(['A', 'C', 'D'])
  })

  it('embeds a text query locally with the model\'s query prefix', async () => {
    const { kit } = await setup()
    const embedder = await loadTiny({ id: 'pgml-kit/tiny-bert-16', revision: null, dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ', normalize: true, pooling: null })
    const [q] = await embedder.embed(['affordable housing'], { as: 'query' })
    const texts = ['affordable housing for families', 'bus and train fares', 'city parks', 'library cards', 'property tax']
    const vectors = await embedder.embed(texts)
    await insert(texts.map((t, i) => ({ title: t, body: '', department: 'x', vector: Array.from(vectors[i]!) })))
    const expected = texts.map((t, i) => ({ t, c: cosine(q!, vectors[i]!) })).sort((a, b) => b.c - a.c).map((x) => x.t)
    const hits = await kit.search('documents.body_embedding', 'affordable housing', { k: 5 }).select(['title']).execute()
    expect(hits.map((h) => h.title)).toEqual(expected)
    expect(await kit.embed('documents.body_embedding', ['affordable housing'])).toEqual([Array.from(q!)])
  })

  it('uses the HNSW index: the distance operator matches the operator class (EXPLAIN)', async () => {
    const { kit, pool } = await setup(1)
    await insert(Array.from({ length: 50 }, (_, i) => ({ title: `t${i}`, body: 'b', department: 'd', vector: direction(i % 16, (i + 3) % 16, i / 50) })))
    await pool.query('SET enable_seqscan = off')
    const plan = await kit.search('documents.body_embedding', direction(2), { k: 5 }).select(['id']).explain()
    expect(JSON.stringify(plan)).toMatch(/Index Scan using documents_body_embedding_hnsw_cosine_idx/)
    const l2 = await kit.search('documents.body_embedding', direction(2), { k: 5, distance: 'l2' }).select(['id']).explain()
    expect(JSON.stringify(l2)).not.toMatch(/Index Scan using documents_body_embedding_hnsw_cosine_idx/)
  })

  it('applies ef_search and iterative scans with SET LOCAL, never leaking to other queries on the pooled connection', async () => {
    const { kit, kysely } = await setup(1)
    await insert([{ title: 'A', body: 'a', department: 'x', vector: direction(0) }])
    const [row] = await kit.search('documents.body_embedding', direction(0), { k: 1, efSearch: 123, iterativeScan: 'relaxed_order' })
      .select([sql<string>`current_setting('hnsw.ef_search')`.as('ef'), sql<string>`current_setting('hnsw.iterative_scan')`.as('scan')]).execute()
    expect(row).toMatchObject({ ef: '123', scan: 'relaxed_order' })
    const after = await sql<{ ef: string }>`SELECT current_setting('hnsw.ef_search') AS ef`.execute(kysely)
    expect(after.rows).toEqual([{ ef: '40' }])
    // Inside the caller's transaction the settings hold for the query only, too.
    await kit.db.transaction().execute(async (trx) => {
      await sql`SELECT 1`.execute(trx)
      // A builder runs on the transaction's connection through trx.executeQuery.
      const inner = await trx.executeQuery(kit.search('documents.body_embedding', direction(0), { k: 1, efSearch: 77 }).select([sql<string>`current_setting('hnsw.ef_search')`.as('ef')]))
      expect(inner.rows[0]!.ef).toBe('77')
      expect((await sql<{ ef: string }>`SELECT current_setting('hnsw.ef_search') AS ef`.execute(trx)).rows).toEqual([{ ef: '40' }])
    })
    expect((await sql<{ ef: string }>`SELECT current_setting('hnsw.ef_search') AS ef`.execute(kysely)).rows).toEqual([{ ef: '40' }])
    // Checked when the search is built, whichever way it would run.
    expect(() => kit.search('documents.body_embedding', direction(0), { efSearch: 5000 })).toThrow(/hnsw.ef_search must be an integer from 1 to 1000/)
  })

  it('applies efSearch inside a caller\'s transaction on a connection that has not used pgvector yet', async () => {
    await setup(1)
    await insert([{ title: 'A', body: 'a', department: 'x', vector: direction(0) }])
    // A fresh pool: its connection has not loaded pgvector, so hnsw.ef_search does not exist yet.
    const freshPool = new pg.Pool({ connectionString: db.url, max: 1 })
    const fresh = new Kysely<DB>({ dialect: new PostgresDialect({ pool: freshPool }) })
    try {
      const kit = createKit(config, { db: fresh, embedIn: 'local' })
      await kit.db.transaction().execute(async (trx) => {
        await sql`SELECT 1`.execute(trx)
        const inner = await trx.executeQuery(kit.search('documents.body_embedding', direction(0), { k: 1, efSearch: 77 }).select(['title', sql<string>`current_setting('hnsw.ef_search')`.as('ef')]))
        expect(inner.rows).toEqual([expect.objectContaining({ title: 'A', ef: '77' })])
        // The transaction goes on, with the setting back at its default.
        expect((await sql<{ ef: string }>`SELECT current_setting('hnsw.ef_search') AS ef`.execute(trx)).rows).toEqual([{ ef: '40' }])
      })
    } finally {
      await fresh.destroy()
    }
  })

  it('a kit made over the application\'s transaction searches inside it (its uncommitted rows), keeps its settings to each search, and refuses a nested kit.db.transaction()', async () => {
    const { kysely } = await setup(1)
    await insert([{ title: 'Committed', body: 'a', department: 'x', vector: direction(1) }])
    const rolledBack = new Error('roll back')
    await expect(kysely.transaction().execute(async (trx) => {
      await sql`INSERT INTO documents (title, body, department, body_embedding) VALUES ('Uncommitted', 'b', 'x', ${toVectorLiteral(direction(0))}::vector)`.execute(trx)
      const kit = createKit(config, { db: trx, embedIn: 'local' })
      const hits = await kit.search('documents.body_embedding', direction(0), { k: 2, efSearch: 55 }).select(['title', sql<string>`current_setting('hnsw.ef_search')`.as('ef')]).execute()
      expect(hits.map((h) => [h.title, h.ef])).toEqual([['Uncommitted', '55'], ['Committed', '55']])
      expect((await sql<{ ef: string }>`SELECT current_setting('hnsw.ef_search') AS ef`.execute(trx)).rows).toEqual([{ ef: '40' }])
      const hybrid = await kit.hybridSearch('documents.body_embedding', 'uncommitted', { k: 1 }).select(['title']).execute()
      expect(hybrid.map((h) => h.title)).toEqual(['Uncommitted'])
      await expect(kit.db.transaction().execute(async () => undefined)).rejects.toMatchObject({ code: 'KIT_IN_TRANSACTION' })
      throw rolledBack
    })).rejects.toBe(rolledBack)
    expect(await db.query('SELECT title FROM documents ORDER BY title')).toEqual([{ title: 'Committed' }])
  })

  it('filtered search stays correct with iterative scans and with over-fetch and re-rank', async () => {
    const { kit } = await setup()
    // 300 "parks" rows crowd the query's neighbourhood; 5 "housing" rows lie further away.
    await insert(Array.from({ length: 300 }, (_, i) => ({ title: `p${i}`, body: 'b', department: 'parks', vector: direction(0, 1 + (i % 5), 0.01 + i / 3000) })))
    await insert(Array.from({ length: 5 }, (_, i) => ({ title: `h${i}`, body: 'b', department: 'housing', vector: direction(0, 7, 1 + i) })))
    const expected = ['h0', 'h1', 'h2', 'h3', 'h4']
    const iterative = await kit.search('documents.body_embedding', direction(0), { k: 5, efSearch: 10, iterativeScan: 'relaxed_order', filterStrategy: 'index' }).where('department', '=', 'housing').select(['title']).execute()
    expect(iterative.map((r) => r.title)).toEqual(expected)
    const overFetch = await kit.search('documents.body_embedding', direction(0), { k: 5, overFetch: 100 }).where('department', '=', 'housing').select(['title']).execute()
    expect(overFetch.map((r) => r.title)).toEqual(expected)
  })

  it('a filter that keeps few rows is scanned exactly (filterStrategy auto, as a planner would); index and exact force either way', async () => {
    const { kit, kysely } = await setup()
    // 300 "parks" rows crowd the query's neighbourhood; 5 "housing" rows lie further away; an index on the filter column.
    await insert(Array.from({ length: 300 }, (_, i) => ({ title: `p${i}`, body: 'b', department: 'parks', vector: direction(0, 1 + (i % 5), 0.01 + i / 3000) })))
    await insert(Array.from({ length: 5 }, (_, i) => ({ title: `h${i}`, body: 'b', department: 'housing', vector: direction(0, 7, 1 + i) })))
    await db.query('CREATE INDEX documents_department ON documents (department)')
    await db.query('ANALYZE documents')
    const sent: string[] = []
    const logged = new Kysely<DB>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 1 }) }), log: (event) => { sent.push(event.query.sql) } })
    const watched = createKit(config, { db: logged, embedIn: 'local' })
    const expected = ['h0', 'h1', 'h2', 'h3', 'h4']
    // ef_search 10 with no iterative scan would starve an index scan of housing rows (see the test
    // above); with the default strategy the 5 rows the filter keeps are scanned exactly.
    const auto = await watched.search('documents.body_embedding', direction(0), { k: 5, efSearch: 10, iterativeScan: 'off' }).where('department', '=', 'housing').select(['title']).execute()
    expect(auto.map((r) => r.title)).toEqual(expected)
    expect(sent.at(-1)).toMatch(/^SELECT \* FROM \(select .* as "pgml_kit_distance" from "public"\."documents" as "documents" where "department" = \$2 OFFSET 0\) AS pgml_kit_exact WHERE "pgml_kit_distance" IS NOT NULL ORDER BY "pgml_kit_distance" LIMIT \$3$/)
    // The exact form is valid PostgreSQL that never uses the vector index.
    const plan = await db.query(`EXPLAIN ${sent.at(-1)!.replaceAll('$1', `'${toVectorLiteral(direction(0))}'`).replaceAll('$2', "'housing'").replaceAll('$3', '5')}`)
    expect(plan.map((r) => String(r['QUERY PLAN'])).join('\n')).not.toMatch(/documents_body_embedding/)
    // exact: always the exact scan, no estimate asked.
    sent.length = 0
    const exact = await watched.search('documents.body_embedding', direction(0), { k: 3, filterStrategy: 'exact' }).where('department', '=', 'parks').select(['title']).execute()
    expect(sent).toHaveLength(1)
    expect(sent[0]).toMatch(/pgml_kit_exact WHERE "pgml_kit_distance" IS NOT NULL ORDER BY "pgml_kit_distance" LIMIT \$3$/)
    const truth = await db.query(`SELECT title FROM documents WHERE department = 'parks' ORDER BY body_embedding <=> $1 LIMIT 3`, [toVectorLiteral(direction(0))])
    expect(exact.map((r) => r.title)).toEqual(truth.map((r) => r.title))
    // A search with an offset (a second page) is not rewritten: the index serves it, with iterative scans.
    sent.length = 0
    const page = await watched.search('documents.body_embedding', direction(0), { k: 2 }).where('department', '=', 'housing').offset(2).select(['title']).execute()
    expect(page.map((r) => r.title)).toEqual(['h2', 'h3'])
    expect(sent.join('\n')).not.toMatch(/pgml_kit_exact|EXPLAIN/)
    expect(() => kit.search('documents.body_embedding', direction(0), { filterStrategy: 'fast' as 'auto' })).toThrow(/filterStrategy must be auto, index or exact, got fast/)
    await logged.destroy()
    void kysely
  })

  it('rewrites only what it can scan exactly: the caller\'s own ordering, overFetch, a raw OR, a second distance column, rows without a vector', async () => {
    const { kit } = await setup()
    await insert(Array.from({ length: 40 }, (_, i) => ({ title: `t${String(i).padStart(2, '0')}`, body: 'b', department: i % 4 === 0 ? 'a' : 'b', vector: direction(i % 16, (i + 5) % 16, (i % 3) / 3) })))
    await db.query(`INSERT INTO documents (title, body, department) VALUES ('no vector', 'b', 'a')`)
    await db.query('CREATE INDEX documents_department ON documents (department)')
    await db.query('ANALYZE documents')
    const truth = async (where: string, k: number) => (await db.query<{ title: string }>(`SELECT title FROM documents WHERE ${where} AND body_embedding IS NOT NULL ORDER BY body_embedding <=> $1, title LIMIT ${k}`, [toVectorLiteral(direction(0))])).map((r) => r.title)
    // Ordered by the caller (by title): never re-sorted by distance (rows without a vector are rows of that query); 'exact' says why it cannot.
    const byTitle = await kit.search('documents.body_embedding', direction(0), { k: 3 }).where('department', '=', 'a').clearOrderBy().orderBy('title').select(['title']).execute()
    expect(byTitle.map((r) => r.title)).toEqual(['no vector', 't00', 't04'])
    await expect(kit.search('documents.body_embedding', direction(0), { k: 3, filterStrategy: 'exact' }).where('department', '=', 'a').clearOrderBy().orderBy('title').select(['title']).execute())
      .rejects.toThrow(/filterStrategy 'exact' cannot scan this search exactly: it is not ordered by its distance alone/)
    await expect(kit.search('documents.body_embedding', direction(0), { k: 3, overFetch: 4, filterStrategy: 'exact' }).where('department', '=', 'a').select(['title']).execute())
      .rejects.toThrow(/it reads a subquery \(overFetch\)/)
    // A second column called distance: the exact scan sorts by its own copy of the distance.
    const twice = await kit.search('documents.body_embedding', direction(0), { k: 3, filterStrategy: 'exact' }).where('department', '=', 'a').select(['title', sql<number>`0`.as('distance')]).execute()
    expect(twice.map((r) => r.title)).toEqual(['t00', 't16', 't32'])
    expect(Object.keys(twice[0]!)).not.toContain('pgml_kit_distance')
    // A row without a vector is never a result (an index scan leaves it out too), even when fewer than k rows qualify.
    const all = await kit.search('documents.body_embedding', direction(0), { k: 20, filterStrategy: 'exact' }).where('department', '=', 'a').select(['title']).execute()
    expect(all.map((r) => r.title).sort()).toEqual((await truth(`department = 'a'`, 20)).sort())
    expect(all.map((r) => r.title)).not.toContain('no vector')
    // A raw OR keeps the settings' gate outside it (in the index path).
    const sent: string[] = []
    const logged = new Kysely<DB>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 1 }) }), log: (event) => { sent.push(event.query.sql) } })
    try {
      const watched = createKit(config, { db: logged, embedIn: 'local' })
      const either = await watched.search('documents.body_embedding', direction(0), { k: 5, efSearch: 30, filterStrategy: 'index' }).where(sql<boolean>`department = 'a' or department = 'c'`).select(['title']).execute()
      expect(either).toHaveLength(5)
      expect(sent.at(-1)).toMatch(/where \(department = 'a' or department = 'c'\) and \(SELECT pg_catalog\.concat\(/)
    } finally {
      await logged.destroy()
    }
    // Options are checked when the search is built, whichever way it would run.
    expect(() => kit.search('documents.body_embedding', direction(0), { efSearch: '100' as unknown as number })).toThrow(/hnsw\.ef_search must be an integer/)
    expect(() => kit.search('documents.body_embedding', direction(0), { distance: 'constructor' as 'l2' })).toThrow(/distance must be one of l2, inner_product, cosine, l1, got constructor/)
  })

  it('keeps working beside the application\'s Kysely plugins (CamelCasePlugin): the kit\'s own statements are not renamed', async () => {
    const { pool: real } = await setup()
    real.on('error', () => undefined)
    await insert(Array.from({ length: 20 }, (_, i) => ({ title: `t${i}`, body: 'b', department: i % 2 === 0 ? 'even' : 'odd', vector: direction(i % 16) })))
    const sent: string[] = []
    const camel = new Kysely<DB>({ dialect: new PostgresDialect({ pool: real }), plugins: [new CamelCasePlugin()], log: (event) => { sent.push(event.query.sql) } })
    const kit = createKit(config, { db: camel, embedIn: 'local' })
    // t0 and t16 hold the query's own vector (direction(i % 16)).
    const rows = await kit.search('documents.body_embedding', direction(0), { k: 2, filterStrategy: 'index' }).where('department', '=', 'even').select(['title']).execute()
    expect(rows.map((r) => r.title).sort()).toEqual(['t0', 't16'])
    // pgvector's schema and version were read: the operator is qualified and iterative scans are on.
    expect(sent.at(-1)).toContain('OPERATOR("public".<=>)')
    expect(sent.at(-1)).toContain("pg_catalog.set_config('hnsw.iterative_scan', 'strict_order', true)")
  })

  it('prepareSearch: compiled once, the vector and the placeholders bound per execute, the same rows as search', async () => {
    const { kit } = await setup()
    await insert(Array.from({ length: 40 }, (_, i) => ({ title: `t${i}`, body: 'b', department: i % 2 === 0 ? 'even' : 'odd', vector: direction(i % 16, (i + 5) % 16, (i % 3) / 3) })))
    const nearest = kit.prepareSearch('documents.body_embedding', { k: 4, efSearch: 60 }, (q) =>
      q.where('department', '=', kit.placeholder<string>('department')).select(['title', 'department']))
    expect(nearest.placeholders).toEqual(['department'])
    for (const [axis, department] of [[0, 'even'], [3, 'odd'], [7, 'even']] as const) {
      const prepared = await nearest.execute(direction(axis), { department })
      const built = await kit.search('documents.body_embedding', direction(axis), { k: 4, efSearch: 60 }).where('department', '=', department).select(['title', 'department']).execute()
      expect(prepared).toEqual(built)
      expect(prepared.every((r) => r.department === department)).toBe(true)
      const distances = prepared.map((r) => r.distance)
      expect(distances).toEqual([...distances].sort((a, b) => a - b))
    }
    // A text query is embedded, with the model's query prefix, as search does it.
    const byText = await kit.prepareSearch('documents.body_embedding', { k: 3 }, (q) => q.select(['title'])).execute('street lights')
    expect(byText.map((r) => r.title)).toEqual((await kit.search('documents.body_embedding', 'street lights', { k: 3 }).select(['title']).execute()).map((r) => r.title))
    await expect(nearest.execute(direction(0), {})).rejects.toThrow(/no value for placeholder "department"/)
    await expect(nearest.execute(direction(0), { department: 'even', tenant: 1 })).rejects.toThrow(/no placeholder "tenant"/)
    await expect(nearest.execute(direction(0), { department: undefined })).rejects.toThrow(/no value for placeholder "department"/)
    const inherited = kit.prepareSearch('documents.body_embedding', { k: 1 }, (q) => q.where('department', '=', kit.placeholder<string>('constructor')).select(['title']))
    await expect(inherited.execute(direction(0), {})).rejects.toThrow(/no value for placeholder "constructor"/)
    // A placeholder outside a prepared search is refused with its name, not sent as an object.
    await expect(kit.search('documents.body_embedding', direction(0), { k: 1 }).where('department', '=', kit.placeholder<string>('d')).execute()).rejects.toThrow(/placeholder "d" has no value/)
  })

  it('switches iterative scans on for a filtered search by default; a search is one round trip, with or without settings; config defaults apply', async () => {
    db = await tier.create()
    const withDefault = { tables: { documents: { ...config.tables.documents, embeddings: { body_embedding: { ...config.tables.documents.embeddings.body_embedding, indexes: [{ method: 'hnsw' as const, distance: 'cosine' as const, efSearch: 10 }] } } } } }
    const p = await new TestProject(db).withDocumentsTable(withDefault)
    await p.generate()
    await p.migrate()
    const sent: string[] = []
    pool = new pg.Pool({ connectionString: db.url, max: 1 })
    // The index scan a large table would get (on 305 rows the planner rightly prefers a sort).
    pool.on('connect', (client) => void client.query('SET enable_seqscan = off'))
    const parameters: unknown[][] = []
    kysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), log: (event) => { sent.push(event.query.sql); parameters.push([...event.query.parameters]) } })
    const kit = createKit(withDefault, { db: kysely, embedIn: 'local' })
    await insert(Array.from({ length: 300 }, (_, i) => ({ title: `p${i}`, body: 'b', department: 'parks', vector: direction(0, 1 + (i % 5), 0.01 + i / 3000) })))
    await insert(Array.from({ length: 5 }, (_, i) => ({ title: `h${i}`, body: 'b', department: 'housing', vector: direction(0, 7, 1 + i) })))
    // Statistics now, not whenever autovacuum gets to it: the planner's estimate of the filter sets the ef_search below.
    await db.query('ANALYZE documents')
    const housing = (options: { iterativeScan?: 'off'; filterStrategy?: 'index' }) => kit.search('documents.body_embedding', direction(0), { k: 5, ...options }).where('department', '=', 'housing').select(['title']).execute()

    // The config's efSearch 10 starves the filtered scan unless iterative scans keep it going.
    expect((await housing({ iterativeScan: 'off', filterStrategy: 'index' })).length).toBeLessThan(5)
    sent.length = 0
    parameters.length = 0
    expect((await housing({})).map((r) => r.title)).toEqual(['h0', 'h1', 'h2', 'h3', 'h4'])
    // The first filtered search asks, once per kit, which pgvector the database has; and, with the
    // default filterStrategy 'auto', what the planner estimates for its exact form (kept for a
    // minute per filter values) and the table's row count (kept for a minute). Which way it goes
    // here depends on the server (PostgreSQL 17 costs the disabled sequential scan, 18 does not).
    expect(sent.filter((q) => /EXPLAIN \(FORMAT JSON\) SELECT \* FROM \(select .* OFFSET 0\) AS pgml_kit_exact WHERE "pgml_kit_distance" IS NOT NULL ORDER BY "pgml_kit_distance" LIMIT \$3$/.test(q))).toHaveLength(1)
    expect(sent.filter((q) => /reltuples/.test(q))).toHaveLength(1)
    sent.length = 0
    expect((await housing({})).map((r) => r.title)).toEqual(['h0', 'h1', 'h2', 'h3', 'h4'])
    // The same search again: the estimate is kept, one round trip.
    expect(sent).toHaveLength(1)
    sent.length = 0
    parameters.length = 0
    expect((await housing({ filterStrategy: 'index' })).map((r) => r.title)).toEqual(['h0', 'h1', 'h2', 'h3', 'h4'])
    // Through the index, the settings are set by the search's own statement (a one-time filter that runs before the scan): one round trip.
    // (Where the search went exactly above, this is the kit's first iterative scan: it asks, once, which pgvector the database has.)
    const capabilities = sent.findIndex((q) => /vector_version/.test(q))
    if (capabilities >= 0) {
      sent.splice(capabilities, 1)
      parameters.splice(capabilities, 1)
    }
    expect(sent).toHaveLength(1)
    expect(sent[0]).toMatch(/where \("department" = \$\d+\) and \(SELECT pg_catalog\.concat\((pg_catalog\.set_config\('[a-z_.]+', '[a-z_0-9]+', true\)(, )?)+\)\) IS NOT NULL order by/)
    expect(sent[0]).toContain("pg_catalog.set_config('hnsw.ef_search', '10', true)")
    expect(sent[0]).toContain("pg_catalog.set_config('hnsw.iterative_scan', 'strict_order', true)")
    // The gate's settings are literals: the statement has the search's own parameters (vector, department, limit).
    expect(parameters[0]).toHaveLength(3)
    expect(sent.join('\n')).not.toMatch(/BEGIN/)

    sent.length = 0
    const plain = createKit(config, { db: kysely, embedIn: 'local' })
    // A kit's first search reads the catalog first (whether it may, then the rows: the model each column holds), once.
    expect(await plain.search('documents.body_embedding', direction(0), { k: 3 }).select(['title']).execute()).toHaveLength(3)
    expect(sent).toHaveLength(3)
    expect(sent[1]).toMatch(/FROM pgml_kit\.embedding_columns AS c/)
    sent.length = 0
    const rows = await plain.search('documents.body_embedding', direction(0), { k: 3 }).select(['title']).execute()
    expect(rows).toHaveLength(3)
    expect(sent).toHaveLength(1)
    // It carries the probe of the column's catalog row, which the kit removes from the rows.
    expect(sent[0]).toMatch(/\(SELECT pg_catalog\.md5\(pg_catalog\.jsonb_build_array\(.*\) FROM pgml_kit\.embedding_columns AS c WHERE c\.table_schema = 'public' AND c\.table_name = 'documents' AND c\.column_name = 'body_embedding'\) as "pgml_kit_catalog"/)
    expect(Object.keys(rows[0]!).sort()).toEqual(['distance', 'similarity', 'title'])
  })

  it('IVFFlat filtered search through the index: relaxed iterative scans by default, the page sorted again by distance', async () => {
    db = await tier.create()
    const ivf = { tables: { documents: { ...config.tables.documents, embeddings: { body_embedding: { ...config.tables.documents.embeddings.body_embedding, indexes: [{ method: 'ivfflat' as const, distance: 'cosine' as const, lists: 4, probes: 1 }] } } } } }
    const p = await new TestProject(db).withDocumentsTable({ ...ivf, tables: { documents: { ...ivf.tables.documents, embeddings: { body_embedding: { ...ivf.tables.documents.embeddings.body_embedding, indexes: [] } } } } })
    await p.generate()
    await p.migrate()
    await insert(Array.from({ length: 400 }, (_, i) => ({ title: `r${i}`, body: 'b', department: i % 10 === 0 ? 'housing' : 'parks', vector: direction(i % 16, (i + 3) % 16, (i % 7) / 7) })))
    await p.writeConfig(ivf)
    await p.generate('ivfflat')
    await p.migrate()
    const sent: string[] = []
    const parameters: unknown[][] = []
    pool = new pg.Pool({ connectionString: db.url, max: 1 })
    pool.on('connect', (client) => void client.query('SET enable_seqscan = off'))
    kysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), log: (event) => { sent.push(event.query.sql); parameters.push([...event.query.parameters]) } })
    const kit = createKit(ivf, { db: kysely, embedIn: 'local' })
    const rows = await kit.search('documents.body_embedding', direction(0), { k: 10, filterStrategy: 'index' }).where('department', '=', 'housing').select(['title']).execute()
    const search = sent.find((q) => q.includes('pgml_kit_sorted'))!
    expect(search).toMatch(/^SELECT \* FROM \(select .* and \(SELECT pg_catalog\.concat\((pg_catalog\.set_config\('[a-z_.]+', '[a-z_0-9]+', true\)(, )?){3}\)\) IS NOT NULL order by .*\) AS pgml_kit_sorted ORDER BY "distance"$/)
    for (const [name, value] of [['ivfflat.probes', '1'], ['hnsw.iterative_scan', 'relaxed_order'], ['ivfflat.iterative_scan', 'relaxed_order']]) expect(search).toContain(`pg_catalog.set_config('${name}', '${value}', true)`)
    // Ten rows (one list alone would not hold ten housing rows near the query), in distance order.
    expect(rows).toHaveLength(10)
    const distances = rows.map((r) => r.distance)
    expect(distances).toEqual([...distances].sort((a, b) => a - b))
  })

  it('sends a query vector in pgvector\'s binary form where the driver sends Buffers in binary, and as text on a driver that does not', async () => {
    const { kit, pool: real } = await setup()
    real.on('error', () => undefined)
    await insert([{ title: 'near', body: 'b', department: 'x', vector: direction(0) }, { title: 'far', body: 'b', department: 'x', vector: direction(5) }])
    const sent: unknown[][] = []
    const watching = new Kysely<DB>({ dialect: new PostgresDialect({ pool: real }), log: (event) => { sent.push([...event.query.parameters]) } })
    const binary = createKit(config, { db: watching, embedIn: 'local' })
    const expected = await db.query(`SELECT title, (body_embedding <=> $1)::float8 AS distance FROM documents ORDER BY 2`, [toVectorLiteral(direction(0, 3, 0.3))])
    for (let i = 0; i < 2; i++) {
      const rows = await binary.search('documents.body_embedding', direction(0, 3, 0.3), { k: 2 }).select(['title']).execute()
      expect(rows.map((r) => r.title)).toEqual(expected.map((r) => r.title))
      rows.forEach((r, j) => expect(r.distance).toBeCloseTo(Number(expected[j]!.distance), 6))
    }
    expect(sent.at(-1)![0]).toBeInstanceOf(Buffer)
    // A driver that sends a Buffer as text (bytea's hex form, as some do): refused once, then text for good.
    const hexing = {
      connect: async () => {
        const client = await real.connect()
        return { query: (text: string, values: unknown[] = []) => client.query(text, values.map((v) => (Buffer.isBuffer(v) ? `\\x${v.toString('hex')}` : v))), release: () => client.release() }
      },
      end: async () => undefined,
    }
    const textOnly = new Kysely<DB>({ dialect: new PostgresDialect({ pool: hexing as unknown as pg.Pool }), log: (event) => { sent.push([...event.query.parameters]) } })
    const fallback = createKit(config, { db: textOnly, embedIn: 'local' })
    for (let i = 0; i < 2; i++) {
      sent.length = 0
      const rows = await fallback.search('documents.body_embedding', direction(0, 3, 0.3), { k: 2 }).select(['title']).execute()
      expect(rows.map((r) => r.title)).toEqual(expected.map((r) => r.title))
    }
    expect(sent).toHaveLength(1)
    expect(typeof sent[0]![0]).toBe('string')
    await watching.destroy().catch(() => undefined)
    void kit
  })

  it('works on a driver that prepares every statement: the settings go in the search\'s own statement; in a transaction, BEGIN and the settings go separately', async () => {
    const { pool: real } = await setup()
    // Teardown drops the database WITH (FORCE): a client of this pool still closing hears about it.
    real.on('error', () => undefined)
    // A pool whose clients send every query with the extended protocol (one command per statement), as some drivers do.
    const preparing = {
      connect: async () => {
        const client = await real.connect()
        return { query: (text: string, values: unknown[]) => client.query({ text, values, queryMode: 'extended' } as pg.QueryConfig), release: () => client.release() }
      },
      end: async () => undefined,
    }
    const sent: string[] = []
    const extended = new Kysely<DB>({ dialect: new PostgresDialect({ pool: preparing as unknown as pg.Pool }), log: (event) => { sent.push(event.query.sql) } })
    const kit = createKit(config, { db: extended, embedIn: 'local' })
    await insert([{ title: 'near', body: 'b', department: 'x', vector: direction(0) }, { title: 'far', body: 'b', department: 'x', vector: direction(5) }])
    for (let i = 0; i < 2; i++) {
      const [row] = await kit.search('documents.body_embedding', direction(0), { k: 1, efSearch: 55 }).select(['title', sql<string>`current_setting('hnsw.ef_search')`.as('ef')]).execute()
      expect(row).toMatchObject({ title: 'near', ef: '55' })
    }
    expect(sent.filter((q) => /BEGIN|COMMIT/.test(q))).toEqual([])
    // The settings go back to their defaults after each search (they were local to its statement).
    expect((await sql<{ ef: string }>`SELECT current_setting('hnsw.ef_search') AS ef`.execute(extended)).rows).toEqual([{ ef: '40' }])
    // In the caller's transaction they are set, then put back, by statements of their own.
    await kit.db.transaction().execute(async (trx) => {
      const inner = await trx.executeQuery(kit.search('documents.body_embedding', direction(0), { k: 1, efSearch: 66 }).select([sql<string>`current_setting('hnsw.ef_search')`.as('ef')]))
      expect(inner.rows[0]!.ef).toBe('66')
      expect((await sql<{ ef: string }>`SELECT current_setting('hnsw.ef_search') AS ef`.execute(trx)).rows).toEqual([{ ef: '40' }])
    })
    await extended.destroy()
  })

  it('hybrid search fuses vector and full-text rankings (RRF) with weights', async () => {
    const { kit } = await setup()
    const embedder = await loadTiny({ id: 'pgml-kit/tiny-bert-16', revision: null, dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ', normalize: true, pooling: null })
    const [q] = await embedder.embed(['parks'], { as: 'query' })
    const near = Array.from(q!)
    const far = near.map((x) => -x)
    const between = near.map((x, i) => x + (i % 2 === 0 ? 0.8 : -0.8))
    await insert([
      { title: 'Parks', body: 'parks and gardens', department: 'a', vector: near }, // top of both lists
      { title: 'Nearby', body: 'no match here', department: 'b', vector: between }, // vector list only
      { title: 'Far', body: 'parks parks parks', department: 'c', vector: far }, // text list, last by vector
    ])
    const both = await kit.hybridSearch('documents.body_embedding', 'parks', { k: 3 }).select(['title']).execute()
    expect(both[0]).toMatchObject({ title: 'Parks', vector_rank: 1, text_rank: 1 })
    expect(both.map((r) => r.title).sort()).toEqual(['Far', 'Nearby', 'Parks'])
    const vectorOnly = await kit.hybridSearch('documents.body_embedding', 'parks', { k: 3, weights: { vector: 1, text: 0 } }).select(['title']).execute()
    expect(vectorOnly.map((r) => r.title)).toEqual(['Parks', 'Nearby', 'Far'])
    const textOnly = await kit.hybridSearch('documents.body_embedding', 'parks', { k: 2, weights: { vector: 0, text: 1 } }).select(['title']).execute()
    expect(textOnly.map((r) => r.title).sort()).toEqual(['Far', 'Parks'])
    const filtered = await kit.hybridSearch('documents.body_embedding', 'parks').where('department', '=', 'c').select(['title']).execute()
    expect(filtered.map((r) => r.title)).toEqual(['Far'])

    // Ties: 'Nearby' (second by vector) and 'Far' (first by text among the others) can score alike;
    // two rows with the same text tie in the text ranking. The order is the same on every call.
    await insert([
      { title: 'Twin A', body: 'gardens', department: 'd', vector: far },
      { title: 'Twin B', body: 'gardens', department: 'd', vector: far },
    ])
    // Twin A's row now lies after Twin B's in the table: scan order is not what decides.
    await db.query(`UPDATE documents SET department = 'e' WHERE title = 'Twin A'`)
    const orders = new Set<string>()
    for (let i = 0; i < 6; i++) {
      const rows = await kit.hybridSearch('documents.body_embedding', 'gardens parks', { k: 5, weights: { vector: 0, text: 1 } }).select(['title']).execute()
      orders.add(rows.map((r) => `${r.title}:${r.text_rank}`).join(','))
    }
    expect(orders.size).toBe(1)
    const swapped = await kit.hybridSearch('documents.body_embedding', 'gardens', { k: 5, weights: { vector: 0, text: 1 } }).select(['id', 'title']).execute()
    const twins = swapped.filter((r) => r.title?.startsWith('Twin'))
    // Equal text ranks: the key (id) decides, in the ranking and in the final order.
    expect(twins.map((r) => r.title)).toEqual(['Twin A', 'Twin B'])
    expect(Number(twins[0]!.id)).toBeLessThan(Number(twins[1]!.id))
    expect(twins[1]!.text_rank).toBe(twins[0]!.text_rank! + 1)
    const equal = await kit.hybridSearch('documents.body_embedding', 'parks', { k: 5 }).select(['title']).execute()
    const scores = equal.map((r) => r.score)
    expect(scores).toEqual([...scores].sort((a, b) => b - a))
    for (let i = 1; i < equal.length; i++) {
      if (equal[i]!.score === equal[i - 1]!.score) expect((equal[i - 1]!.vector_rank ?? Infinity) <= (equal[i]!.vector_rank ?? Infinity)).toBe(true)
    }
  })

  it('builds from the config loadConfig returns (as the CLI loads it), its modelsDir relative to the config file', async () => {
    const { kysely } = await setup()
    await insert([{ title: 'near', body: 'b', department: 'x', vector: direction(0) }, { title: 'far', body: 'b', department: 'x', vector: direction(5) }])
    // The models directory written relative to the project, which is not the process's directory.
    await new TestProject(db).writeConfig({ ...config, embedder: { ...config.embedder, modelsDir: relative(db.cwd, MODELS_DIR) } })
    expect(relative(process.cwd(), db.cwd)).not.toBe('')
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const kit = createKit(loaded, { db: kysely, embedIn: 'local' })
    expect((await kit.search('documents.body_embedding', direction(0), { k: 1, efSearch: 20 }).select(['title']).execute()).map((r) => r.title)).toEqual(['near'])
    expect((await kit.search('documents.body_embedding', 'homes', { k: 2 }).select(['title']).execute())).toHaveLength(2)
  })

  it('registerVectorTypes returns vector columns as number[]', async () => {
    const { pool, kysely } = await setup()
    await insert([{ title: 'A', body: 'a', department: 'x', vector: direction(3) }])
    await registerVectorTypes(pool)
    const rows = await kysely.selectFrom('documents').select('body_embedding').execute()
    expect(rows[0]!.body_embedding).toEqual(direction(3))
  })

  if (tier.name === 'embedded') {
    it('refuses embedIn "database" on a target without pgml.embed, naming the alternatives', async () => {
      const { kysely } = await setup()
      const kit = createKit(config, { db: kysely, embedIn: 'database' })
      await expect(kit.search('documents.body_embedding', 'parks').execute()).rejects.toMatchObject({ code: 'PGML_MISSING', hint: expect.stringMatching(/pgml_compat/) })
      await expect(kit.embed('documents.body_embedding', ['parks'])).rejects.toMatchObject({ code: 'PGML_MISSING' })
      // A vector query needs no embedding and still works.
      expect(await kit.search('documents.body_embedding', direction(0)).execute()).toEqual([])
    })
  }

  if (tier.name === 'server') {
    it('embeds the query in the database with pgml_compat and predicts with pgml.predict*', async () => {
      db = await tier.create()
      await db.query('CREATE EXTENSION pgml_compat CASCADE')
      const p = await new TestProject(db).withDocumentsTable(config)
      await p.generate()
      await p.migrate()
      pool = new pg.Pool({ connectionString: db.url, max: 2 })
      kysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
      const inDatabase = createKit(config, { db: kysely, embedIn: 'database' })
      const local = createKit(config, { db: kysely, embedIn: 'local' })
      const embedder = await loadTiny({ id: 'pgml-kit/tiny-bert-16', revision: null, dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ', normalize: true, pooling: null })
      const texts = ['affordable housing', 'bus fares', 'city parks', 'library', 'tax']
      const vectors = await embedder.embed(texts)
      await insert(texts.map((t, i) => ({ title: t, body: '', department: 'x', vector: Array.from(vectors[i]!) })))
      const a = await inDatabase.search('documents.body_embedding', 'housing for families', { k: 5 }).select(['title']).execute()
      const b = await local.search('documents.body_embedding', 'housing for families', { k: 5 }).select(['title']).execute()
      expect(a.map((r) => r.title)).toEqual(b.map((r) => r.title))
      a.forEach((row, i) => expect(row.distance).toBeCloseTo(b[i]!.distance, 4))
      const [x] = await inDatabase.embed('documents.body_embedding', ['housing'])
      const [y] = await local.embed('documents.body_embedding', ['housing'])
      expect(cosine(x!, y!)).toBeGreaterThan(0.9999)

      await db.query(`CREATE TABLE houses AS SELECT i AS id, (i % 50) / 50.0 AS size, (i % 7) / 7.0 AS age FROM generate_series(1, 200) AS i;
        ALTER TABLE houses ADD COLUMN price float8; UPDATE houses SET price = 2 * size + age;
        CREATE VIEW houses_training AS SELECT size, age, price FROM houses;
        SELECT * FROM pgml.train('prices', 'regression', 'houses_training', 'price', 'linear');`)
      expect(await local.predict('prices', [0.5, 0.5])).toBeCloseTo(1.5, 3)
      expect(await local.predictBatch('prices', [[0.5, 0.5], [1, 0]])).toEqual([expect.closeTo(1.5, 3), expect.closeTo(2, 3)])
      const q = await local.db.selectFrom('documents').select(local.fn.predict('prices', [0.25, sql<number>`0.5`]).as('p')).limit(1).execute()
      expect(q[0]!.p).toBeCloseTo(1, 3)
      await db.query(`CREATE TABLE pts AS SELECT i, (i % 10) / 10.0 AS a FROM generate_series(1, 100) AS i; ALTER TABLE pts ADD COLUMN k int; UPDATE pts SET k = (a > 0.45)::int;
        CREATE VIEW pts_training AS SELECT a, k FROM pts; SELECT * FROM pgml.train('ks', 'classification', 'pts_training', 'k', 'linear', hyperparams => '{"C": 100}');`)
      const proba = await local.predictProba('ks', [0.9])
      expect(proba).toHaveLength(2)
      expect(proba[1]).toBeGreaterThan(0.5)
    })
  }
})
