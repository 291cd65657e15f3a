/**
 * Type tests for createKit, checked by `npm run typecheck` (part of `npm test`): each
 * @ts-expect-error line must be a compile error, or the type check fails.
 */
import type { Generated, Kysely } from 'kysely'
import { createKit, defineConfig, type OnlinePrediction } from '../../src/index.js'

interface DB {
  documents: { id: Generated<number>; title: string; body: string; department: string | null }
  notes: { id: Generated<number>; text: string }
}

const config = defineConfig({
  tables: {
    documents: {
      embeddings: { body_embedding: { source: ['title', 'body'], model: 'intfloat/e5-small-v2', mode: 'app', indexes: [{ method: 'hnsw', distance: 'cosine' }] } },
      fullText: { source: ['title', 'body'] },
    },
    notes: { embeddings: { text_embedding: { source: 'text', model: 'intfloat/e5-small-v2', mode: 'app', indexes: [{ method: 'hnsw', distance: 'l2' }] } } },
  },
})

type Expect<T extends true> = T
type Equal<A, B> = (<G>() => G extends A ? 1 : 2) extends (<G>() => G extends B ? 1 : 2) ? true : false

export async function typeTests(db: Kysely<DB>): Promise<void> {
  const kit = createKit(config, { db })

  const hits = await kit.search('documents.body_embedding', 'housing', { k: 5 }).where('department', '=', 'housing').select(['id', 'title']).execute()
  type Hit = (typeof hits)[number]
  type _hit = Expect<Equal<Hit, { distance: number; similarity: number; id: number; title: string }>>

  // l2 has no similarity: only distance.
  const notes = await kit.search('notes.text_embedding', [1, 2, 3]).select(['text']).execute()
  type _note = Expect<Equal<(typeof notes)[number], { distance: number; text: string }>>

  const hybrid = await kit.hybridSearch('documents.body_embedding', 'parks').select(['title']).execute()
  type _hybrid = Expect<Equal<(typeof hybrid)[number], { score: number; vector_rank: number | null; text_rank: number | null; title: string }>>

  // @ts-expect-error: not a configured embedding column
  kit.search('documents.title', 'x')
  // @ts-expect-error: not a configured table
  kit.search('documentz.body_embedding', 'x')
  // @ts-expect-error: a column the table does not have
  kit.search('documents.body_embedding', 'x').select(['nope'])
  // @ts-expect-error: a column of another table
  kit.search('documents.body_embedding', 'x').select(['text'])
  // @ts-expect-error: where on a column the table does not have
  kit.search('documents.body_embedding', 'x').where('missing', '=', 1)
  // @ts-expect-error: hybrid search needs fullText on the table
  kit.hybridSearch('notes.text_embedding', 'x')
  // @ts-expect-error: an unknown distance
  kit.search('documents.body_embedding', 'x', { distance: 'dot' })

  // predictOnline: a prediction, or which features had no value; narrowed by status.
  const served = await kit.predictOnline('churn', { customer_id: 7 }, { asOf: new Date() })
  if (served.status === 'ok') {
    type _prediction = Expect<Equal<typeof served.prediction, number>>
  } else {
    type _missing = Expect<Equal<typeof served.missing, readonly string[]>>
    // @ts-expect-error: no prediction without features
    void served.prediction
  }
  type _served = Expect<Equal<typeof served, OnlinePrediction>>
}
