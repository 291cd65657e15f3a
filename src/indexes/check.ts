import { performance } from 'node:perf_hooks'
import { createRequire } from 'node:module'
import type pg from 'pg'
import { PgmlKitError } from '../errors.js'
import { isConnectionLost, type Connector } from '../db/connect.js'
import { backoffMs, sleep } from '../worker/resilience.js'
import { findColumn } from '../model/find-column.js'
import type { DesiredState, EmbeddingColumnNode, VectorIndexNode } from '../model/ir.js'
import { columnKey, columnLabel } from '../model/ir.js'
import { renderVectorType } from '../sql/render-source.js'
import { renderDistanceOperator } from '../sql/render-index.js'
import { VECTOR_SCHEMA } from '../sql/render-vector-schema.js'
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js'
import { PIN_CATALOG_ONLY, PIN_CHECK_SESSION, RECORD_CHECK, renderCatalogColumnUsable, renderCheckPlan, renderCheckSearch, renderSampleQueries } from '../sql/render-index-check.js'

/**
 * `pgml-kit index check`: how well an index finds what exact search finds, on the user's data.
 * Exact top-k comes from a sequential scan (index scans switched off); the index's answers from
 * the same queries at each setting of a grid (HNSW `ef_search`, IVFFlat `probes`), with and without
 * iterative scans when a filter is given. Recall@k counts an answer as found when it is as near as
 * the k-th exact answer (ties are not misses). Everything runs in one READ ONLY transaction, so a
 * `--where` filter cannot change data.
 */
export interface IndexCheckOptions {
  /** `table.column` or `schema.table.column`. */
  readonly column: string
  /** The index to check (its name); default: the column's first index. */
  readonly index?: string
  readonly k?: number
  /**
   * Query vectors sampled from the column, unless `queryVectors` are given (default: enough for a
   * sample without a miss to show the target on unseen queries — defaultQueryCount). Each sampled
   * row is left out of its own answers: it is not its own nearest neighbour, as a new query is not.
   */
  readonly queries?: number
  readonly queryVectors?: readonly (readonly number[])[]
  readonly targetRecall?: number
  /** A SQL condition on the table's rows (the caller's own SQL, run as written inside READ ONLY). */
  readonly where?: string
  /** Settings to try (default: a doubling grid up to pgvector's limit, or to `lists`). */
  readonly grid?: readonly number[]
  /** Seed for the sample of query rows (default 0.5), so runs compare. */
  readonly seed?: number
  readonly onProgress?: (done: number, total: number) => void
}

export interface IndexCheckRow {
  /** `ef_search` (HNSW) or `probes` (IVFFlat). */
  readonly setting: number
  /** Iterative scan, when a filter is given (null without one). */
  readonly iterative: boolean | null
  /** The mean of the queries' recall@k (a query counts its share of the rows exact search found for it). */
  readonly recall: number
  /** Standard error of `recall` (the spread of per-query recall over √queries). */
  readonly recallStdErr: number
  /**
   * The recall that queries it was not measured on reach on average, at 95% confidence, whatever
   * the shape of per-query recall (see recallBound): what the recommendation is judged by.
   */
  readonly recallBound: number
  /** Each query's recall@k, in the order of the queries (those exact search found rows for). */
  readonly perQuery: readonly number[]
  readonly p50Ms: number
  readonly p95Ms: number
  /** Queries that returned fewer than k rows although exact search found k. */
  readonly short: number
}

export interface IndexCheckResult {
  readonly index: string
  readonly column: string
  readonly method: 'hnsw' | 'ivfflat'
  /** The setting's name: `ef_search` or `probes`. */
  readonly parameter: 'ef_search' | 'probes'
  readonly k: number
  readonly queries: number
  readonly where: string | null
  readonly targetRecall: number
  /** Latency of exact search (sequential scan), for scale. */
  readonly exact: { readonly p50Ms: number; readonly p95Ms: number }
  readonly rows: readonly IndexCheckRow[]
  /**
   * The smallest setting whose recall the next queries will reach too, not only these (see
   * recommendSetting), with iterative scans when that is what reaches it; or null.
   */
  readonly recommendation: IndexCheckRow | null
  /** What to do when nothing reaches the target. */
  readonly advice: string | null
}

