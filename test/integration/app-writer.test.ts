import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { createEmbeddingWriter } from '../../src/app/embedding-writer.js'
import { defineConfig } from '../../src/config/define-config.js'
import { sourceTextOf } from '../../src/embed/source-text.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { renderSourceText } from '../../src/sql/render-source.js'
import { MODELS_DIR, cosine, loadTiny, parseVector } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

const config = defineConfig({
  embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
  tables: {
    documents: {
      embeddings: {
        body_embedding: { source: ['title', 'body'], model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }, mode: 'app', indexes: [{ method: 'hnsw', distance: 'cosine' }] },
      },
    },
  },
})

describe.each(tiers)('app-mode writer on the $name tier', (tier) => {
  let db: TestDatabase
  let pool: pg.Pool | undefined
  afterEach(async () => {
    await pool?.end()
    pool = undefined
    await db?.close()
  })

  it('leaves a column a row does not give to its DEFAULT, when rows give different columns', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-documents.sql', `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text, department text NOT NULL DEFAULT 'general', created_at timestamptz NOT NULL DEFAULT now());
-- Down Migration
DROP TABLE documents;
`)
    await p.writeConfig(config)
    await p.generate()
    await p.migrate()
    pool = new pg.Pool({ connectionString: db.url, max: 2 })
    const writer = createEmbeddingWriter(config, { db: pool })
    const inserted = await writer.insert('documents', [
      { title: 'A', body: 'a', department: 'parks' },
      { title: 'B', body: 'b' },
    ], { returning: ['id', 'department'] })
    expect(inserted).toEqual([{ id: '1', department: 'parks' }, { id: '2', department: 'general' }])
    expect(await db.query(`SELECT count(*)::int AS n FROM documents WHERE created_at IS NOT NULL AND body_embedding IS NOT NULL`)).toEqual([{ n: 2 }])
  })

  it('inserts rows with locally computed vectors in one statement, and re-embeds on a source update only', async () => {
    db = await tier.create()
    const p = await new TestProject(db).withDocumentsTable(config)
    await p.generate()
    await p.migrate()
    pool = new pg.Pool({ connectionString: db.url, max: 2 })
    const writer = createEmbeddingWriter(config, { db: pool })
    const embedder = await loadTiny({ id: 'pgml-kit/tiny-bert-16', revision: null, dimensions: 16, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null })

    const inserted = await writer.insert('documents', [
      { title: 'Parks', body: 'Opening hours', department: 'parks' },
      { title: 'Housing', body: null },
      { title: null, body: null, department: 'empty' },
    ], { returning: ['id'] })
    expect(inserted).toEqual([{ id: '1' }, { id: '2' }, { id: '3' }])
    const vectorOf = async (id: number) => (await db.query<{ v: string | null }>('SELECT body_embedding::text AS v FROM documents WHERE id = $1', [id]))[0]!.v
    const [parks, housing] = await embedder.embed(['Parks\n\nOpening hours', 'Housing\n\n'])
    expect(cosine(parseVector((await vectorOf(1))!), parks!)).toBeGreaterThan(0.99999)
    expect(cosine(parseVector((await vectorOf(2))!), housing!)).toBeGreaterThan(0.99999)
    expect(await vectorOf(3)).toBeNull()

    const before = await vectorOf(1)
    expect(await writer.update('documents', { id: 1 }, { department: 'recreation' })).toBe(1)
    expect(await vectorOf(1)).toBe(before)
    expect(await writer.update('documents', { id: 1 }, { body: 'Closed on Mondays' })).toBe(1)
    const [updated] = await embedder.embed(['Parks\n\nClosed on Mondays'])
    expect(cosine(parseVector((await vectorOf(1))!), updated!)).toBeGreaterThan(0.99999)
    expect(await db.query('SELECT department FROM documents WHERE id = 1')).toEqual([{ department: 'recreation' }])
  })

  it('on a client inside the caller\'s transaction, writes join it: they commit and roll back with it, and a failed write undoes only itself', async () => {
    db = await tier.create()
    const p = await new TestProject(db).withDocumentsTable(config)
    await p.generate()
    await p.migrate()
    const embedder = await loadTiny({ id: 'pgml-kit/tiny-bert-16', revision: null, dimensions: 16, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null })
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    // Seen from another connection: only what has committed.
    const titles = async () => (await db.query<{ title: string }>('SELECT title FROM documents ORDER BY id')).map((r) => r.title)
    // The embedded database serves one transaction at a time: another connection waits for this one's to end.
    const whileOpen = async (expected: string[]) => { if (tier.name === 'server') expect(await titles()).toEqual(expected) }
    try {
      const writer = createEmbeddingWriter(config, { db: client })
      await writer.insert('documents', [{ title: 'Own', body: 'committed on its own' }])
      expect(await titles()).toEqual(['Own'])

      await client.query('BEGIN')
      await writer.insert('documents', [{ title: 'Undone', body: 'rolled back with the caller' }])
      await whileOpen(['Own'])
      await client.query('ROLLBACK')
      expect(await titles()).toEqual(['Own'])

      await client.query('BEGIN')
      const [kept] = await writer.insert('documents', [{ title: 'Kept', body: 'written in the caller\'s transaction' }], { returning: ['id'] })
      await expect(writer.insert('documents', [{ title: 'Bad', body: 'x', no_such_column: 1 }])).rejects.toThrow(/no_such_column/)
      // The caller's transaction is still usable, and still holds the write before the failed one.
      expect(await writer.update('documents', { id: kept!.id }, { body: 'updated before the caller commits' })).toBe(1)
      await whileOpen(['Own'])
      await client.query('COMMIT')
      expect(await titles()).toEqual(['Own', 'Kept'])
      const [{ v }] = await db.query<{ v: string }>('SELECT body_embedding::text AS v FROM documents WHERE title = $1', ['Kept']) as [{ v: string }]
      const [expected] = await embedder.embed(['Kept\n\nupdated before the caller commits'])
      expect(cosine(parseVector(v), expected!)).toBeGreaterThan(0.99999)
    } finally {
      await client.end()
    }
  })

  it('computes the same source text in JavaScript as the SQL the migrations use', async () => {
    db = await tier.create()
    const column = resolveConfig(config).state.embeddingColumns[0]!
    const rows = [
      { title: 'a', body: 'b' }, { title: null, body: 'b' }, { title: 'a', body: null }, { title: null, body: null }, { title: '', body: '' }, { title: "it's\n", body: 'é' },
    ]
    for (const row of rows) {
      const [sql] = await db.query<{ text: string | null }>(`SELECT ${renderSourceText(column)} AS text FROM (SELECT $1::text AS title, $2::text AS body) AS t`, [row.title, row.body])
      expect(sourceTextOf(column, row), JSON.stringify(row)).toBe(sql!.text)
    }
  })
})
