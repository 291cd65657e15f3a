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

/**
 * How a search with a `where` reads its rows:
 * - `auto` (default): as a planner would — the kit asks PostgreSQL's planner how many rows the
 *   filter keeps and what an exact scan of them costs, and scans them exactly (every row the
 *   filter keeps, sorted by distance: recall 1) when that is cheaper than an iterative index scan
 *   would be for a filter that selective; otherwise the index, with iterative scans. The estimate
 *   is one `EXPLAIN` per query shape and filter values, kept for a minute.
 * - `index`: always the vector index, with iterative scans (no estimate).
 * - `exact`: always the exact scan.
 */
export type FilterStrategy = 'auto' | 'index' | 'exact'

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
  readonly filter: FilterStrategy

  /** `query`'s vector is copied: the search runs after awaits, the caller's array may change meanwhile. */
  constructor(column: EmbeddingColumnNode, query: string | ArrayLike<number>, settings: IndexSettings, index: IndexDefaults = NO_INDEX, filter: FilterStrategy = 'auto') {
    if (filter !== 'auto' && filter !== 'index' && filter !== 'exact') throw new RangeError(`filterStrategy must be auto, index or exact, got ${String(filter)}`)
    // Checked now, whichever way the search runs (an exact scan uses none of them).
    settingsToApply(settings)
    this.column = column
    this.text = typeof query === 'string' ? query : null
    this.vector = typeof query === 'string' ? null : Array.from(query)
    this.settings = settings
    this.index = index
    this.filter = filter
  }

  /** The same search (column, settings, index) for another query, run at once: what a prepared search's execute runs. */
  withQuery(query: string | ArrayLike<number>): QueryVector {
    return new QueryVector(this.column, query, this.settings, this.index, this.filter)
  }
}

/**
 * A named parameter of a prepared search (`kit.placeholder('tenant')`): compiled as a bind
 * parameter, given its value at each `execute`.
 */
export class Placeholder {
  readonly name: string

  constructor(name: string) {
    if (typeof name !== 'string' || name === '') throw new RangeError('a placeholder needs a name')
    this.name = name
  }
}

/**
 * Cost, in the planner's units, of an iterative index scan per unit of inverse selectivity: an
 * HNSW scan with a filter that keeps a share s of the rows visits about k / s of them before it
 * has k, so its cost grows as 1 / s while an exact scan of the rows the filter keeps costs what
 * the planner says (small with an index on the filter column, a full table scan without one).
 * Calibrated with bench/filtered-search.ts on its tuning queries (the planner's units are about
 * 2 µs there; an iterative scan costs about 0.16 ms per unit of 1 / s) and judged on its held-out
 * queries; see bench/results/filtered-search.md.
 */
export const ITERATIVE_COST_PER_INVERSE_SELECTIVITY = 80

/** pgvector's default `hnsw.ef_search`. */
export const PGVECTOR_EF_SEARCH = 40

/**
 * ef_search for an iterative HNSW scan under a filter that keeps a share `selectivity` of the
 * rows, when the caller did not set one: the column's own, times 1 + log10(1 / selectivity) (× 2
 * at 10 %, × 3 at 1 %), at most pgvector's 1000. A filtered scan's candidates are mostly rows the
 * filter drops; set on bench/filtered-search.ts's tuning queries, where ef 40 at 10 % lost about
 * 0.01 of recall against the unfiltered search and ef 80–100 did not.
 */
export function filteredEfSearch(base: number, selectivity: number): number {
  if (!(selectivity > 0) || selectivity >= 1) return base
  return Math.min(1000, Math.ceil(base * (1 + Math.log10(1 / selectivity))))
}

/** What the planner estimated for the exact form of a filtered search. */
export interface FilterEstimate {
  /** Total cost of the exact scan (planner units). */
  readonly exactCost: number
  /** Rows the filter keeps, as the planner estimates. */
  readonly matches: number
  /** Rows of the table (`reltuples`; ≤ 0 when never analysed). */
  readonly tableRows: number
}

/** Whether a filtered search is cheaper as an exact scan than as an iterative index scan. */
export function exactIsCheaper(estimate: FilterEstimate): boolean {
  const { exactCost, matches, tableRows } = estimate
  if (!(tableRows > 0) || !Number.isFinite(exactCost)) return false
  const inverseSelectivity = tableRows / Math.max(matches, 1)
  return exactCost <= ITERATIVE_COST_PER_INVERSE_SELECTIVITY * inverseSelectivity
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
export function effectiveSettings(marker: QueryVector, filtered: boolean, capabilities: SearchCapabilities | null, selectivity: number | null = null, sessionEfSearch: number | null = null): IndexSettings {
  const { settings, index } = marker
  let out: IndexSettings = settings
  if (out.efSearch === undefined && index.method === 'hnsw' && filtered && selectivity !== null) {
    // From the config's ef_search, else the session's (a server, database or role default), never below the latter unless the config says so.
    const raised = filteredEfSearch(index.efSearch ?? sessionEfSearch ?? PGVECTOR_EF_SEARCH, selectivity)
    out = { ...out, efSearch: index.efSearch === null ? Math.max(raised, sessionEfSearch ?? 0) : raised }
  }
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
