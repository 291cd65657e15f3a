import type { EmbeddingColumnNode } from '../model/ir.js'

/** Per-query index settings, applied with `set_config(..., true)` (SET LOCAL) around the query. */
export interface IndexSettings {
  /** `hnsw.ef_search` (1–1000): candidates an HNSW scan keeps; higher is more accurate and slower. */
  readonly efSearch?: number
  /** `ivfflat.probes` (1–lists): lists an IVFFlat scan visits. */
  readonly probes?: number
  /**
   * pgvector ≥ 0.8 iterative index scans, which keep scanning until enough rows pass the filters:
   * `relaxed_order` (fast, results nearly in order) or `strict_order` (HNSW only).
   */
  readonly iterativeScan?: 'off' | 'relaxed_order' | 'strict_order'
  /** `hnsw.max_scan_tuples`: how far an iterative HNSW scan may go. */
  readonly maxScanTuples?: number
}

/**
 * A query parameter that stands for the query's vector. The kit's driver replaces it at
 * execution time with the vector — computed by pgml.embed in the same transaction, or by the
 * local embedder — and applies the search's index settings around the query.
 */
export class QueryVector {
  readonly column: EmbeddingColumnNode
  readonly text: string | null
  readonly vector: readonly number[] | null
  readonly settings: IndexSettings

  constructor(column: EmbeddingColumnNode, query: string | ArrayLike<number>, settings: IndexSettings) {
    this.column = column
    this.text = typeof query === 'string' ? query : null
    this.vector = typeof query === 'string' ? null : Array.from(query)
    this.settings = settings
  }
}

export function settingsToApply(settings: IndexSettings): [string, string][] {
  const out: [string, string][] = []
  const int = (name: string, value: number | undefined, min: number, max: number) => {
    if (value === undefined) return
    if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`)
    out.push([name, String(value)])
  }
  int('hnsw.ef_search', settings.efSearch, 1, 1000)
  int('ivfflat.probes', settings.probes, 1, 32768)
  int('hnsw.max_scan_tuples', settings.maxScanTuples, 1, 2 ** 31 - 1)
  if (settings.iterativeScan !== undefined) {
    if (!['off', 'relaxed_order', 'strict_order'].includes(settings.iterativeScan)) throw new RangeError(`iterativeScan must be off, relaxed_order or strict_order, got ${settings.iterativeScan}`)
    out.push(['hnsw.iterative_scan', settings.iterativeScan])
    out.push(['ivfflat.iterative_scan', settings.iterativeScan === 'strict_order' ? 'relaxed_order' : settings.iterativeScan])
  }
  return out
}
