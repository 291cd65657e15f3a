import { afterEach, describe, expect, it } from 'vitest'
import { DOUBLE_DIMENSIONS, PGML_EMBED_TEST_DOUBLE, documentsConfig } from '../helpers/fixtures.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * Wiring of the `trigger` and `generated` modes. pgml.embed here is the named TEST DOUBLE from
 * fixtures.ts (deterministic, no model): these tests prove when the database calls it and what it
 * stores, not the embedding itself.
 */
describe.each(tiers)('embedding modes on the $name tier (pgml.embed test double)', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  const sentinel = `[${Array.from({ length: DOUBLE_DIMENSIONS }, (_, i) => (i === 0 ? 1 : 0)).join(',')}]`
  const vectorOf = async (id: number) => (await db.query<{ v: string | null }>('SELECT body_embedding::text AS v FROM documents WHERE id = $1', [id]))[0]?.v
  const expected = async (text: string | null) => (await db.query<{ v: string | null }>(
    `SELECT pgml.embed('test/double', $1, '{"normalize_embeddings":true}'::jsonb)::vector::text AS v`, [text]))[0]?.v ?? null

  async function project(mode: 'trigger' | 'generated', source: string[] = ['title', 'body']) {
    db = await tier.create()
    await db.query(PGML_EMBED_TEST_DOUBLE)
    const p = await new TestProject(db).withDocumentsTable(documentsConfig({ mode, source }))
    await p.generate()
    await p.migrate()
    return p
  }

  it('trigger: embeds on insert, on update of a source column, and not on update of another column', async () => {
    await project('trigger')
    const [row] = await db.query<{ id: number }>(`INSERT INTO documents (title, body) VALUES ('Housing', 'Affordable homes') RETURNING id`)
    const id = Number(row!.id)
    expect(await vectorOf(id)).toBe(await expected('Housing\n\nAffordable homes'))

    // A vector written directly stays while no source column changes.
    await db.query(`UPDATE documents SET body_embedding = $1 WHERE id = $2`, [sentinel, id])
    await db.query(`UPDATE documents SET department = 'housing' WHERE id = $1`, [id])
    expect(await vectorOf(id)).toBe(sentinel)
    await db.query(`UPDATE documents SET title = title WHERE id = $1`, [id])
    expect(await vectorOf(id)).toBe(sentinel)

    await db.query(`UPDATE documents SET body = 'Homes for families' WHERE id = $1`, [id])
    expect(await vectorOf(id)).toBe(await expected('Housing\n\nHomes for families'))

    // NULL sources count as empty text; all NULL gives no vector.
    const [partial] = await db.query<{ id: number }>(`INSERT INTO documents (title) VALUES ('Only a title') RETURNING id`)
    expect(await vectorOf(Number(partial!.id))).toBe(await expected('Only a title\n\n'))
    const [empty] = await db.query<{ id: number }>(`INSERT INTO documents (department) VALUES ('none') RETURNING id`)
    expect(await vectorOf(Number(empty!.id))).toBeNull()

    // A missing vector is filled by touching a source column (the documented backfill).
    await db.query(`UPDATE documents SET body_embedding = NULL WHERE id = $1`, [id])
    await db.query(`UPDATE documents SET title = title WHERE id = $1`, [id])
    expect(await vectorOf(id)).toBe(await expected('Housing\n\nHomes for families'))
  })

  it('trigger: a rolled-back insert leaves nothing and the function pins its search_path', async () => {
    await project('trigger')
    await db.query(`BEGIN; INSERT INTO documents (title, body) VALUES ('x', 'y'); ROLLBACK;`)
    expect(await db.query('SELECT count(*)::int AS n FROM documents')).toEqual([{ n: 0 }])
    expect(await db.query(`SELECT proconfig FROM pg_proc WHERE proname LIKE 'embed\_\_documents\_\_body\_embedding\_\_%'`)).toEqual([{ proconfig: ['search_path=pg_catalog, pg_temp'] }])
  })

  it('trigger: adding a source column re-wires the trigger, and its down restores the old wiring', async () => {
    const p = await project('trigger', ['body'])
    const [row] = await db.query<{ id: number }>(`INSERT INTO documents (title, body) VALUES ('T', 'B') RETURNING id`)
    const id = Number(row!.id)
    expect(await vectorOf(id)).toBe(await expected('B'))
    await db.query(`UPDATE documents SET title = 'T2' WHERE id = $1`, [id])
    expect(await vectorOf(id)).toBe(await expected('B'))

    await p.writeConfig(documentsConfig({ mode: 'trigger', source: ['body', 'title'] }))
    await p.generate('add-title-to-source')
    await p.migrate()
    await db.query(`UPDATE documents SET title = 'T3' WHERE id = $1`, [id])
    expect(await vectorOf(id)).toBe(await expected('B\n\nT3'))
    expect(await db.query(`SELECT source_columns FROM pgml_kit.embedding_columns`)).toEqual([{ source_columns: ['body', 'title'] }])

    await p.migrate('down')
    await db.query(`UPDATE documents SET title = 'T4' WHERE id = $1`, [id])
    expect(await vectorOf(id)).toBe(await expected('B\n\nT3'))
    expect(await db.query(`SELECT source_columns FROM pgml_kit.embedding_columns`)).toEqual([{ source_columns: ['body'] }])
  })

  it('generated: the database computes the vector for new and existing rows', async () => {
    db = await tier.create()
    await db.query(PGML_EMBED_TEST_DOUBLE)
    const p = await new TestProject(db).withDocumentsTable(documentsConfig({ mode: 'generated' }))
    await p.migrate('up', 1)
    await db.query(`INSERT INTO documents (title, body) VALUES ('Existing', 'row')`)
    await p.generate()
    await p.migrate()
    expect(await vectorOf(1)).toBe(await expected('Existing\n\nrow'))
    const [row] = await db.query<{ id: number }>(`INSERT INTO documents (title, body) VALUES ('New', 'row') RETURNING id`)
    expect(await vectorOf(Number(row!.id))).toBe(await expected('New\n\nrow'))
    await db.query(`UPDATE documents SET body = 'changed' WHERE id = $1`, [Number(row!.id)])
    expect(await vectorOf(Number(row!.id))).toBe(await expected('New\n\nchanged'))
    await expect(db.query(`UPDATE documents SET body_embedding = $1`, [sentinel])).rejects.toThrow(/can only be updated to DEFAULT|generated column/)
  })
})
