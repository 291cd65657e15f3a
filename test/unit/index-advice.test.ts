import { describe, expect, it } from 'vitest'
import { adviseBuild, adviseHnsw, adviseIvfflat, adviseParallelWorkers, hnswBuildBytes } from '../../src/indexes/advice.js'
import { sizeAutoParameters, type Sizing } from '../../src/indexes/sizing.js'
import { PREDICTIVE_MARGIN_SE, recommendSetting } from '../../src/indexes/check.js'
import { EMPTY_STATE } from '../../src/model/ir.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { planMigration, planOperations } from '../../src/plan/plan-migration.js'
import { renderMigrationFiles } from '../../src/migrations/render-files.js'
import { documentsConfig } from '../helpers/fixtures.js'
import { parseFiles, sections } from '../helpers/sql.js'

const sizing = (rows: number, filled = rows): Sizing => ({ source: 'test database', tables: new Map([['public.documents', { rows, filled: { body_embedding: filled } }]]) })

describe('index advice from the size of the data', () => {
  it('IVFFlat follows pgvector\'s guidance: lists = rows / 1000 up to 1M rows, √rows above; probes = √lists', () => {
    expect(adviseIvfflat(0)).toMatchObject({ lists: 1, probes: 1 })
    expect(adviseIvfflat(100_000)).toMatchObject({ lists: 100, probes: 10 })
    expect(adviseIvfflat(1_000_000)).toMatchObject({ lists: 1000, probes: 32 })
    expect(adviseIvfflat(4_000_000)).toMatchObject({ lists: 2000, probes: 45 })
    expect(adviseIvfflat(1e12).lists).toBe(32768)
    expect(() => adviseIvfflat(-1)).toThrow(/rows must be a number ≥ 0/)
  })

  it('HNSW keeps pgvector\'s defaults below a million rows and densens the graph above', () => {
    expect(adviseHnsw(50_000)).toMatchObject({ m: 16, efConstruction: 64, efSearch: 40 })
    expect(adviseHnsw(100_000)).toMatchObject({ m: 16, efConstruction: 64, efSearch: 40 })
    expect(adviseHnsw(2_000_000)).toMatchObject({ m: 24, efConstruction: 96 })
    expect(adviseHnsw(20_000_000)).toMatchObject({ m: 32, efConstruction: 128 })
  })

  it('sizes an HNSW build\'s memory from what pgvector reports: 64 MB holds about 28k rows of 384 dimensions at m 16', () => {
    // pgvector 0.8: "hnsw graph no longer fits into maintenance_work_mem after 28368 tuples" at 64 MB.
    const estimate = hnswBuildBytes(28_368, 384, 'vector', 16) / 1.1
    expect(Math.abs(estimate - 64 * 1024 * 1024) / (64 * 1024 * 1024)).toBeLessThan(0.05)
    expect(hnswBuildBytes(100_000, 384, 'halfvec', 16)).toBeLessThan(hnswBuildBytes(100_000, 384, 'vector', 16))
    expect(adviseBuild('hnsw', 100_000, 384, 'vector', { m: 16 }).reason).toMatch(/needs about 2\d\d MB, more than the default 64 MB/)
    expect(adviseBuild('hnsw', 1_000, 384, 'vector', { m: 16 }).reason).toMatch(/within the default 64 MB/)
    expect([adviseParallelWorkers(50_000), adviseParallelWorkers(250_000), adviseParallelWorkers(5e7)]).toEqual([0, 2, 7])
  })
})