const HNSW_GRID = [10, 20, 40, 80, 120, 200, 400, 800, 1000]

/** jstat's beta quantile, loaded on first use (not at every CLI start: about 9 ms). */
let betaInverse: ((p: number, a: number, b: number) => number) | undefined
function betaQuantile(p: number, a: number, b: number): number {
  betaInverse ??= (createRequire(import.meta.url)('jstat') as typeof import('jstat').default).jStat.beta.inv
  return betaInverse(p, a, b)
}

/** The confidence of recallBound. */
export const RECALL_CONFIDENCE = 0.95

/**
 * A lower bound, at 95% confidence, on the mean recall of queries not measured — from the recall
 * of each measured query, without assuming its shape. Per-query recall is no bell curve: an HNSW
 * graph finds all k rows for most queries and none for a few it cannot reach (a small cluster far
 * from the rest), and at a low ef_search that few is a couple per hundred. A sample of 100 may
 * hold none of them — its mean high, its standard error tiny — while the next 100 hold five: the
 * mean less 2.33 standard errors (the rule before) still chose ef_search 40 where held-out queries
 * got 0.907 for a target of 0.95. The bound counts the misses as a rate: each query misses a share
 * 1 − recall of its rows (in [0, 1]), and the Clopper–Pearson upper limit of a rate with that many
 * misses in that many queries bounds the mean miss — a rate no sample can show to be lower than
 * about 3 / queries when it holds no miss at all, so recall 0.99 needs several hundred queries.
 */
export function recallBound(perQuery: readonly number[]): number {
  const n = perQuery.length
  if (n === 0) return 0
  const misses = perQuery.reduce((a, r) => a + (1 - r), 0)
  if (misses >= n) return 0
  return 1 - betaQuantile(RECALL_CONFIDENCE, misses + 1, n - misses)
}

/** The bound at `count` queries with a miss rate of `rate`. */
function boundAt(rate: number, count: number): number {
  return 1 - betaQuantile(RECALL_CONFIDENCE, rate * count + 1, count - rate * count)
}

/**
 * Queries to sample by default for a target below 1: enough that a sample in which every query
 * finds all its rows shows the target with about half of the target's miss rate to spare (at
 * least 100, at most 1,000): 100 for 0.9, 117 for 0.95, 597 for 0.99.
 */
export function defaultQueryCount(targetRecall: number): number {
  if (!(targetRecall > 0 && targetRecall < 1)) throw new RangeError(`target recall must be in (0, 1), got ${targetRecall}`)
  const n = Math.ceil(2 * Math.log(1 / (1 - RECALL_CONFIDENCE)) / -Math.log(targetRecall))
  return Math.min(1000, Math.max(100, n))
}

/** Above this many queries `queriesToShow` gives up. */
export const MAX_QUERIES_TO_SHOW = 100_000

/**
 * How many queries would show the target for a row: the smallest count at which the bound of a
 * sample whose miss rate lies halfway between the row's and the target's (a margin: the next sample
 * misses a little more, or a little less) reaches the target. 'miss rate' when the row's miss rate
 * is at or above the target's (no count shows it: the index must improve), 'too many' above
 * MAX_QUERIES_TO_SHOW.
 */
export function queriesToShow(row: Pick<IndexCheckRow, 'perQuery'>, targetRecall: number): number | 'miss rate' | 'too many' {
  const n = row.perQuery.length
  const measured = n === 0 ? 0 : row.perQuery.reduce((a, r) => a + (1 - r), 0) / n
  if (!(targetRecall < 1) || measured >= 1 - targetRecall) return 'miss rate'
  const rate = (measured + (1 - targetRecall)) / 2
  // The bound rises with the count at a fixed rate: double to a count that reaches, then halve the gap.
  let high = 1
  while (boundAt(rate, high) < targetRecall) {
    high *= 2
    if (high > 2 * MAX_QUERIES_TO_SHOW) return 'too many'
  }
  let low = Math.floor(high / 2)
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2)
    if (boundAt(rate, mid) >= targetRecall) high = mid
    else low = mid
  }
  return high > MAX_QUERIES_TO_SHOW ? 'too many' : high
}

