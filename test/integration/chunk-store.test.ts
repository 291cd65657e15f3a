import { afterEach, describe, expect, it } from 'vitest'
import { syncDocument } from '../../src/chunking/store.js'
import { renderCreateChunkTable, renderDropChunkTable, type ChunkStore } from '../../src/sql/render-chunks.js'
import { splitDocument, splitText } from '../../src/chunking/split.js'
import { quoteIdent, quoteQualified } from '../../src/sql/quote.js'
import { tiers, withClient, type TestDatabase } from '../helpers/targets.js'

/**
 * The chunk store of a chunked embedding column (the store and its sync, apart from the
 * config: test/integration/chunked-columns.test.ts generates it), on a real database: only new texts are embedded, kept chunks
 * keep their vectors at their new positions, the source row's delete and key change carry the
 * chunks, a concurrent sync never leaves a stale chunk.
 */

// A hostile but legal schema, table and key.
const store: ChunkStore = {
  schema: 'Doc "store"', table: "Doc's table", keyColumns: ['Tenant id', 'n'],
  chunkTable: "Doc's table_body_chunks", vectorType: 'vector(3)',
}
const keyOf = (key: [string, number]) => ({ 'Tenant id': key[0], n: key[1] })
const asChunks = (texts: readonly string[]) => texts.map((t) => ({ chunk: t, embedded: t }))
const T = quoteQualified(store.schema, store.table)
const C = quoteQualified(store.schema, store.chunkTable)

/** TEST DOUBLE for an embedding model: a deterministic vector of a text (the real embedders are tested elsewhere). Counts its texts. */
function standIn() {
  const seen: string[] = []
  const of = (text: string) => {
    let h = 0
    for (const ch of text) h = (h * 31 + ch.codePointAt(0)!) % 1000003
    return [text.length, h % 997, (h >> 3) % 991]
  }
  return { seen, of, embed: async (texts: readonly string[]) => { seen.push(...texts); return texts.map(of) } }
}

