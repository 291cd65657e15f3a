import { afterEach, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { PlanError } from '../../src/errors.js'
import { DOUBLE_DIMENSIONS, PGML_EMBED_TEST_DOUBLE } from '../helpers/fixtures.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * `renamedFrom`: a rename, not a re-embed. pgml.embed is the named TEST DOUBLE from fixtures.ts;
 * what is checked is that the stored vectors, the index and the queued jobs survive the rename,
 * and that the trigger and the queue keep working under the new name.
 */
const model = { id: 'test/double', dimensions: DOUBLE_DIMENSIONS }

function config(names: { body: string; title: string }, renamed = false): PgmlKitConfig {
  return {
    tables: {
      documents: {
        embeddings: {
          [names.body]: { source: ['body'], model, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine' }], ...(renamed ? { renamedFrom: 'body_embedding' } : {}) },
          [names.title]: { source: ['title'], model, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'l2', name: 'title_vectors' }], ...(renamed ? { renamedFrom: 'title_embedding' } : {}) },
        },
      },
    },
  }
}

describe.each(tiers)('renamedFrom on the $name tier (pgml.embed test double)', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  const state = async () => ({
    columns: (await db.query<{ attname: string }>(`SELECT attname FROM pg_attribute WHERE attrelid = 'documents'::regclass AND attnum > 0 AND NOT attisdropped AND atttypid::regtype::text = 'vector' ORDER BY 1`)).map((r) => r.attname),
    indexes: await db.query<{ name: string; oid: number; column: string }>(
      `SELECT c.relname AS name, c.oid::int AS oid, a.attname AS column FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = 'documents'::regclass AND NOT i.indisprimary ORDER BY 1`),
    triggers: (await db.query<{ tgname: string }>(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'documents'::regclass AND NOT tgisinternal ORDER BY 1`)).map((r) => r.tgname),
    catalog: (await db.query<{ column_name: string }>('SELECT column_name FROM pgml_kit.embedding_columns ORDER BY 1')).map((r) => r.column_name),
    jobs: await db.query<{ column_name: string; n: number }>('SELECT column_name, count(*)::int AS n FROM pgml_kit.embedding_jobs GROUP BY 1 ORDER BY 1'),
  })

  it('renames the columns, their indexes, triggers, catalog rows and queued jobs, keeps every vector, and reverts', async () => {
    db = await tier.create()
    await db.query(PGML_EMBED_TEST_DOUBLE)
    const p = await new TestProject(db).withDocumentsTable(config({ body: 'body_embedding', title: 'title_embedding' }))
    await p.generate('add-embeddings')
    await p.migrate()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 20) AS i`)
    const vectorsBefore = await db.query('SELECT id, body_embedding::text AS v FROM documents ORDER BY id')
    const before = await state()
    expect(before.jobs).toEqual([{ column_name: 'title_embedding', n: 20 }])

    await p.writeConfig(config({ body: 'body_vec', title: 'headline_vec' }, true))
    const written = await p.generate('rename-embeddings', { allowDestructive: false })
    // One transactional file: no index is dropped or built.
    expect(written).toHaveLength(1)
    await p.migrate()

    const after = await state()
    expect(after.columns).toEqual(['body_vec', 'headline_vec'])
    expect(after.catalog).toEqual(['body_vec', 'headline_vec'])
    expect(after.jobs).toEqual([{ column_name: 'headline_vec', n: 20 }])
    expect(after.triggers).toEqual(['pgml_kit_embed_body_vec', 'pgml_kit_enqueue_headline_vec_delete', 'pgml_kit_enqueue_headline_vec_write'])
    // The same index objects (no rebuild): the derived name follows the column, an explicit one stays.
    expect(after.indexes).toEqual([
      { name: 'documents_body_vec_hnsw_cosine_idx', oid: before.indexes.find((i) => i.name === 'documents_body_embedding_hnsw_cosine_idx')!.oid, column: 'body_vec' },
      { name: 'title_vectors', oid: before.indexes.find((i) => i.name === 'title_vectors')!.oid, column: 'headline_vec' },
    ])
    expect(await db.query('SELECT id, body_vec::text AS v FROM documents ORDER BY id')).toEqual(vectorsBefore)
    // The trigger functions take the new names too (their triggers follow them).
    const functions = async () => (await db.query<{ f: string }>(`SELECT proname::text AS f FROM pg_proc WHERE pronamespace = 'pgml_kit'::regnamespace AND prorettype = 'trigger'::regtype AND proname NOT IN ('registry_guard', 'registry_record', 'route_guard') ORDER BY 1`)).map((r) => r.f)
    expect(await functions()).toEqual([expect.stringMatching(/^embed__documents__body_vec__/), expect.stringMatching(/^enqueue__documents__headline_vec__/)])

    // The trigger writes the renamed column; the queue records jobs under the new name.
    await db.query(`INSERT INTO documents (title, body) VALUES ('new title', 'new body')`)
    const [fresh] = await db.query<{ ok: boolean }>(`SELECT body_vec = pgml.embed('test/double', 'new body', '{"normalize_embeddings":true}'::jsonb)::vector AS ok FROM documents WHERE title = 'new title'`)
    expect(fresh).toEqual({ ok: true })
    expect((await state()).jobs).toEqual([{ column_name: 'headline_vec', n: 21 }])

    // Generating again with renamedFrom still in the config plans nothing.
    expect(await p.generate('again')).toEqual([])

    await p.migrate('down', 1)
    const reverted = await state()
    expect(reverted).toMatchObject({ columns: ['body_embedding', 'title_embedding'], catalog: ['body_embedding', 'title_embedding'], triggers: before.triggers })
    expect(reverted.indexes).toEqual(before.indexes)
    expect(reverted.jobs).toEqual([{ column_name: 'title_embedding', n: 21 }])
    expect(await functions()).toEqual([expect.stringMatching(/^embed__documents__body_embedding__/), expect.stringMatching(/^enqueue__documents__title_embedding__/)])
  })

  it('names the config path when the old column is unknown', async () => {
    db = await tier.create()
    const p = await new TestProject(db).withDocumentsTable(config({ body: 'body_embedding', title: 'title_embedding' }))
    await p.generate('add-embeddings')
    const wrong = config({ body: 'body_vec', title: 'title_embedding' })
    wrong.tables.documents!.embeddings.body_vec!.renamedFrom = 'body_embeding'
    await p.writeConfig(wrong)
    const error = await p.generate('rename').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PlanError)
    expect(error).toMatchObject({ code: 'RENAME_SOURCE_MISSING', where: 'tables.documents.embeddings.body_vec.renamedFrom' })
  })
})
