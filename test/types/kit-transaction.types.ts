import { Kysely, type Generated } from 'kysely'
import { createKit } from '../../src/query/create-kit.js'
import { defineConfig } from '../../src/config/define-config.js'

interface DB {
  documents: { id: Generated<number>; title: string | null; body: string | null; body_embedding: string | null }
}
const config = defineConfig({
  tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }, mode: 'app' } } } },
})
declare const db: Kysely<DB>

// A kit over the application's transaction infers its tables as a kit over the Kysely instance does.
export async function inTransaction(): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const kit = createKit(config, { db: trx })
    const hits = await kit.search('documents.body_embedding', [0.1], { k: 1 }).select(['title']).execute()
    const title: string | null | undefined = hits[0]?.title
    void title
  })
}
