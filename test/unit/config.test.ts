import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/errors.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { findColumn } from '../../src/model/find-column.js'
import { documentsConfig } from '../helpers/fixtures.js'

function issuesOf(input: unknown): { path: string; message: string }[] {
  try {
    resolveConfig(input)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return [...(error as ConfigError).issues]
  }
  throw new Error('expected a ConfigError')
}

const base = 'tables.documents.embeddings.body_embedding'

describe('resolveConfig', () => {
  it('checks renamedFrom: not the column itself, not a column still declared, not two columns from one name', () => {
    const column = documentsConfig().tables.documents!.embeddings.body_embedding!
    const issues = issuesOf({ tables: { documents: { embeddings: {
      a: { ...column, renamedFrom: 'a' },
      b: { ...column, renamedFrom: 'a' },
      c: { ...column, renamedFrom: 'old' },
      d: { ...column, renamedFrom: 'old' },
    } } } })
    expect(issues).toEqual([
      { path: 'tables.documents.embeddings.a.renamedFrom', message: 'names the column itself; remove renamedFrom' },
      { path: 'tables.documents.embeddings.b.renamedFrom', message: '"a" is still declared as an embedding column of documents; a renamed column\'s old name must be gone from the config' },
      { path: 'tables.documents.embeddings.d.renamedFrom', message: 'another column of documents is already renamed from "old"' },
    ])
    expect(resolveConfig({ tables: { documents: { embeddings: { c: { ...column, renamedFrom: 'old' } } } } }).renames).toEqual([
      { schema: 'public', table: 'documents', from: 'old', to: 'c', path: 'tables.documents.embeddings.c.renamedFrom' },
    ])
  })

  it('checks a table\'s renamedFrom: not the table itself, not a table still declared, not two tables from one', () => {
    const table = documentsConfig().tables.documents!
    const issues = issuesOf({ tables: {
      documents: table,
      itself: { ...table, renamedFrom: 'itself' },
      articles: { ...table, renamedFrom: 'documents' },
      posts: { ...table, renamedFrom: 'old' },
      notes: { ...table, renamedFrom: 'old' },
    } })
    expect(issues).toEqual([
      { path: 'tables.itself.renamedFrom', message: 'names the table itself; remove renamedFrom' },
      { path: 'tables.articles.renamedFrom', message: 'public.documents is still declared in tables; a renamed table\'s old name must be gone from the config' },
      { path: 'tables.notes.renamedFrom', message: 'tables.posts is already renamed from public.old; one table can take its place, not two' },
    ])
    // The same name in another schema is another table.
    expect(resolveConfig({ tables: { documents: { ...table, schema: 'other' }, articles: { ...table, renamedFrom: 'documents' } } }).tableRenames).toEqual([
      { schema: 'public', from: 'documents', to: 'articles', path: 'tables.articles.renamedFrom' },
    ])
  })

  it('applies a model preset and defaults', () => {
    const { state, migrations } = resolveConfig(documentsConfig({ model: 'intfloat/e5-small-v2' }))
    expect(state.embeddingColumns).toHaveLength(1)
    const [column] = state.embeddingColumns
    expect(column?.model).toEqual({ id: 'intfloat/e5-small-v2', revision: null, dimensions: 384, documentPrefix: 'passage: ', queryPrefix: 'query: ', normalize: true, pooling: 'mean' })
    expect(column?.keyColumns).toEqual(['id'])
    expect(column?.vectorType).toBe('vector')
    expect(column?.separator).toBe('\n\n')
    expect(state.indexes[0]).toMatchObject({ name: 'documents_body_embedding_hnsw_cosine_idx', params: { m: 16, ef_construction: 64 } })
    expect(migrations).toMatchObject({ dir: 'migrations', table: 'pgmigrations', lockTimeout: '5s' })
    expect(Object.isFrozen(state.embeddingColumns[0]?.model)).toBe(true)
  })

  it('lets a config override a preset field but not its dimensions', () => {
    const ok = resolveConfig(documentsConfig({ model: { id: 'intfloat/e5-small-v2', normalize: false } }))
    expect(ok.state.embeddingColumns[0]?.model.normalize).toBe(false)
    expect(issuesOf(documentsConfig({ model: { id: 'intfloat/e5-small-v2', dimensions: 768 } }))).toEqual([
      { path: `${base}.model.dimensions`, message: 'model "intfloat/e5-small-v2" produces 384 dimensions, not 768' },
    ])
  })

  it('is deterministic: the same config resolves to the same state', () => {
    const config = documentsConfig({ indexes: [{ method: 'ivfflat', distance: 'l2', lists: 50 }, { method: 'hnsw', distance: 'inner_product' }] })
    expect(JSON.stringify(resolveConfig(config))).toBe(JSON.stringify(resolveConfig(structuredClone(config))))
  })

  const cases: [string, unknown, string, RegExp][] = [
    ['dimensions above the vector index limit', documentsConfig({ model: { id: 'big', dimensions: 3072 } }), `${base}.indexes`, /at most 2000 dimensions.*use type: "halfvec"/],
    ['dimensions above the halfvec index limit', documentsConfig({ type: 'halfvec', model: { id: 'big', dimensions: 4096 } }), `${base}.indexes`, /halfvec columns of at most 4000/],
    ['l1 distance on IVFFlat', documentsConfig({ indexes: [{ method: 'ivfflat', distance: 'l1' }] }), `${base}.indexes[0].distance`, /IVFFlat indexes do not support distance "l1".*use method "hnsw"/],
    ['an unknown distance', documentsConfig({ indexes: [{ method: 'hnsw', distance: 'dot' as 'l2' }] }), `${base}.indexes[0].distance`, /must be one of "l2", "inner_product", "cosine", "l1"/],
    ['a source column listed twice', documentsConfig({ source: ['title', 'body', 'title'] }), `${base}.source[2]`, /"title" is listed twice/],
    ['a column that is its own source', documentsConfig({ source: ['body_embedding'] }), `${base}.source[0]`, /cannot be its own source/],
    ['an unknown model without dimensions', documentsConfig({ model: 'acme/secret-model' }), `${base}.model`, /not a known preset, so its dimensions must be given/],
    ['an embedding column that is the primary key', { tables: { documents: { primaryKey: 'body_embedding', embeddings: documentsConfig().tables.documents!.embeddings } } }, base, /is the table's primary key/],
    ['an unknown pooling', documentsConfig({ model: { id: 'x/y', dimensions: 8, pooling: 'max' as 'mean' } }), `${base}.model.pooling`, /must be "mean" or "cls"/],
    ['a batch size of zero', documentsConfig({}, { embedder: { batchSize: 0 } }), 'embedder.batchSize', /too small|>=1|at least/i],
    ['an unknown mode', documentsConfig({ mode: 'magic' as 'app' }), `${base}.mode`, /must be one of "trigger", "generated", "queue", "app"/],
    ['ef_construction below 2·m', documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine', m: 32, efConstruction: 40 }] }), `${base}.indexes[0].efConstruction`, /at least 2 × m \(64\)/],
    ['m out of range', documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine', m: 500 }] }), `${base}.indexes[0].m`, /at most 100/],
    ['lists out of range', documentsConfig({ indexes: [{ method: 'ivfflat', distance: 'cosine', lists: 0 }] }), `${base}.indexes[0].lists`, /at least 1/],
    ['a misspelt key', { tables: { documents: { embeddings: { body_embedding: { ...documentsConfig().tables.documents!.embeddings.body_embedding, indexs: [] } } } } }, base, /indexs/],
    ['a schema-qualified table key', { tables: { 'app.documents': documentsConfig().tables.documents } }, 'tables.app.documents', /write tables: \{ "documents": \{ schema: "app"/],
    ['a duplicate index name', documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine' }, { method: 'hnsw', distance: 'cosine', m: 8, efConstruction: 32 }] }), `${base}.indexes[1]`, /already used by .*indexes\[0\]/],
    ['an identifier longer than 63 bytes', { tables: { ['t'.repeat(64)]: documentsConfig().tables.documents } }, `tables.${'t'.repeat(64)}`, /63-byte/],
    ['a non-duration timeout', documentsConfig({}, { migrations: { lockTimeout: 'five seconds' } }), 'migrations.lockTimeout', /PostgreSQL duration/],
  ]

  it.each(cases)('refuses %s, naming the config path', (_name, input, path, message) => {
    const issues = issuesOf(input)
    const issue = issues.find((i) => i.path === path)
    expect(issue, `issues: ${JSON.stringify(issues)}`).toBeDefined()
    expect(issue?.message).toMatch(message)
  })

  it('reports every problem at once, in a message that names the file', () => {
    try {
      resolveConfig(documentsConfig({ source: ['a', 'a'], model: 'unknown/model' }))
      expect.unreachable()
    } catch (error) {
      expect((error as ConfigError).code).toBe('CONFIG_INVALID')
      expect((error as ConfigError).issues).toHaveLength(2)
      expect((error as Error).message).toMatch(/^pgml-kit.config.ts is invalid:\n {2}tables\.documents/)
    }
  })
})

describe('findColumn', () => {
  const model = { id: 'm/x', dimensions: 4 }
  const { state } = resolveConfig({
    tables: {
      b: { schema: 'a', embeddings: { 'c.d': { source: 'body', model, mode: 'app' as const } } },
      c: { schema: 'a.b', embeddings: { d: { source: 'body', model, mode: 'app' as const } } },
      documents: { embeddings: { body_embedding: { source: 'body', model, mode: 'app' as const } } },
    },
  })
  const found = (arg: string) => { const c = findColumn(state.embeddingColumns, arg); return [c.schema, c.table, c.column] }

  it('finds columns whose names contain dots, by <table>.<column> or <schema>.<table>.<column>', () => {
    expect(found('b.c.d')).toEqual(['a', 'b', 'c.d'])
    expect(found('c.d')).toEqual(['a.b', 'c', 'd'])
    expect(found('documents.body_embedding')).toEqual(['public', 'documents', 'body_embedding'])
    expect(found('public.documents.body_embedding')).toEqual(['public', 'documents', 'body_embedding'])
  })

  it('refuses a name that reads as two columns, saying how to name each', () => {
    expect(() => findColumn(state.embeddingColumns, 'a.b.c.d')).toThrow(expect.objectContaining({
      code: 'COLUMN_AMBIGUOUS', message: expect.stringContaining('"a.b.c.d" names several columns (["a","b","c.d"], ["a.b","c","d"])'), hint: 'name one as <table>.<column>: b.c.d, c.d',
    }))
    expect(() => findColumn(state.embeddingColumns, 'x.y')).toThrow(expect.objectContaining({ code: 'COLUMN_UNKNOWN' }))
  })
})
