/**
 * Type tests for searches over chunked columns, checked by `npm run typecheck` (part of `npm test`):
 * each @ts-expect-error line must be a compile error, or the type check fails.
 */
import type { Kysely } from 'kysely'
import { createKit, defineConfig, type ChunkHit, type DocumentHit } from '../../src/index.js'

const config = defineConfig({
  tables: {
    pages: {
      embeddings: {
        body_chunks: { source: 'body', model: 'pgml-kit/wordnet-static-128', mode: 'queue', chunking: { size: 400, fullText: 'english' }, indexes: [{ method: 'hnsw', distance: 'cosine' }] },
        title_embedding: { source: 'title', model: 'pgml-kit/wordnet-static-128', mode: 'app' },
      },
    },
  },
})

type Expect<T extends true> = T
type Equal<A, B> = (<G>() => G extends A ? 1 : 2) extends (<G>() => G extends B ? 1 : 2) ? true : false

export async function typeTests(db: Kysely<Record<string, never>>): Promise<void> {
  const kit = createKit(config, { db })
  const documents = await kit.searchChunks('pages.body_chunks', 'opening hours', { k: 5 })
  type _documents = Expect<Equal<typeof documents, DocumentHit<Record<string, unknown>>[]>>
  const chunks = await kit.searchChunks('pages.body_chunks', 'opening hours', { return: 'chunks', k: 5 })
  type _chunks = Expect<Equal<typeof chunks, ChunkHit[]>>
  const hybrid = await kit.hybridSearchChunks('pages.body_chunks', 'opening hours')
  type _hybrid = Expect<Equal<typeof hybrid, DocumentHit<Record<string, unknown>>[]>>
  await kit.embed('pages.body_chunks', ['a'])
  // @ts-expect-error: not a chunked column
  await kit.searchChunks('pages.title_embedding', 'x')
  // @ts-expect-error: a chunked column has no vector column on its table: kit.search does not take it
  kit.search('pages.body_chunks', 'x')
}
