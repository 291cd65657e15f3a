import type { Distance } from '../config/schema.js'
import type { EmbeddingColumnNode, IndexMethod } from '../model/ir.js'

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

/** What the config says about the index a search uses: its method and its query-time defaults. */
export interface IndexDefaults {
  /** The method of the index on the column with the search's distance, or null when there is none. */
  readonly method: IndexMethod | null
  readonly efSearch: number | null
  readonly probes: number | null
}

export const NO_INDEX: IndexDefaults = Object.freeze({ method: null, efSearch: null, probes: null })

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
  readonly index: IndexDefaults

  constructor(column: EmbeddingColumnNode, query: string | ArrayLike<number>, settings: IndexSettings, index: IndexDefaults = NO_INDEX) {
    this.column = column
    this.text = typeof query === 'string' ? query : null
    this.vector = typeof query === 'string' ? null : Array.from(query)
    this.settings = settings
    this.index = index
  }
}

/** What the database can do for a search, learnt once per kit. */
export interface SearchCapabilities {
  /** pgvector ≥ 0.8: `hnsw.iterative_scan` and `ivfflat.iterative_scan` exist. */
  readonly iterativeScan: boolean
}

/**
 * The settings a search runs with: the caller's, else the config's defaults for its index, and —
 * when the query filters rows (`where`) and the caller said nothing — iterative scans, so a filter
 * does not starve the index scan of rows (pgvector ≥ 0.8). HNSW scans keep strict distance order;
 * IVFFlat has only relaxed order, which the kit puts back in order (see KitDialect).
 */
export function effectiveSettings(marker: QueryVector, filtered: boolean, capabilities: SearchCapabilities | null): IndexSettings {
  const { settings, index } = marker
  let out: IndexSettings = settings
  if (out.efSearch === undefined && index.method === 'hnsw' && index.efSearch !== null) out = { ...out, efSearch: index.efSearch }
  if (out.probes === undefined && index.method === 'ivfflat' && index.probes !== null) out = { ...out, probes: index.probes }
  if (out.iterativeScan === undefined && filtered && index.method !== null && capabilities?.iterativeScan) {
    out = { ...out, iterativeScan: index.method === 'hnsw' ? 'strict_order' : 'relaxed_order' }
  }
  return out
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

/**
 * A selection every search carries: the fingerprint of its column's catalog row now, read in the
 * search's own statement (see KitDialect). The driver compares it with the fingerprint of the row
 * the query was embedded with, runs the search again if a migration changed the column meanwhile,
 * and removes it from the rows.
 */
export class CatalogProbe {
  readonly column: EmbeddingColumnNode

  constructor(column: EmbeddingColumnNode) {
    this.column = column
  }
}

/**
 * A search's distance operator. The kit's compiler writes it as `OPERATOR("schema".<=>)`, with
 * the schema pgvector is installed in (read with the catalog), so a role whose search_path does
 * not name that schema still finds it.
 */
export class DistanceOperator {
  readonly distance: Distance

  constructor(distance: Distance) {
    this.distance = distance
  }
}
