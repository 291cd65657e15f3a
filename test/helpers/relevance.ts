import { readFileSync } from 'node:fs'
import pg from 'pg'
import { Kysely, PostgresDialect, sql } from 'kysely'
import { defineConfig } from '../../src/config/define-config.js'
import { createKit } from '../../src/query/create-kit.js'

/**
 * The labelled relevance set (test/fixtures/relevance/city-services.json) and how pgml-kit's three
 * ways of searching it score: vectors alone (kit.search), full text alone (websearch_to_tsquery
 * ranked by ts_rank_cd, the same list hybrid search fuses) and hybrid (kit.hybridSearch, RRF).
 * Used by test/integration/relevance.test.ts and bench/relevance.ts.
 */
export interface RelevanceSet {
  readonly documents: readonly { readonly id: string; readonly title: string; readonly body: string }[]
  readonly queries: readonly { readonly query: string; readonly relevant: readonly string[]; readonly split: 'tuning' | 'held-out' }[]
}

export const RELEVANCE_SET: RelevanceSet = JSON.parse(readFileSync(new URL('../fixtures/relevance/city-services.json', import.meta.url), 'utf8')) as RelevanceSet

export const PAGES_TABLE = `-- Up Migration
CREATE TABLE pages (id text PRIMARY KEY, title text NOT NULL, body text NOT NULL);
-- Down Migration
DROP TABLE pages;
`

export const relevanceConfig = defineConfig({
  tables: {
    pages: {
      embeddings: {
        embedding: {
          source: ['title', 'body'],
          model: 'pgml-kit/wordnet-static-128',
          mode: 'app',
          indexes: [{ method: 'hnsw', distance: 'cosine' }],
        },
      },
      fullText: { language: 'english', source: [{ column: 'title', weight: 'A' }, { column: 'body', weight: 'B' }] },
    },
  },
})

interface DB {
  pages: { id: string; title: string; body: string; embedding: string | null; search_tsv: unknown }
}

export type Method = 'vector' | 'fullText' | 'hybrid'
export type Split = 'tuning' | 'held-out' | 'all'

/** recall@k of one query: relevant rows in the top k over how many there could be (at most k). */
export function recallAt(k: number, found: readonly string[], relevant: readonly string[]): number {
  const top = new Set(found.slice(0, k))
  return relevant.filter((id) => top.has(id)).length / Math.min(k, relevant.length)
}

export interface RelevanceReport {
  /** Mean recall@3 per method and split. */
  readonly recall: Record<Method, Record<Split, number>>
  /** The top 3 of each method for each query. */
  readonly results: readonly { readonly query: string; readonly split: string; readonly relevant: readonly string[]; readonly top: Record<Method, string[]> }[]
}

/** Runs every query of the set three ways against a database where `pages` is loaded and embedded. */
export async function evaluateRelevance(url: string, k = 3): Promise<RelevanceReport> {
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
  try {
    const kit = createKit(relevanceConfig, { db })
    const results: RelevanceReport['results'][number][] = []
    for (const q of RELEVANCE_SET.queries) {
      const vector = await kit.search('pages.embedding', q.query, { k }).select(['id']).execute()
      const hybrid = await kit.hybridSearch('pages.embedding', q.query, { k }).select(['id']).execute()
      const fullText = await sql<{ id: string }>`SELECT id FROM pages, websearch_to_tsquery('english', ${q.query}) AS q
        WHERE search_tsv @@ q ORDER BY ts_rank_cd(search_tsv, q) DESC, id LIMIT ${k}`.execute(db)
      results.push({ query: q.query, split: q.split, relevant: q.relevant, top: { vector: vector.map((r) => r.id), fullText: fullText.rows.map((r) => r.id), hybrid: hybrid.map((r) => r.id) } })
    }
    const mean = (method: Method, split: Split) => {
      const rows = results.filter((r) => split === 'all' || r.split === split)
      return rows.reduce((sum, r) => sum + recallAt(k, r.top[method], r.relevant), 0) / rows.length
    }
    const per = (method: Method) => ({ tuning: mean(method, 'tuning'), 'held-out': mean(method, 'held-out'), all: mean(method, 'all') })
    return { recall: { vector: per('vector'), fullText: per('fullText'), hybrid: per('hybrid') }, results }
  } finally {
    await db.destroy()
  }
}