/**
 * A grid row's recall figures from its per-query recall: `recall` is their mean, `recallBound`
 * is rounded down (the recommendation compares it with the target), 0 without a query to judge.
 */
export function summariseRecall(perQuery: readonly number[]): Pick<IndexCheckRow, 'recall' | 'recallStdErr' | 'recallBound' | 'perQuery'> {
  const n = perQuery.length
  const mean = n === 0 ? 1 : perQuery.reduce((a, b) => a + b, 0) / n
  const sd = n < 2 ? 0 : Math.sqrt(perQuery.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1))
  return { recall: round(mean, 4), recallStdErr: round(sd / Math.sqrt(Math.max(1, n)), 4), recallBound: Math.floor(recallBound(perQuery) * 1e4) / 1e4, perQuery }
}

/**
 * A sampled row's answers without the row itself: `rows` were read with one more than k, each
 * with its identity (table oid and ctid); the row's own is dropped, or the last when it is absent.
 */
export function withoutOwn<R extends { readonly t: string }>(rows: readonly R[], own: string | null, k: number): R[] {
  if (own === null) return rows.slice(0, k)
  return rows.filter((r) => r.t !== own).slice(0, k)
}

/**
 * The cheapest row whose recall reaches the target on queries it was not measured on: the lowest
 * setting (then without iterative scans, which cost more when not needed) whose recallBound
 * reaches it (bench/index-advice.ts judges the rule on held-out queries).
 */
export function recommendSetting(rows: readonly IndexCheckRow[], targetRecall: number): IndexCheckRow | null {
  const reaching = rows.filter((r) => r.recallBound >= targetRecall)
    .sort((a, b) => a.setting - b.setting || Number(a.iterative) - Number(b.iterative))
  return reaching[0] ?? null
}

function defaultGrid(index: VectorIndexNode, lists: number): number[] {
  if (index.method === 'hnsw') return HNSW_GRID
  const grid: number[] = []
  for (let p = 1; p < lists; p *= 2) grid.push(p)
  grid.push(lists)
  return grid
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!
}

