/**
 * Type tests, checked by `npm run typecheck` (part of `npm test`): each @ts-expect-error line must
 * be a compile error, or the type check fails.
 */
import type pg from 'pg'
import { createEmbeddingWriter, defineConfig } from '../../src/index.js'

const config = defineConfig({
  tables: {
    documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: 'intfloat/e5-small-v2', mode: 'app' } } },
    notes: { embeddings: { text_embedding: { source: 'text', model: 'intfloat/e5-small-v2', mode: 'app' } } },
  },
})

export async function typeTests(db: pg.Pool): Promise<void> {
  const writer = createEmbeddingWriter(config, { db })
  await writer.insert('documents', [{ title: 'a', body: 'b', department: 'x' }])
  await writer.insert('notes', [{ text: null }])
  // @ts-expect-error: not a configured table
  await writer.insert('documentz', [{ title: 'a', body: 'b' }])
  // @ts-expect-error: the source column body is missing
  await writer.insert('documents', [{ title: 'a' }])
  // @ts-expect-error: a source column must be text or null
  await writer.insert('notes', [{ text: 42 }])
}
