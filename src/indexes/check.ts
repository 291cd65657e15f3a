import { performance } from 'node:perf_hooks'
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
  /** Query vectors sampled from the column (default 100), unless `queryVectors` are given. */
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
  readonly recall: number
  /** Standard error of `recall` (the spread of per-query recall over √queries): how much another sample of queries may differ. */
  readonly recallStdErr: number
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

/**
 * How far below the measured mean the recall of another sample of as many queries can fall, in
 * standard errors of the measured mean: the two means differ by a standard deviation of √2 SE
 * (two independent samples), and 1.645 of those is the one-sided 95% bound.
 */
export const PREDICTIVE_MARGIN_SE = 1.645 * Math.SQRT2

/**
 * The cheapest row whose recall reaches the target on queries it was not measured on: the lowest
 * setting (then without iterative scans, which cost more when not needed) whose measured recall
 * less PREDICTIVE_MARGIN_SE standard errors reaches it, so that the mean recall of the next
 * queries reaches the target 19 times in 20. One standard error — the rule before — did not:
 * per-query recall has a long tail (a few queries far below the rest), and held-out queries fell
 * 0.04 short (bench/index-advice.ts).
 */
export function recommendSetting(rows: readonly IndexCheckRow[], targetRecall: number): IndexCheckRow | null {
  const reaching = rows.filter((r) => r.recall - PREDICTIVE_MARGIN_SE * r.recallStdErr >= targetRecall)
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

function vectorText(vector: readonly number[]): string {
  for (const x of vector) if (!Number.isFinite(x)) throw new RangeError('query vectors must hold finite numbers')
  return `[${vector.join(',')}]`
}

export async function checkIndex(client: pg.ClientBase, state: DesiredState, options: IndexCheckOptions): Promise<IndexCheckResult> {
  const { column, index } = findIndex(state, options.column, options.index)
  const k = options.k ?? 10
  const targetRecall = options.targetRecall ?? 0.95
  if (!Number.isInteger(k) || k < 1 || k > 1000) throw new RangeError(`k must be an integer from 1 to 1000, got ${k}`)
  if (!(targetRecall > 0 && targetRecall <= 1)) throw new RangeError(`target recall must be in (0, 1], got ${targetRecall}`)
  const table = quoteQualified(column.schema, column.table)
  const col = quoteIdent(column.column)
  // pgvector's operator and type qualified with its schema: found whatever this session's search_path.
  const vectorSchema = (await client.query<{ schema: string }>(VECTOR_SCHEMA)).rows[0]?.schema ?? null
  const type = renderVectorType(column, vectorSchema ?? undefined)
  const distance = `${col} ${renderDistanceOperator(index.distance, vectorSchema)} $1::${type}`
  const filter = options.where ? ` AND (${options.where})` : ''
  const search = `SELECT ${distance} AS d FROM ${table} WHERE ${col} IS NOT NULL${filter} ORDER BY ${distance} LIMIT ${k}`
  const set = (name: string, value: string) => client.query('SELECT pg_catalog.set_config($1, $2, true)', [name, value])

  await client.query('BEGIN READ ONLY')
  try {
    const live = await client.query<{ valid: boolean; options: string[] | null }>(
      `SELECT i.indisvalid AS valid, c.reloptions AS options FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
       WHERE c.oid = pg_catalog.to_regclass(${quoteLiteral(quoteQualified(index.schema, index.name))})::oid`)
    const found = live.rows[0]
    if (!found) throw new PgmlKitError('INDEX_MISSING', `index ${index.schema}.${index.name} does not exist`, { hint: 'run pgml-kit migrate (or pgml-kit index repair)' })
    if (!found.valid) throw new PgmlKitError('INDEX_INVALID', `index ${index.schema}.${index.name} is INVALID (a build failed or was cancelled)`, { hint: `pgml-kit index repair ${column.table}.${column.column}` })
    const lists = Number((found.options ?? []).find((o) => o.startsWith('lists='))?.split('=')[1] ?? index.params.lists ?? 100)

    let queries: string[]
    if (options.queryVectors) {
      queries = options.queryVectors.map((v) => {
        if (v.length !== column.model.dimensions) throw new RangeError(`query vectors must have ${column.model.dimensions} dimensions (${columnLabel(column)}), one has ${v.length}`)
        return vectorText(v)
      })
    } else {
      const n = options.queries ?? 100
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`queries must be a positive integer, got ${n}`)
      await client.query('SELECT pg_catalog.setseed($1)', [options.seed ?? 0.5])
      queries = (await client.query<{ v: string }>(`SELECT ${col}::text AS v FROM ${table} WHERE ${col} IS NOT NULL ORDER BY pg_catalog.random() LIMIT ${n}`)).rows.map((r) => r.v)
    }
    if (queries.length === 0) throw new PgmlKitError('NO_DATA', `${columnLabel(column)} holds no vectors to sample queries from`, { hint: 'backfill the column first, or pass --queries-file' })

    const grid = (options.grid ?? defaultGrid(index, lists)).filter((g) => index.method === 'hnsw' ? g >= 1 && g <= 1000 : g >= 1 && g <= lists)
    const modes: (boolean | null)[] = options.where ? [false, true] : [null]
    const total = queries.length * (1 + grid.length * modes.length)
    let done = 0
    const time = async (q: string) => {
      const start = performance.now()
      const { rows } = await client.query<{ d: number }>(search, [q])
      const ms = performance.now() - start
      done += 1
      options.onProgress?.(done, total)
      return { ms, distances: rows.map((r) => Number(r.d)) }
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
      for (const setting of grid) {
        await set(parameter, String(setting))
        await time(queries[0]!) // warm the setting's path once; not counted
        done -= 1
        let found = 0
        let wanted = 0
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
          wanted += truth.length
          found += hits
          perQuery.push(hits / truth.length)
          if (result.distances.length < truth.length) short += 1
        }
        const mean = perQuery.length === 0 ? 1 : perQuery.reduce((a, b) => a + b, 0) / perQuery.length
        const sd = perQuery.length < 2 ? 0 : Math.sqrt(perQuery.reduce((a, b) => a + (b - mean) ** 2, 0) / (perQuery.length - 1))
        rows.push({ setting, iterative, recall: wanted === 0 ? 1 : round(found / wanted, 4), recallStdErr: round(sd / Math.sqrt(Math.max(1, perQuery.length)), 4), p50Ms: round(percentile(latencies, 0.5), 3), p95Ms: round(percentile(latencies, 0.95), 3), short })
      }
    }
    await client.query('ROLLBACK')

    const recommendation = recommendSetting(rows, targetRecall)
    const best = [...rows].sort((a, b) => b.recall - a.recall)[0]
    const advice = recommendation ? null
      : index.method === 'hnsw'
        ? `no ef_search reaches recall ${targetRecall} (best ${best?.recall ?? 0}): rebuild with a larger m or ef_construction`
        : `no probes value reaches recall ${targetRecall} (best ${best?.recall ?? 0}): rebuild with lists sized to the data (lists: 'auto')`
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
  const { rows } = await client.query<{ ok: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
      WHERE attrelid = pg_catalog.to_regclass('pgml_kit.embedding_columns')::oid AND attname = 'index_checks' AND NOT attisdropped)
    AND pg_catalog.has_column_privilege('pgml_kit.embedding_columns', 'index_checks', 'UPDATE') AS ok`)
  if (!rows[0]?.ok) return false
  const name = index.name
  const entry = {
    checked_at: new Date().toISOString(), k: result.k, queries: result.queries, filter: result.where, target_recall: result.targetRecall, parameter: result.parameter,
    recommended: result.recommendation?.setting ?? null, recommended_iterative: result.recommendation?.iterative ?? null,
    recall: result.recommendation?.recall ?? Math.max(...result.rows.map((r) => r.recall)), p50_ms: result.recommendation?.p50Ms ?? null, results: result.rows,
  }
  const updated = await client.query(`UPDATE pgml_kit.embedding_columns SET index_checks = index_checks || pg_catalog.jsonb_build_object($4::text, $5::jsonb)
    WHERE table_schema = $1 AND table_name = $2 AND column_name = $3`, [column.schema, column.table, column.column, name, JSON.stringify(entry)])
  return (updated.rowCount ?? 0) > 0
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
  const exists = await client.query<{ ok: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
      WHERE attrelid = pg_catalog.to_regclass('pgml_kit.embedding_columns')::oid AND attname = 'index_checks' AND NOT attisdropped)
    AND pg_catalog.has_column_privilege('pgml_kit.embedding_columns', 'index_checks', 'SELECT') AS ok`)
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
