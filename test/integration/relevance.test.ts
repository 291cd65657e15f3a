import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { localEmbedderLoader } from '../../src/embed/embedder-for-config.js'
import { backfill } from '../../src/worker/backfill.js'
import { PAGES_TABLE, RELEVANCE_SET, evaluateRelevance, relevanceConfig } from '../helpers/relevance.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * Search that finds what people ask for: 120 pages of a city's services, 90 questions with the
 * pages that answer them (labelled by hand), searched through kit.search (vectors, with the model
 * pgml-kit ships), full text alone, and kit.hybridSearch (RRF of both). The floors are the
 * figures the README states, less a margin; bench/relevance.ts prints the exact ones.
 */
describe.each(tiers)('relevance on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  it('semantic search reaches its stated recall@3, and hybrid search beats vectors alone and full text alone', async () => {
    db = await tier.create()
    const project = new TestProject(db)
    await project.writeMigration('1000000000000_create-pages.sql', PAGES_TABLE)
    await project.writeConfig(relevanceConfig)
    await project.generate('add-page-embeddings')
    await project.migrate()
    await db.query('INSERT INTO pages (id, title, body) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])',
      [RELEVANCE_SET.documents.map((d) => d.id), RELEVANCE_SET.documents.map((d) => d.title), RELEVANCE_SET.documents.map((d) => d.body)])
    const config = await loadConfig('pgml-kit.config.ts', db.cwd)
    const column = config.state.embeddingColumns[0]!
    const filled = await backfill({ url: db.url, column, loadEmbedder: () => localEmbedderLoader(config.embedder)(column) })
    expect(filled.written).toBe(RELEVANCE_SET.documents.length)

    const { recall } = await evaluateRelevance(db.url)
    expect(recall.vector.tuning).toBeGreaterThanOrEqual(0.85)
    expect(recall.vector['held-out']).toBeGreaterThanOrEqual(0.9)
    for (const split of ['tuning', 'held-out', 'all'] as const) {
      expect(recall.hybrid[split], `hybrid vs vectors (${split})`).toBeGreaterThan(recall.vector[split])
      expect(recall.hybrid[split], `hybrid vs full text (${split})`).toBeGreaterThan(recall.fullText[split])
    }
  })
})