describe.each(tiers)('the chunk store on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function setup() {
    db = await tier.create()
    await db.query(`CREATE EXTENSION IF NOT EXISTS vector; CREATE SCHEMA ${quoteIdent(store.schema)}; CREATE TABLE ${T} ("Tenant id" text, n integer, body text, PRIMARY KEY ("Tenant id", n))`)
    for (const statement of renderCreateChunkTable(store)) await db.query(statement)
    await db.query(`INSERT INTO ${T} VALUES ('a''b', 1, 'x'), ('a''b', 2, 'y')`)
  }
  const stored = (key: [string, number]) => db.query<{ seq: number; chunk: string; embedding: string; model: string }>(
    `SELECT chunk_seq AS seq, chunk, embedding::text AS embedding, model FROM ${C} WHERE "Tenant id" = $1 AND n = $2 ORDER BY chunk_seq`, key)
  const sync = (texts: string[], e: ReturnType<typeof standIn>, key: [string, number] = ["a'b", 1]) =>
    withClient(db.url, (c) => syncDocument(c, store, keyOf(key), asChunks(texts), { model: 'test/double', embed: e.embed }))
  /** Every stored chunk is the text at its position, with the vector of that text: nothing stale. */
  async function expectExactly(texts: string[], e: ReturnType<typeof standIn>, key: [string, number] = ["a'b", 1]) {
    const rows = await stored(key)
    expect(rows.map((r) => [r.seq, r.chunk])).toEqual(texts.map((t, i) => [i, t]))
    for (const r of rows) expect(JSON.parse(r.embedding)).toEqual(e.of(r.chunk))
  }

  it('embeds a new document, then only what an edit changed: in the middle, at the start, at the end', async () => {
    await setup()
    const e = standIn()
    const doc = ['intro', 'one', 'two', 'three', 'end']
    expect(await sync(doc, e)).toMatchObject({ embedded: 5, kept: 0, removed: 0, gone: false })
    await expectExactly(doc, e)
    // The middle.
    e.seen.length = 0
    const middle = ['intro', 'one', 'TWO', 'three', 'end']
    expect(await sync(middle, e)).toMatchObject({ embedded: 1, kept: 4, removed: 1 })
    expect(e.seen).toEqual(['TWO'])
    await expectExactly(middle, e)
    // A paragraph at the start moves every chunk: one embedded, five kept at their new positions.
    e.seen.length = 0
    const start = ['new', ...middle]
    expect(await sync(start, e)).toMatchObject({ embedded: 1, kept: 5, removed: 0 })
    expect(e.seen).toEqual(['new'])
    await expectExactly(start, e)
    // Cut at the end; unchanged; emptied.
    expect(await sync(start.slice(0, 2), e)).toMatchObject({ embedded: 0, removed: 4 })
    await expectExactly(start.slice(0, 2), e)
    expect(await sync(start.slice(0, 2), e)).toMatchObject({ embedded: 0, kept: 2, removed: 0 })
    expect(await sync([], e)).toMatchObject({ removed: 2 })
    expect(await stored(["a'b", 1])).toEqual([])
    // The other row was never touched; every chunk written records its model.
    await sync(['m'], e, ["a'b", 2])
    expect(await stored(["a'b", 2])).toMatchObject([{ seq: 0, chunk: 'm', model: 'test/double' }])
  })

  it('a long document, one paragraph edited: split by sections, only its section\'s chunks are embedded again; split whole, most of those after it', async () => {
    await setup()
    const e = standIn()
    const paragraphs = Array.from({ length: 40 }, (_, i) => `Paragraph ${i}: ${'lorem ipsum dolor sit amet '.repeat(6)}`)
    const edited = [...paragraphs]
    edited[17] = 'Paragraph 17 was rewritten entirely.'
    const embeddedAfterEdit = async (split: (text: string) => string[], key: [string, number]) => {
      const before = split(paragraphs.join('\n\n'))
      await sync(before, e, key)
      e.seen.length = 0
      const after = split(edited.join('\n\n'))
      const result = await sync(after, e, key)
      expect(result.embedded).toBe(e.seen.length)
      await expectExactly(after, e, key)
      return { before: before.length, embedded: result.embedded }
    }
    const bySections = await embeddedAfterEdit((t) => splitDocument(t, { size: 400, overlap: 0 }), ["a'b", 1])
    const whole = await embeddedAfterEdit((t) => splitText(t, { size: 400, overlap: 0 }), ["a'b", 2])
    expect(bySections.before).toBeGreaterThan(15)
    expect(bySections.embedded).toBeGreaterThanOrEqual(1)
    expect(bySections.embedded).toBeLessThanOrEqual(3)
    // The whole text packed greedily: the edit moved the boundaries after it.
    expect(whole.embedded).toBeGreaterThan(3 * bySections.embedded)
  })

  it('a deleted source row takes its chunks; a changed key moves them; a sync for a row that is gone writes nothing', async () => {
    await setup()
    const e = standIn()
    await sync(['a', 'b'], e)
    await sync(['c'], e, ["a'b", 2])
    await db.query(`UPDATE ${T} SET n = 7 WHERE n = 1`)
    expect(await stored(["a'b", 1])).toEqual([])
    await expectExactly(['a', 'b'], e, ["a'b", 7])
    await db.query(`DELETE FROM ${T} WHERE n = 7`)
    expect(await db.query(`SELECT count(*)::int AS n FROM ${C}`)).toEqual([{ n: 1 }])
    expect(await sync(['z'], e, ["a'b", 7])).toMatchObject({ gone: true, embedded: 0 })
    expect(await db.query(`SELECT count(*)::int AS n FROM ${C}`)).toEqual([{ n: 1 }])
    await db.query(renderDropChunkTable(store))
  })

  it('a sync that lost a race to another plans again: no stale chunk survives', async () => {
    await setup()
    const e = standIn()
    await sync(['one', 'two', 'three'], e)
    // While the first sync embeds, a second one syncs the same row to other texts and commits.
    let raced = false
    const racing = {
      ...e,
      embed: async (texts: readonly string[]) => {
        if (!raced) {
          raced = true
          await sync(['zero', 'one', 'two', 'THREE'], e)
        }
        return e.embed(texts)
      },
    }
    const result = await withClient(db.url, (c) => syncDocument(c, store, keyOf(["a'b", 1]), asChunks(['one', 'two', 'three', 'four']), { model: 'test/double', embed: racing.embed }))
    expect(result.attempts).toBe(2)
    await expectExactly(['one', 'two', 'three', 'four'], e)
    // Concurrent syncs of one row from several connections: the last to commit wins, whole.
    const docs = [['p', 'q'], ['q', 'r', 's'], ['s'], ['t', 'p', 'q', 'r']]
    const results = await Promise.allSettled(docs.map((d) => sync(d, e)))
    expect(results.filter((r) => r.status === 'rejected' && !/CHUNKS_CHANGING|changed under/.test(String(r.reason))).map((r) => String((r as PromiseRejectedResult).reason))).toEqual([])
    const final = (await stored(["a'b", 1])).map((r) => r.chunk)
    expect(docs.map((d) => JSON.stringify(d))).toContain(JSON.stringify(final))
    await expectExactly(final, e)
  })
})