describe('plans sized against a database', () => {
  const config = documentsConfig({ model: { id: 'test/double', dimensions: 384 }, indexes: [{ method: 'hnsw', distance: 'cosine', m: 'auto', efConstruction: 'auto', build: 'auto' }, { method: 'ivfflat', distance: 'l2', lists: 'auto' }] })
  const withoutIndexes = documentsConfig({ model: { id: 'test/double', dimensions: 384 }, indexes: [] })

  it('puts numbers on \'auto\' parameters from the table\'s rows, and keeps them once the index exists', () => {
    const previous = resolveConfig(withoutIndexes).state
    const sized = sizeAutoParameters(previous, resolveConfig(config).state, sizing(2_000_000))
    expect(sized.indexes.map((i) => i.params)).toEqual([{ m: 24, ef_construction: 96 }, { lists: 1414 }])
    // Without a database, pgvector's defaults.
    expect(sizeAutoParameters(previous, resolveConfig(config).state, undefined).indexes.map((i) => i.params)).toEqual([{ m: 16, ef_construction: 64 }, { lists: 100 }])
    // The table grew tenfold: the built indexes keep their parameters, so nothing is rebuilt.
    const later = sizeAutoParameters(sized, resolveConfig(config).state, sizing(20_000_000))
    expect(later.indexes.map((i) => i.params)).toEqual([{ m: 24, ef_construction: 96 }, { lists: 1414 }])
    expect(planOperations(planMigration(sized, later))).toEqual([])
  })

  it('keeps an \'auto\' index\'s parameters through a renamedFrom, so the index is renamed, not rebuilt', () => {
    const sized = sizeAutoParameters(resolveConfig(withoutIndexes).state, resolveConfig(config).state, sizing(2_000_000))
    const column = config.tables.documents!.embeddings.body_embedding!
    const renamed = resolveConfig({ tables: { documents: { embeddings: { body_vec: { ...column, renamedFrom: 'body_embedding' } } } } })
    const tables = new Map([['public.documents', { rows: 20_000_000, filled: { body_vec: 20_000_000 } }]])
    const next = sizeAutoParameters(sized, renamed.state, { source: 'test database', tables }, renamed.renames)
    expect(next.indexes.map((i) => i.params)).toEqual([{ m: 24, ef_construction: 96 }, { lists: 1414 }])
    expect(planOperations(planMigration(sized, next, { renames: renamed.renames })).map((op) => op.kind)).toEqual(['rename-embedding-column', 'rename-vector-index', 'rename-vector-index'])
  })

  it('keeps an \'auto\' index\'s parameters through a table\'s renamedFrom (with a column renamed too), so the index is renamed, not rebuilt', () => {
    const sized = sizeAutoParameters(resolveConfig(withoutIndexes).state, resolveConfig(config).state, sizing(2_000_000))
    const column = config.tables.documents!.embeddings.body_embedding!
    const renamed = resolveConfig({ tables: { articles: { renamedFrom: 'documents', embeddings: { body_vec: { ...column, renamedFrom: 'body_embedding' } } } } })
    const tables = new Map([['public.articles', { rows: 20_000_000, filled: { body_vec: 20_000_000 } }]])
    const next = sizeAutoParameters(sized, renamed.state, { source: 'test database', tables }, renamed.renames, renamed.tableRenames)
    expect(next.indexes.map((i) => i.params)).toEqual([{ m: 24, ef_construction: 96 }, { lists: 1414 }])
    expect(planOperations(planMigration(sized, next, { renames: renamed.renames, tableRenames: renamed.tableRenames })).map((op) => op.kind)).toEqual(['rename-table', 'rename-embedding-column'])
  })

  it('sets the build\'s memory and workers from the table when it runs, resets them after, and every statement parses', () => {
    const previous = resolveConfig(withoutIndexes).state
    const next = sizeAutoParameters(previous, resolveConfig(config).state, sizing(100_000))
    const plan = planMigration(previous, next, { sizing: sizing(100_000) })
    const [hnsw, ivfflat] = plan.after
    expect(hnsw?.notes).toEqual([
      '100,000 rows in public.documents (test database), 100,000 with a vector',
      'm 16, ef_construction 64 (auto: m 16 and ef_construction 64 (4 × m) for 100,000 rows)',
      'start searches at ef_search 40; `pgml-kit index check documents.body_embedding` measures the recall of each setting on your data',
      expect.stringMatching(/^build: the graph of 100,000 rows needs about 2\d\d MB, more than the default 64 MB maintenance_work_mem; maintenance_work_mem is set from the table's rows when the build runs \(at most 1GB\), and up to 1 parallel workers$/),
    ])
    expect(ivfflat?.notes).toContain('lists 100 (auto: lists = rows / 1000 for up to 1M rows (100,000 rows), probes = √lists); search with probes 10 to start')
    const files = renderMigrationFiles(plan, { name: 'indexes', timestamp: 1, settings: resolveConfig(config).migrations })
    expect(parseFiles(files)).toBeGreaterThan(4)
    const { up } = sections(files.find((f) => f.content.includes('USING hnsw'))!.content)
    expect(up).toMatch(/set_config\('maintenance_work_mem', [\s\S]*pg_size_bytes\('1GB'\)[\s\S]*set_config\('max_parallel_maintenance_workers'[\s\S]*CREATE INDEX CONCURRENTLY[\s\S]*RESET maintenance_work_mem;\s*RESET max_parallel_maintenance_workers;/)
    // An index whose config says nothing of the build is advised, not changed.
    const plain = planMigration(previous, resolveConfig(documentsConfig({ model: { id: 'test/double', dimensions: 384 } })).state, { sizing: sizing(100_000) })
    expect(plain.after[0]?.notes.at(-1)).toMatch(/set build: 'auto' \(maintenance_work_mem 2\d\d MB and up to 1 parallel workers\) for a build several times faster/)
    expect(renderMigrationFiles(plain, { name: 'x', timestamp: 1, settings: resolveConfig(config).migrations }).map((f) => f.content).join()).not.toContain("set_config('maintenance_work_mem'")
  })

  it('leaves an IVFFlat index out while its column has no vectors, saying why', () => {
    const fresh = planMigration(EMPTY_STATE, resolveConfig(config).state)
    expect(fresh.deferred.map((d) => d.reason)).toEqual([expect.stringMatching(/public\.documents\.body_embedding is added by this migration and holds no vectors yet.*run pgml-kit generate again/)])
    expect(planOperations(fresh).filter((op) => op.kind === 'create-vector-index').map((op) => op.index)).toEqual(['public.documents_body_embedding_hnsw_cosine_idx'])
    const previous = resolveConfig(withoutIndexes).state
    expect(planMigration(previous, resolveConfig(config).state, { sizing: sizing(500, 0) }).deferred).toHaveLength(1)
    expect(planMigration(previous, resolveConfig(config).state, { sizing: sizing(500, 500) }).deferred).toHaveLength(0)
    // A generated column is filled as it is added: its IVFFlat index is built with it.
    const generated = documentsConfig({ mode: 'generated', indexes: [{ method: 'ivfflat', distance: 'l2' }] })
    expect(planMigration(EMPTY_STATE, resolveConfig(generated).state).deferred).toEqual([])
  })

  it('refuses probes above lists, naming the path', () => {
    expect(() => resolveConfig(documentsConfig({ indexes: [{ method: 'ivfflat', distance: 'l2', lists: 10, probes: 11 }] })))
      .toThrow(/tables\.documents\.embeddings\.body_embedding\.indexes\[0\]\.probes: must be at most lists \(10\)/)
    expect(() => resolveConfig(documentsConfig({ indexes: [{ method: 'hnsw', distance: 'l2', build: { memory: 'lots' } }] })))
      .toThrow(/indexes\[0\]\.build.*memory size/)
  })
})

describe('index check\'s recommendation', () => {
  const row = (setting: number, recall: number, recallStdErr: number, iterative: boolean | null = null) => ({ setting, iterative, recall, recallStdErr, p50Ms: 1, p95Ms: 1, short: 0 })
  it('asks the measured recall to clear the target by the one-sided 95% bound on the mean of another sample of queries (2.33 standard errors)', () => {
    // bench/index-advice.ts: ef_search 40 measured 0.97 ± 0.014 for target 0.95 — one standard error cleared it, held-out queries reached 0.942.
    const rows = [row(20, 0.949, 0.0156), row(40, 0.97, 0.0142), row(80, 0.987, 0.0101), row(200, 0.99, 0.01), row(800, 1, 0)]
    expect(PREDICTIVE_MARGIN_SE).toBeCloseTo(2.326, 3)
    expect(recommendSetting(rows, 0.95)?.setting).toBe(80)
    expect(recommendSetting(rows, 0.9)?.setting).toBe(20)
    expect(recommendSetting(rows, 0.99)?.setting).toBe(800)
    expect(recommendSetting(rows.slice(0, 4), 0.99)).toBeNull()
    // Equal settings: without iterative scans first (they cost more when not needed).
    expect(recommendSetting([row(40, 0.99, 0, true), row(40, 0.99, 0, false)], 0.95)).toMatchObject({ setting: 40, iterative: false })
  })
})