function round(value: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

/** The column and index a `table.column` (or `schema.table.column`) names, or an error naming what exists. */
export function findIndex(state: DesiredState, column: string, name?: string): { column: EmbeddingColumnNode; index: VectorIndexNode } {
  const node = findColumn(state.embeddingColumns, column)
  const indexes = state.indexes.filter((i) => columnKey(i) === columnKey(node))
  const index = name === undefined ? indexes[0] : indexes.find((i) => i.name === name)
  if (!index) {
    throw new PgmlKitError('INDEX_UNKNOWN', name === undefined ? `the config declares no vector index on ${column}` : `the config declares no index "${name}" on ${column}`, {
      hint: indexes.length > 0 ? `its indexes: ${indexes.map((i) => i.name).join(', ')}` : `add one: tables.${node.table}.embeddings.${node.column}.indexes`,
    })
  }
  return { column: node, index }
}

/** Whether an EXPLAIN (FORMAT JSON) plan reads the index named `name`. */
function usesIndex(plan: unknown, name: string): boolean {
  const visit = (node: unknown): boolean => {
    if (node === null || typeof node !== 'object') return false
    if (Array.isArray(node)) return node.some(visit)
    const n = node as Record<string, unknown>
    if (n['Index Name'] === name) return true
    return visit(n.Plan) || visit(n.Plans)
  }
  return visit(plan)
}

/**
 * What to do when no row's bound reaches the target: more queries when the index's recall would
 * do (or queries from a file, when the column holds too few rows to sample them), else a rebuild.
 */
function adviceFor(rows: readonly IndexCheckRow[], method: 'hnsw' | 'ivfflat', targetRecall: number, sampled: { readonly asked: number; readonly got: number } | null): string {
  const parameter = method === 'hnsw' ? 'ef_search' : 'probes'
  if (rows.length > 0 && rows.every((r) => r.perQuery.length === 0)) return 'exact search found no row for any query: the filter leaves no rows to find'
  const best = [...rows].sort((a, b) => b.recall - a.recall || a.setting - b.setting)[0]
  const needed = best ? queriesToShow(best, targetRecall) : 'miss rate'
  if (best && typeof needed === 'number') {
    const judged = best.perQuery.length
    const how = sampled && sampled.got < sampled.asked
      ? `the column holds only ${sampled.got} vectors to sample: give ${needed} queries or more in --queries-file`
      : `run again with ${needed} queries or more (--queries ${needed}, or a larger --queries-file)`
    return `${parameter} ${best.setting} measured recall ${best.recall} on ${judged} queries, but ${judged} queries show only ${best.recallBound} as the mean recall of queries like them (95% confidence): ${how}`
  }
  const short = rows.find((r) => r.iterative === true && r.short > 0)
  if (short) {
    return `with iterative scans ${short.short} of ${short.perQuery.length} queries still came back with fewer than k rows: the filter keeps too few rows for the index scan to find them within hnsw.max_scan_tuples / ivfflat.max_probes — index the filter's column so searches scan the rows it keeps exactly (kit.search does so with filterStrategy 'auto'), or raise those settings`
  }
  if (best && needed === 'too many') return `${parameter} ${best.setting} measured recall ${best.recall}, but showing ${targetRecall} on queries not measured would take more than ${MAX_QUERIES_TO_SHOW.toLocaleString('en')} queries: choose a lower target`
  return method === 'hnsw'
    ? `no ef_search reaches recall ${targetRecall} (best ${best?.recall ?? 0}): rebuild with a larger m or ef_construction`
    : `no probes value reaches recall ${targetRecall} (best ${best?.recall ?? 0}): rebuild with lists sized to the data (lists: 'auto')`
}

function vectorText(vector: readonly number[]): string {
  for (const x of vector) if (!Number.isFinite(x)) throw new PgmlKitError('QUERY_VECTORS', 'query vectors must hold finite numbers', { where: '--queries-file' })
  return `[${vector.join(',')}]`
}

export async function checkIndex(client: pg.ClientBase, state: DesiredState, options: IndexCheckOptions): Promise<IndexCheckResult> {
  const { column, index } = findIndex(state, options.column, options.index)
  const k = options.k ?? 10
  const targetRecall = options.targetRecall ?? 0.95
  if (!Number.isInteger(k) || k < 1 || k > 1000) throw new RangeError(`k must be an integer from 1 to 1000, got ${k}`)
  if (!(targetRecall > 0 && targetRecall < 1)) throw new RangeError(`target recall must be in (0, 1), got ${targetRecall}: no sample of queries shows recall 1 on queries it has not measured`)
  const table = quoteQualified(column.schema, column.table)
  const col = quoteIdent(column.column)
  const set = (name: string, value: string) => client.query('SELECT pg_catalog.set_config($1, $2, true)', [name, value])

  // READ COMMITTED: a snapshot per statement, so a long check holds back neither vacuum on a
  // primary nor recovery on a standby. (A sampled row updated meanwhile moves: it is then not
  // recognised among its own answers, and counts as found, as before rows were left out.)
  await client.query('BEGIN READ ONLY')
  try {
    // pg_catalog first on the path, JIT off (see PIN_CHECK_SESSION).
    await client.query(PIN_CHECK_SESSION)
    // pgvector's operator and type qualified with its schema: found whatever this session's search_path.
    const vectorSchema = (await client.query<{ schema: string }>(VECTOR_SCHEMA)).rows[0]?.schema ?? null
    const type = renderVectorType(column, vectorSchema ?? undefined)
    const distance = `${col} ${renderDistanceOperator(index.distance, vectorSchema)} $1::${type}`
    const filter = options.where ? ` AND (${options.where})` : ''
    // A sampled query row is left out of its own answers: one more row is read, and the row itself
    // (by table oid and ctid) dropped, or the last one when it is absent.
    const search = (extra: number) => renderCheckSearch(table, col, distance, filter, k + extra)
    const live = await client.query<{ valid: boolean; options: string[] | null }>(
      `SELECT i.indisvalid AS valid, c.reloptions AS options FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
       WHERE c.oid = pg_catalog.to_regclass(${quoteLiteral(quoteQualified(index.schema, index.name))})::oid`)
    const found = live.rows[0]
    if (!found) throw new PgmlKitError('INDEX_MISSING', `index ${index.schema}.${index.name} does not exist`, { hint: 'run pgml-kit migrate (or pgml-kit index repair)' })
    if (!found.valid) throw new PgmlKitError('INDEX_INVALID', `index ${index.schema}.${index.name} is INVALID (a build failed or was cancelled)`, { hint: `pgml-kit index repair ${column.table}.${column.column}` })
    const lists = Number((found.options ?? []).find((o) => o.startsWith('lists='))?.split('=')[1] ?? index.params.lists ?? 100)

    // Each query: its vector, and the row it was sampled from (null for a given vector).
    let queries: { readonly v: string; readonly own: string | null }[]
    let sampled: { readonly asked: number; readonly got: number } | null = null
    if (options.queryVectors) {
      queries = options.queryVectors.map((v, i) => {
        if (v.length !== column.model.dimensions) {
          throw new PgmlKitError('QUERY_VECTORS', `query vector ${i + 1} has ${v.length} dimensions, and ${columnLabel(column)} holds ${column.model.dimensions}`, {
            where: '--queries-file', hint: `give vectors of the column's model (${column.model.id}), e.g. from kit.embed`,
          })
        }
        return { v: vectorText(v), own: null }
      })
    } else {
      const n = options.queries ?? defaultQueryCount(targetRecall)
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`queries must be a positive integer, got ${n}`)
      await client.query('SELECT pg_catalog.setseed($1)', [options.seed ?? 0.5])
      queries = (await client.query<{ v: string; o: string; t: string }>(renderSampleQueries(table, col, n))).rows.map((r) => ({ v: r.v, own: `${r.o}:${r.t}` }))
      sampled = { asked: n, got: queries.length }
    }
    if (queries.length === 0) throw new PgmlKitError('NO_DATA', `${columnLabel(column)} holds no vectors to sample queries from`, { hint: 'backfill the column first, or pass --queries-file' })

    const asked = options.grid ?? defaultGrid(index, lists)
    const grid = asked.filter((g) => Number.isInteger(g) && (index.method === 'hnsw' ? g >= 1 && g <= 1000 : g >= 1 && g <= lists))
    const outside = asked.filter((g) => !grid.includes(g))
    if (outside.length > 0) {
      throw new RangeError(`${index.method === 'hnsw' ? 'ef_search' : 'probes'} ${outside.join(', ')} outside what ${index.schema}.${index.name} takes (${index.method === 'hnsw' ? '1 to 1000' : `1 to its ${lists} lists`})`)
    }
    const modes: (boolean | null)[] = options.where ? [false, true] : [null]
    const total = queries.length * (1 + grid.length * modes.length)
    let done = 0
    const time = async (q: { readonly v: string; readonly own: string | null }) => {
      const start = performance.now()
      const { rows } = await client.query<{ d: number; o: string; t: string }>(search(q.own === null ? 0 : 1), [q.v])
      const ms = performance.now() - start
      done += 1
      options.onProgress?.(done, total)
      const others = withoutOwn(rows.map((r) => ({ d: r.d, t: `${r.o}:${r.t}` })), q.own, k)
      return { ms, distances: others.map((r) => Number(r.d)) }
    }

    // Exact answers: the planner may not use any index.
    await set('enable_indexscan', 'off')
    await set('enable_bitmapscan', 'off')
    await set('enable_indexonlyscan', 'off')
    const exact: { ms: number; distances: number[] }[] = []
    for (const q of queries) exact.push(await time(q))
    await set('enable_indexscan', 'on')
    // The index's answers: the planner may not fall back to a scan of the table.
    await set('enable_seqscan', 'off')

    const parameter = index.method === 'hnsw' ? 'hnsw.ef_search' : 'ivfflat.probes'
    const rows: IndexCheckRow[] = []
    for (const iterative of modes) {
      if (iterative !== null) {
        await set('hnsw.iterative_scan', iterative ? 'strict_order' : 'off')
        await set('ivfflat.iterative_scan', iterative ? 'relaxed_order' : 'off')
      }
      // The plan must read the vector index: with a filter, the planner may prefer another index
      // (a B-tree on the filter's column) and sort — an exact scan, whose recall is not the index's.
      const plan = (await client.query<{ 'QUERY PLAN': unknown }>(renderCheckPlan(search(0)), [queries[0]!.v])).rows[0]?.['QUERY PLAN']
      if (!usesIndex(plan, index.name)) {
        throw new PgmlKitError('INDEX_NOT_USED', `${options.where ? `with --where ${options.where}, ` : ''}the planner does not read ${index.schema}.${index.name} for this search${iterative ? ' (iterative scans on)' : ''}: recall measured so would not be the index's`, {
          hint: options.where ? 'a filter this selective is searched best without the vector index (kit.search does so with filterStrategy \'auto\'); check the index without --where, or with a filter that keeps more rows' : 'the index may not suit the distance the config declares: run pgml-kit index repair',
        })
      }
      for (const setting of grid) {
        // HNSW returns at most ef_search rows, and a sampled row finds itself among them: one more
        // candidate leaves it as many for the others as a query not in the table gets.
        await set(parameter, String(sampled && index.method === 'hnsw' ? Math.min(1000, setting + 1) : setting))
        await time(queries[0]!) // warm the setting's path once; not counted
        done -= 1
        let short = 0
        const latencies: number[] = []
        const perQuery: number[] = []
        for (const [i, q] of queries.entries()) {
          const result = await time(q)
          latencies.push(result.ms)
          const truth = exact[i]!.distances
          if (truth.length === 0) continue
          const kth = truth[truth.length - 1]!
          const tolerance = 1e-6 * Math.max(1, Math.abs(kth))
          const hits = Math.min(truth.length, result.distances.filter((d) => d <= kth + tolerance).length)
          perQuery.push(hits / truth.length)
          if (result.distances.length < truth.length) short += 1
        }
        rows.push({ setting, iterative, ...summariseRecall(perQuery), p50Ms: round(percentile(latencies, 0.5), 3), p95Ms: round(percentile(latencies, 0.95), 3), short })
      }
    }
    await client.query('ROLLBACK')

    const recommendation = recommendSetting(rows, targetRecall)
    const best = [...rows].sort((a, b) => b.recall - a.recall)[0]
    const advice = recommendation ? null : adviceFor(rows, index.method, targetRecall, sampled)
    return {
      index: `${index.schema}.${index.name}`, column: columnLabel(column), method: index.method, parameter: index.method === 'hnsw' ? 'ef_search' : 'probes',
      k, queries: queries.length, where: options.where ?? null, targetRecall,
      exact: { p50Ms: round(percentile(exact.map((e) => e.ms), 0.5), 3), p95Ms: round(percentile(exact.map((e) => e.ms), 0.95), 3) },
      rows, recommendation, advice,
    }
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

/**
 * Keeps a check's result in the catalog (`pgml_kit.embedding_columns.index_checks`, runtime
 * version 4) for `status`. Returns false (and changes nothing) when the runtime schema predates it,
 * or this role may not write there.
 */
export async function recordCheck(client: pg.ClientBase, state: DesiredState, result: IndexCheckResult): Promise<boolean> {
  // The result names its index and column as text; the state's index with both is the one checked.
  const index = state.indexes.find((i) => `${i.schema}.${i.name}` === result.index && columnLabel(i) === result.column)
  const column = index && state.embeddingColumns.find((c) => columnKey(c) === columnKey(index))
  if (!index || !column) return false
  await client.query('BEGIN')
  try {
    // pg_catalog alone on the path: nothing of another schema stands in for a built-in here.
    await client.query(PIN_CATALOG_ONLY)
    const { rows } = await client.query<{ ok: boolean }>(renderCatalogColumnUsable('UPDATE'))
    if (!rows[0]?.ok) {
      await client.query('ROLLBACK')
      return false
    }
    const entry = {
      checked_at: new Date().toISOString(), k: result.k, queries: result.queries, filter: result.where, target_recall: result.targetRecall, parameter: result.parameter,
      recommended: result.recommendation?.setting ?? null, recommended_iterative: result.recommendation?.iterative ?? null,
      recall: result.recommendation?.recall ?? Math.max(...result.rows.map((r) => r.recall)), p50_ms: result.recommendation?.p50Ms ?? null, results: result.rows.map(({ perQuery: _, ...row }) => row),
    }
    const updated = await client.query(RECORD_CHECK, [column.schema, column.table, column.column, index.name, JSON.stringify(entry)])
    await client.query('COMMIT')
    return (updated.rowCount ?? 0) > 0
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

export interface LastCheck {
  readonly checkedAt: string
  readonly k: number
  readonly parameter: string
  readonly recommended: number | null
  readonly recall: number | null
  readonly targetRecall: number
  readonly filter: string | null
}

/** The last check of each index (`schema.name` → result), or an empty map before runtime version 4. */
export async function readLastChecks(client: pg.ClientBase): Promise<Map<string, LastCheck>> {
  const out = new Map<string, LastCheck>()
  const exists = await client.query<{ ok: boolean }>(renderCatalogColumnUsable('SELECT'))
  if (!exists.rows[0]?.ok) return out
  const { rows } = await client.query<{ schema: string; name: string; c: Record<string, unknown> }>(
    'SELECT c.table_schema AS schema, e.key AS name, e.value AS c FROM pgml_kit.embedding_columns c, pg_catalog.jsonb_each(c.index_checks) AS e')
  for (const r of rows) {
    out.set(`${r.schema}.${r.name}`, {
      checkedAt: String(r.c.checked_at), k: Number(r.c.k), parameter: String(r.c.parameter), recommended: (r.c.recommended as number | null) ?? null,
      recall: (r.c.recall as number | null) ?? null, targetRecall: Number(r.c.target_recall), filter: (r.c.filter as string | null) ?? null,
    })
  }
  return out
}

/**
 * `checkIndex` and `recordCheck` on connections from `connector`, measured again from the start on
 * a new connection when the one in use is lost (once the database was reached: one that never
 * answered is an error at once) (a restarted server, a terminated backend, the
 * embedded database's owner gone): a check only reads, so nothing is left half done. Up to
 * `attempts` connections, after a pause that grows to 5 s; `onReconnect` is told each time.
 */
export async function checkIndexReconnecting(connector: Connector, state: DesiredState, options: IndexCheckOptions & {
  readonly onReconnect?: (error: Error) => void
  readonly attempts?: number
}): Promise<{ result: IndexCheckResult; recorded: boolean }> {
  const attempts = options.attempts ?? 6
  let reached = false
  for (let attempt = 1; ; attempt++) {
    let client: pg.Client | undefined
    try {
      client = await connector.connect('pgml-kit index check')
      reached = true
      const result = await checkIndex(client, state, options)
      return { result, recorded: await recordCheck(client, state, result) }
    } catch (error) {
      const lost = isConnectionLost(error) || isConnectionLost((error as { cause?: unknown }).cause)
      // A database never reached (nothing listening, a wrong port) is said at once, not retried.
      if (!lost || !reached || attempt >= attempts) throw error
      options.onReconnect?.(error as Error)
      await sleep(backoffMs(attempt - 1, 250, 5_000))
    } finally {
      await client?.end().catch(() => undefined)
    }
  }
}
