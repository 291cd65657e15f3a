import type { IndexMethod, VectorType } from '../model/ir.js'

/**
 * Index settings from the size of the data, following pgvector's own guidance where it gives one
 * (IVFFlat: lists = rows / 1000 up to a million rows, √rows beyond; probes = √lists) and measured
 * memory use where it does not (an HNSW build is fast only while its graph fits in
 * `maintenance_work_mem`; past that pgvector warns "hnsw graph no longer fits" and slows down
 * several times). Pure functions: the same inputs give the same advice, so `plan` can show it and
 * tests can pin it.
 */

/** pgvector's default `maintenance_work_mem` is PostgreSQL's: 64 MB. */
export const DEFAULT_MAINTENANCE_WORK_MEM = 64 * 1024 * 1024

export interface IvfflatAdvice {
  readonly lists: number
  readonly probes: number
  readonly reason: string
}

export interface HnswAdvice {
  readonly m: number
  readonly efConstruction: number
  /** A starting `ef_search` for recall ≈ 0.95 on typical data; `pgml-kit index check` measures the real one. */
  readonly efSearch: number
  readonly reason: string
}

export interface BuildAdvice {
  /** Bytes the build needs to stay in memory. */
  readonly memoryBytes: number
  /** `max_parallel_maintenance_workers` worth asking for (the server may give fewer). */
  readonly parallelWorkers: number
  readonly reason: string
}

function assertRows(rows: number): void {
  if (!Number.isFinite(rows) || rows < 0) throw new RangeError(`rows must be a number ≥ 0, got ${rows}`)
}

/** pgvector's guidance: lists = rows / 1000 up to 1M rows, √rows above; probes = √lists. */
export function adviseIvfflat(rows: number): IvfflatAdvice {
  assertRows(rows)
  const lists = Math.min(32768, Math.max(1, Math.round(rows <= 1_000_000 ? rows / 1000 : Math.sqrt(rows))))
  const probes = Math.max(1, Math.round(Math.sqrt(lists)))
  const reason = rows <= 1_000_000
    ? `lists = rows / 1000 for up to 1M rows (${formatCount(rows)} rows), probes = √lists`
    : `lists = √rows above 1M rows (${formatCount(rows)} rows), probes = √lists`
  return { lists, probes, reason }
}

/**
 * HNSW: pgvector's defaults (m 16, ef_construction 64) up to a million rows; denser graphs
 * (m 24, then 32, ef_construction 4 × m) above, where recall at a given ef_search otherwise drops.
 */
export function adviseHnsw(rows: number): HnswAdvice {
  assertRows(rows)
  const m = rows < 1_000_000 ? 16 : rows < 10_000_000 ? 24 : 32
  const efConstruction = 4 * m
  const efSearch = rows < 1_000_000 ? 40 : 100
  return { m, efConstruction, efSearch, reason: `m ${m} and ef_construction ${efConstruction} (4 × m) for ${formatCount(rows)} rows` }
}

export function bytesPerElement(vectorType: VectorType): number {
  return vectorType === 'halfvec' ? 2 : 4
}

/**
 * Memory an HNSW build needs to keep its whole graph in memory: per row the vector (with its
 * header), 2 × m layer-0 neighbours of 16 bytes, and about 300 bytes of element bookkeeping and
 * upper layers — calibrated on pgvector 0.8 (384 dimensions, m 16: 64 MB holds 28k rows), plus 10 %.
 */
export function hnswBuildBytes(rows: number, dimensions: number, vectorType: VectorType, m: number): number {
  assertRows(rows)
  const perRow = 8 + dimensions * bytesPerElement(vectorType) + 2 * m * 16 + 300
  return Math.ceil(rows * perRow * 1.1)
}

/** IVFFlat's k-means works on a sample of 50 rows per list, plus the centres. */
export function ivfflatBuildBytes(rows: number, lists: number, dimensions: number, vectorType: VectorType): number {
  assertRows(rows)
  const vector = 8 + dimensions * bytesPerElement(vectorType)
  return Math.ceil((Math.min(rows, lists * 50) + 2 * lists) * vector * 1.1)
}

/** Parallel build workers: none for small tables (start-up costs more than it saves), one per 100k rows up to 7. */
export function adviseParallelWorkers(rows: number): number {
  assertRows(rows)
  return rows < 100_000 ? 0 : Math.min(7, Math.floor(rows / 100_000))
}

export function adviseBuild(method: IndexMethod, rows: number, dimensions: number, vectorType: VectorType, params: { m?: number; lists?: number }): BuildAdvice {
  const memoryBytes = method === 'hnsw'
    ? hnswBuildBytes(rows, dimensions, vectorType, params.m ?? 16)
    : ivfflatBuildBytes(rows, params.lists ?? 100, dimensions, vectorType)
  const parallelWorkers = adviseParallelWorkers(rows)
  const fits = memoryBytes <= DEFAULT_MAINTENANCE_WORK_MEM
  return {
    memoryBytes,
    parallelWorkers,
    reason: `${method === 'hnsw' ? 'the graph' : 'the k-means sample'} of ${formatCount(rows)} rows needs about ${formatBytes(memoryBytes)}${fits ? ', within the default 64 MB maintenance_work_mem' : ', more than the default 64 MB maintenance_work_mem'}`,
  }
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit += 1
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`
}

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US')
}
