import {
  AliasNode, CompiledQuery, IdentifierNode, ParensNode, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, QueryNode, RawNode, SelectionNode, SelectQueryNode, ValueNode, WhereNode,
  type DatabaseConnection, type Dialect, type Driver, type Kysely, type QueryResult, type RootOperationNode, type TransactionSettings,
} from 'kysely'
import { CatalogProbe, DistanceOperator, Placeholder, QueryVector, effectiveSettings, exactIsCheaper, settingsToApply, type SearchCapabilities } from './query-vector.js'
import { quoteLiteral } from '../sql/quote.js'
import { renderCatalogProbe } from '../sql/render-catalog.js'
import { EXACT_DISTANCE_COLUMN, TABLE_ROWS, renderExactSearch, renderExplain, renderSortedByDistance, settingsGate } from '../sql/render-search.js'
import { renderVectorType } from '../sql/render-source.js'
import { renderDistanceOperator } from '../sql/render-index.js'
import { PgmlKitError } from '../errors.js'
import { toVectorBinary, toVectorLiteral } from '../embed/embedder.js'
import { createHash } from 'node:crypto'
import type { CatalogCache } from './catalog-cache.js'
import type { EmbeddingColumnNode } from '../model/ir.js'

type Run = (sql: string, parameters: readonly unknown[]) => Promise<QueryResult<Record<string, unknown>>>

/** What the kit's driver asks of the kit: query vectors, the catalog, and (once) what the database can do. */
export interface KitRuntime {
  /**
   * Turns a QueryVector into the vector literal, embedding a text with `column` (the column as the
   * catalog has it), on the connection the query will run on. `own`: the caller holds that
   * connection (a transaction, a pinned session) and must not wait for a read another caller
   * started on another connection of the pool.
   */
  resolve(marker: QueryVector, column: EmbeddingColumnNode, run: Run, own: boolean): Promise<string>
  capabilities(run: Run, own: boolean): Promise<SearchCapabilities>
  /** The kit's copy of the catalog: the query vector's type and the probe are compiled from it. */
  readonly catalog: CatalogCache
}

/** The column a search's probe is selected as (compared by the driver, then removed from the rows). */
export const PROBE_COLUMN = 'pgml_kit_catalog'

/**
 * SQLSTATEs a search can fail with when its column changed under a stale copy of the catalog: an
 * undefined column (renamed away), different vector dimensions or types (22000, 42883).
 */
const STALE_CATALOG = new Set(['42703', '22000', '42883'])

/**
 * SQLSTATEs of a query vector's binary form refused by a driver that does not send a Buffer in
 * binary: no cast from bytea (42846), datatype mismatch (42804), not a vector's text (22P02),
 * not its binary form (22P03), a malformed message (08P01).
 */
const BINARY_REFUSED = new Set(['42846', '42804', '22P02', '22P03', '08P01'])

/**
 * A Kysely dialect that runs on connections borrowed from the application's own `Kysely<DB>`
 * (same pool, same driver). A query that carries a QueryVector gets its vector resolved first; if
 * it needs index settings (ef_search, probes, iterative scans) they are set with
 * `set_config(name, value, true)` — SET LOCAL — in the search's own statement (see `withSettings`),
 * so a search is one round trip with or without settings, and its settings never outlive it on a
 * pooled connection.
 */
export class KitDialect implements Dialect {
  readonly #db: Kysely<unknown>
  readonly #runtime: KitRuntime
  readonly #shared = new KitShared()

  constructor(db: Kysely<unknown>, runtime: KitRuntime) {
    this.#db = db
    this.#runtime = runtime
  }

  createDriver(): Driver {
    return new KitDriver(this.#db, this.#runtime, this.#shared)
  }

  /** Runs a compiled search as the kit's driver does, without a Kysely executor around it (prepared searches). */
  async execute<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const connection = new KitConnection(this.#db, this.#runtime, this.#shared)
    try {
      return await connection.executeQuery<R>(compiled)
    } finally {
      connection.unpin()
    }
  }

  createQueryCompiler() {
    return new KitQueryCompiler(this.#runtime.catalog)
  }

  createAdapter() {
    return new PostgresAdapter()
  }

  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db)
  }
}

/** Which version of the kit's catalog copy each compiled query was compiled from. */
const compiledFrom = new WeakMap<CompiledQuery, number>()

/**
 * PostgreSQL's compiler, except for the kit's markers:
 * - a query vector used several times in one query (the distance selected, the similarity, the
 *   ORDER BY) is sent once: every use refers to the same `$n`, cast to the type the catalog says
 *   the column has (a vector of 384 dimensions is several kilobytes of text the server would
 *   otherwise parse again for each use);
 * - a catalog probe becomes an uncorrelated subquery reading the column's catalog fingerprint
 *   (evaluated once per statement), or NULL when the catalog cannot be read;
 * - pgvector's operator and type are qualified with the schema it is installed in, whatever the
 *   role's search_path.
 */
class KitQueryCompiler extends PostgresQueryCompiler {
  readonly #catalog: CatalogCache
  #vectors = new Map<QueryVector, number>()

  constructor(catalog: CatalogCache) {
    super()
    this.#catalog = catalog
  }

  override compileQuery(node: RootOperationNode, queryId: Parameters<PostgresQueryCompiler['compileQuery']>[1]): CompiledQuery {
    this.#vectors = new Map()
    const version = this.#catalog.version
    const compiled = super.compileQuery(node, queryId)
    compiledFrom.set(compiled, version)
    return compiled
  }

  protected override appendValue(value: unknown): void {
    if (value instanceof CatalogProbe) {
      return this.append(this.#catalog.readable ? renderCatalogProbe(value.column) : 'NULL::text')
    }
    if (value instanceof DistanceOperator) return this.append(renderDistanceOperator(value.distance, this.#catalog.vectorSchema))
    if (!(value instanceof QueryVector)) return super.appendValue(value)
    const type = renderVectorType(this.#catalog.column(value.column).node, this.#catalog.vectorSchema ?? undefined)
    const index = this.#vectors.get(value)
    if (index !== undefined) return this.append(`$${index}::${type}`)
    super.appendValue(value)
    this.append(`::${type}`)
    this.#vectors.set(value, this.numParameters)
  }
}

/** A small least-recently-used map from SQL text to what was derived from it. */
class TextCache<V> {
  readonly #map = new Map<string, V>()
  readonly #max: number

  constructor(max: number) {
    this.#max = max
  }

  get(key: string): V | undefined {
    const value = this.#map.get(key)
    if (value !== undefined) {
      this.#map.delete(key)
      this.#map.set(key, value)
    }
    return value
  }

  set(key: string, value: V): void {
    this.#map.delete(key)
    this.#map.set(key, value)
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as string)
  }
}

/** How long the planner's estimate for a filtered search (and a table's row count) is used. */
const ESTIMATE_TTL_MS = 60_000

/**
 * What a kit's connections share: the statements derived from a search's SQL (compiled again from
 * a newer catalog copy, with its settings gate, its exact form), each compiled once per query
 * shape — the search's SQL text — instead of once per call; the planner's estimates for filtered
 * searches; and what the driver learnt of multi-statement queries.
 */
class KitShared {
  /** Whether the driver runs `BEGIN; SELECT ...` as one simple query (node-postgres does); learnt on first use. */
  readonly multiStatement = { ok: true }
  /**
   * Whether the driver sends a Buffer parameter in binary, so a query vector can go in pgvector's
   * binary form (node-postgres does): `unknown` until a search outside a transaction tried it.
   */
  binaryVectors: 'unknown' | 'yes' | 'no' = 'unknown'
  readonly recompiled = new TextCache<{ readonly version: number; readonly sql: string }>(500)
  readonly gated = new TextCache<string>(500)
  readonly exact = new TextCache<ExactForm | null>(500)
  readonly estimates = new TextCache<FilterDecision & { readonly at: number }>(5000)
  readonly tableRows = new Map<string, { readonly at: number; readonly n: number; readonly efSearch: number | null }>()
}

/** What the planner's estimate decided for a filtered search: exact or not, and the share of rows the filter keeps (null: unknown). */
interface FilterDecision {
  readonly exact: boolean
  readonly selectivity: number | null
  /** The session's `hnsw.ef_search` (a server, database or role default), null when unknown. */
  readonly sessionEfSearch: number | null
}

/** A filtered search as an exact scan: its SQL, which takes the search's own parameters. */
interface ExactForm {
  readonly sql: string
}

/** The search's SQL as the catalog copy says now (compiled again, once per shape, if the copy changed since it was compiled). */
function currentSql(compiled: CompiledQuery, catalog: CatalogCache, shared: KitShared): string {
  if (compiledFrom.get(compiled) === catalog.version) return compiled.sql
  const hit = shared.recompiled.get(compiled.sql)
  if (hit?.version === catalog.version) return hit.sql
  const sql = new KitQueryCompiler(catalog).compileQuery(compiled.query, compiled.queryId).sql
  shared.recompiled.set(compiled.sql, { version: catalog.version, sql })
  return sql
}

/**
 * A compiled search with other parameter values (a prepared search's query vector and
 * placeholders): the same SQL and query, known to be compiled from the same catalog copy.
 */
export function withParameters(compiled: CompiledQuery, parameters: readonly unknown[]): CompiledQuery {
  const bound: CompiledQuery = { ...compiled, parameters }
  const version = compiledFrom.get(compiled)
  if (version !== undefined) compiledFrom.set(bound, version)
  return bound
}

/**
 * The search with its settings applied by the statement itself: settingsGate's condition ANDed
 * into the outermost SELECT's WHERE. PostgreSQL evaluates it before any scan starts (an index scan
 * reads ef_search, probes and the iterative-scan settings when it starts), and the settings are
 * local to the statement's transaction — outside an explicit one, the statement itself. One round
 * trip, a plain parameterised statement with the search's own parameters (a driver may prepare
 * it), nothing left behind on the connection. Null when the query is not a SELECT.
 */
function withSettings(query: RootOperationNode, queryId: CompiledQuery['queryId'], settings: readonly (readonly [string, string])[], catalog: CatalogCache): string | null {
  if (!SelectQueryNode.is(query)) return null
  // The search's own condition in parentheses: ANDed to a raw `a OR b`, the gate would otherwise bind to b alone.
  const own = query.where ? { ...query, where: WhereNode.create(ParensNode.create(query.where.where)) } : query
  const gated = QueryNode.cloneWithWhere(own, settingsGate(settings).toOperationNode())
  return new KitQueryCompiler(catalog).compileQuery(gated, queryId).sql
}

/** Whether a raw expression holds a query vector (the search's distance does; `sql.val` nests it in a raw node of its own). */
function holdsQueryVector(node: RawNode): boolean {
  return node.parameters.some((p) => (ValueNode.is(p) && p.value instanceof QueryVector) || (RawNode.is(p) && holdsQueryVector(p)))
}

/** Why a search cannot be run as an exact scan, or null when it can (see exactForm). */
function exactRefusal(query: RootOperationNode): string | null {
  if (!SelectQueryNode.is(query)) return 'it is not a SELECT'
  const items = query.orderBy?.items ?? []
  const item = items[0]
  // Ordered by the search's own distance, ascending, and nothing else.
  const own = item && items.length === 1 && RawNode.is(item.orderBy) && holdsQueryVector(item.orderBy)
    && (item.direction === undefined || (RawNode.is(item.direction) && item.direction.sqlFragments.join('').trim().toLowerCase() === 'asc'))
    && item.nulls === undefined
  if (!own) return 'it is not ordered by its distance alone (ascending)'
  if (!query.limit) return 'it has no limit'
  const limit = query.limit.limit
  if (!ValueNode.is(limit) || typeof limit.value !== 'number' || !Number.isSafeInteger(limit.value) || limit.value < 1) return 'its limit is not a number given when it is built'
  if (query.offset) return 'it has an offset'
  if (query.groupBy || query.having || query.distinctOn || query.setOperations || query.fetch || query.top || (query.frontModifiers ?? []).length > 0 || (query.endModifiers ?? []).length > 0) {
    return 'it groups, has DISTINCT, a set operation or a modifier'
  }
  // From the table itself (overFetch reads a subquery of the index's candidates).
  if ((query.from?.froms ?? []).some((f) => SelectQueryNode.is(AliasNode.is(f) ? f.node : f))) return 'it reads a subquery (overFetch)'
  return null
}

/**
 * The exact form of a search shaped as `kit.search` builds it — ordered by its own distance alone,
 * with a limit, from the table itself, and nothing that works on the ordered rows (OFFSET, GROUP
 * BY, DISTINCT, set operations) — or null for any other query: the search without its ORDER BY and
 * LIMIT, selecting its distance once more under a name of its own, fenced, sorted by that and
 * limited outside (renderExactSearch); the driver removes that column from the rows.
 */
function exactForm(compiled: CompiledQuery, catalog: CatalogCache): ExactForm | null {
  const query = compiled.query
  if (exactRefusal(query) !== null || !SelectQueryNode.is(query)) return null
  const distance = query.orderBy!.items[0]!.orderBy
  const limit = (query.limit!.limit as ValueNode).value as number
  const selections = [...(query.selections ?? []), SelectionNode.create(AliasNode.create(distance, IdentifierNode.create(EXACT_DISTANCE_COLUMN)))]
  const full = new KitQueryCompiler(catalog).compileQuery(query, compiled.queryId)
  const inner = new KitQueryCompiler(catalog).compileQuery(Object.freeze({ ...query, selections, orderBy: undefined, limit: undefined }), compiled.queryId)
  // The inner statement must take the search's parameters but the LIMIT's (the last), in the same order.
  const kept = full.parameters.length - 1
  if (inner.parameters.length !== kept || full.parameters[kept] !== limit || inner.parameters.some((p, i) => p !== full.parameters[i])) return null
  return { sql: renderExactSearch(inner.sql, kept + 1) }
}

/** The column the planner reads the estimate from: the first node of the plan that sorts, its input's rows. */
function planEstimate(plan: unknown): { cost: number; matches: number } | null {
  const top = (plan as { Plan?: Record<string, unknown> } | undefined)?.Plan
  if (!top) return null
  const cost = Number(top['Total Cost'])
  let node: Record<string, unknown> | undefined = top
  while (node && node['Node Type'] !== 'Sort' && node['Node Type'] !== 'Incremental Sort') node = (node.Plans as Record<string, unknown>[] | undefined)?.[0]
  const input = (node?.Plans as Record<string, unknown>[] | undefined)?.[0]
  if (!input) return null
  return { cost, matches: Number(input['Plan Rows']) }
}

/** Whether the query's own rows are filtered (a `where` on the select that orders by distance). */
function isFiltered(query: RootOperationNode): boolean {
  return SelectQueryNode.is(query) && query.where !== undefined
}

/** Whether the outermost select returns a column called `distance` (a search's own selection). */
function selectsDistance(query: RootOperationNode): boolean {
  if (!SelectQueryNode.is(query)) return false
  return (query.selections ?? []).some((s) => {
    const node = s.selection as { kind: string; alias?: { kind: string; name?: string } }
    return node.kind === 'AliasNode' && node.alias?.kind === 'IdentifierNode' && node.alias.name === 'distance'
  })
}

/**
 * A connection of the kit's Kysely. It holds one of the application's connections only while it
 * must: inside a transaction, while a search's settings are in force, and from the first query
 * without a query vector on (so `kit.db.connection()` keeps its session). A search that needs no
 * setting and is not inside either runs through the application's Kysely as it is, like any of
 * its own queries: one round trip, no hand-over of a connection.
 */
class KitConnection implements DatabaseConnection {
  readonly #db: Kysely<unknown>
  readonly #runtime: KitRuntime
  readonly #shared: KitShared
  #pinned: { readonly conn: Kysely<unknown>; readonly release: () => void } | null = null
  inTransaction = false

  constructor(db: Kysely<unknown>, runtime: KitRuntime, shared: KitShared) {
    this.#db = db
    this.#runtime = runtime
    this.#shared = shared
    // A kit made over the application's transaction (createKit(config, { db: trx })): everything
    // runs on that transaction's connection, and a search's settings are put back after it.
    if (db.isTransaction) {
      this.#pinned = { conn: db, release: () => undefined }
      this.inTransaction = true
    }
  }

  /** Borrows one of the application's connections until `unpin` (a kit over a transaction has it already). */
  pin(): Promise<void> {
    if (this.#pinned) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.#db.connection().execute(async (conn) => {
        await new Promise<void>((release) => {
          this.#pinned = { conn, release }
          resolve()
        })
      }).catch(reject)
    })
  }

  unpin(): void {
    if (this.#db.isTransaction) return
    const pinned = this.#pinned
    this.#pinned = null
    pinned?.release()
  }

  /** Whether the kit runs inside the application's transaction (createKit over a Kysely Transaction). */
  get overTransaction(): boolean {
    return this.#db.isTransaction
  }

  #target(): Kysely<unknown> {
    return this.#pinned?.conn ?? this.#db
  }

  /**
   * A search's statement on the application's driver, as it returns rows: not through the
   * application's Kysely plugins (the kit's builder did not compile with them either, and a plugin
   * that renames result columns would hide the catalog probe).
   */
  #send<R>(sql: string, parameters: readonly unknown[]): Promise<QueryResult<R>> {
    return this.#target().getExecutor().provideConnection((connection) => connection.executeQuery<R>(CompiledQuery.raw(sql, [...parameters])))
  }

  /** The kit's own statements (the catalog, capabilities, estimates, BEGIN/COMMIT): on the driver, not through the application's Kysely plugins, which may rename their columns. */
  run(sql: string, parameters: readonly unknown[] = []): Promise<QueryResult<Record<string, unknown>>> {
    return this.#send(sql, parameters)
  }

  /** BEGIN and the settings in one round trip where the driver allows it, else two. */
  async #begin(assignments: string): Promise<void> {
    if (this.#shared.multiStatement.ok) {
      try {
        await this.run(`BEGIN; SELECT ${assignments}`)
        return
      } catch (error) {
        // 42601: this driver prepares every query, and a prepared statement holds one command; nothing ran.
        if ((error as { code?: string }).code !== '42601') throw error
        this.#shared.multiStatement.ok = false
      }
    }
    await this.run('BEGIN')
    await this.run(`SELECT ${assignments}`)
  }

  async executeQuery<R>(original: CompiledQuery): Promise<QueryResult<R>> {
    const markers = original.parameters.filter((p): p is QueryVector => p instanceof QueryVector)
    // A prepared search's execute binds its placeholders before it gets here: one left is not bound.
    const placeholder = original.parameters.find((p): p is Placeholder => p instanceof Placeholder)
    if (placeholder) {
      throw new PgmlKitError('PLACEHOLDER_UNBOUND', `placeholder "${placeholder.name}" has no value: placeholders belong to a prepared search (kit.prepareSearch), whose execute gives them one`)
    }
    if (markers.length === 0) {
      // Your own queries through kit.db keep the connection they ran on, as Kysely's connection() promises.
      await this.pin()
      return this.#target().executeQuery<R>(original)
    }
    const run: Run = (sql, params) => this.run(sql, params)
    const { catalog } = this.#runtime
    // A caller holding a connection (a transaction) reads on it, never waiting for another caller's read.
    const own = this.#pinned !== null
    if (!catalog.loaded) await catalog.ensure(run, own)
    // The column's catalog row changed since the kit read it (a staged model change switched it):
    // read it again and run the search again, with the model, prefix and type it says now. Once.
    for (let attempt = 0; ; attempt++) {
      // One copy of the catalog for the SQL's cast, the query's embedding and the fingerprint to expect.
      const version = catalog.version
      const compiledSql = currentSql(original, catalog, this.#shared)
      const columns = new Map(markers.map((m) => [m, catalog.column(m.column)]))
      const expected = columns.get(markers[0]!)!.fingerprint
      let result: QueryResult<R>
      try {
        result = await this.#search<R>(original, compiledSql, markers, (m) => columns.get(m)!.node, run)
      } catch (error) {
        // Inside the caller's transaction a failed statement aborts it: nothing can run again there.
        const stale = attempt === 0 && !this.inTransaction && STALE_CATALOG.has((error as { code?: string }).code ?? '')
        if (stale && ((await catalog.refresh(run, this.#pinned !== null)) || catalog.version !== version)) continue
        throw error
      }
      const rows = result.rows as Record<string, unknown>[]
      const moved = expected !== undefined && rows.some((row) => PROBE_COLUMN in row && row[PROBE_COLUMN] !== expected)
      if (moved && attempt === 0) {
        await catalog.refresh(run, this.#pinned !== null)
        continue
      }
      if (moved) {
        throw new PgmlKitError('CATALOG_CHANGING', `the catalog row of ${markers[0]!.column.table}.${markers[0]!.column.column} changed twice while one search ran`, { hint: 'a migration is switching the column: run the search again' })
      }
      for (const row of rows) {
        delete row[PROBE_COLUMN]
        delete row[EXACT_DISTANCE_COLUMN]
      }
      return result
    }
  }

  /**
   * Runs a search: `compiled` is the query as built (its node and parameters), `compiledSql` its
   * SQL as the catalog copy says now.
   */
  async #search<R>(compiled: CompiledQuery, compiledSql: string, markers: readonly QueryVector[], columnOf: (marker: QueryVector) => EmbeddingColumnNode, run: Run): Promise<QueryResult<R>> {
    const shared = this.#shared
    // A vector the caller gave goes in binary where the driver allows it (learnt on the first
    // search outside a transaction, where a refused parameter aborts nothing); a text is embedded.
    const binary = shared.binaryVectors === 'yes' || (shared.binaryVectors === 'unknown' && !this.inTransaction)
    const resolveAll = async (parameters: readonly unknown[], asBinary = binary) => {
      const resolved = new Map<QueryVector, string | Buffer>()
      for (const marker of markers) {
        if (resolved.has(marker)) continue
        const vector = marker.vector
        if (vector) resolved.set(marker, asBinary && columnOf(marker).vectorType === 'vector' ? toVectorBinary(vector) : toVectorLiteral(vector))
        else resolved.set(marker, await this.#runtime.resolve(marker, columnOf(marker), run, this.#pinned !== null))
      }
      return parameters.map((p) => {
        if (p instanceof QueryVector) return resolved.get(p)
        if (p instanceof Placeholder) throw new PgmlKitError('PLACEHOLDER_UNBOUND', `placeholder "${p.name}" has no value: it belongs to a prepared search (kit.prepareSearch), whose execute gives it one`)
        return p
      })
    }
    const filtered = isFiltered(compiled.query)
    const indexed = markers.some((m) => m.index.method !== null)
    const attempt = async (asBinary: boolean): Promise<QueryResult<R>> => {
      const parameters = await resolveAll(compiled.parameters, asBinary)
      const strategy = markers[0]!.filter
      if (strategy === 'exact' || (filtered && indexed && strategy === 'auto')) {
        // A filter that keeps few rows: scan them exactly, as a planner would (see FilterStrategy).
        const exact = this.#exactForm(compiled, compiledSql)
        if (!exact && strategy === 'exact') {
          throw new PgmlKitError('EXACT_SCAN_UNSUPPORTED', `filterStrategy 'exact' cannot scan this search exactly: ${exactRefusal(compiled.query) ?? 'its parameters could not be kept in order'}`, {
            hint: "an exact scan needs the search as kit.search builds it (ordered by its distance, with a limit, from the table itself); use filterStrategy 'auto' or 'index'",
          })
        }
        if (exact) {
          // The estimate does not depend on the query's vector: it is kept per shape and the other parameters.
          // Hashed: an IN list of thousands of values is a long key.
          const key = createHash('sha1').update(compiledSql).update('\0').update(JSON.stringify(compiled.parameters.map((p, i) => (p instanceof QueryVector ? null : parameters[i])), (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).digest('base64')
          const decision: FilterDecision = strategy === 'exact' ? { exact: true, selectivity: null, sessionEfSearch: null } : await this.#estimate(exact, parameters, markers[0]!.column, key, run)
          if (decision.exact) return this.#send<R>(exact.sql, parameters)
          return this.#searchIndexed<R>(compiled, compiledSql, markers, filtered, run, parameters, decision)
        }
      }
      return this.#searchIndexed<R>(compiled, compiledSql, markers, filtered, run, parameters)
    }
    const triesBinary = binary && shared.binaryVectors === 'unknown' && markers.some((m) => m.vector !== null && columnOf(m).vectorType === 'vector')
    if (!triesBinary) return attempt(binary)
    try {
      const result = await attempt(true)
      shared.binaryVectors = 'yes'
      return result
    } catch (error) {
      // A driver that sends a Buffer otherwise (as bytea, or as text) gets a cast or input error: text from now on, if text works.
      if (!BINARY_REFUSED.has((error as { code?: string }).code ?? '')) throw error
      const result = await attempt(false)
      shared.binaryVectors = 'no'
      return result
    }
  }

  #exactForm(compiled: CompiledQuery, compiledSql: string): ExactForm | null {
    let form = this.#shared.exact.get(compiledSql)
    if (form === undefined) {
      form = exactForm(compiled, this.#runtime.catalog)
      this.#shared.exact.set(compiledSql, form)
    }
    return form
  }

  /**
   * The planner's estimate for the exact form with these parameters (one EXPLAIN, kept for a
   * minute per query shape and filter values, and the table's row count, kept for a minute),
   * weighed by exactIsCheaper.
   */
  async #estimate(exact: ExactForm, parameters: readonly unknown[], column: EmbeddingColumnNode, key: string, run: Run): Promise<FilterDecision> {
    const now = Date.now()
    const hit = this.#shared.estimates.get(key)
    if (hit && now - hit.at < ESTIMATE_TTL_MS) return hit
    const table = `${column.schema}\0${column.table}`
    let rows = this.#shared.tableRows.get(table)
    if (!rows || now - rows.at >= ESTIMATE_TTL_MS) {
      const result = await run(TABLE_ROWS, [column.schema, column.table])
      const ef = Number(result.rows[0]?.ef_search)
      rows = { at: now, n: Number(result.rows[0]?.n ?? -1), efSearch: Number.isInteger(ef) && ef > 0 ? ef : null }
      this.#shared.tableRows.set(table, rows)
    }
    const plan = (await run(renderExplain(exact.sql), parameters)).rows[0]?.['QUERY PLAN']
    const estimate = planEstimate(Array.isArray(plan) ? plan[0] : undefined)
    const decision: FilterDecision = {
      exact: estimate !== null && exactIsCheaper({ exactCost: estimate.cost, matches: estimate.matches, tableRows: rows.n }),
      selectivity: estimate !== null && rows.n > 0 ? Math.min(1, Math.max(estimate.matches, 1) / rows.n) : null,
      sessionEfSearch: rows.efSearch,
    }
    this.#shared.estimates.set(key, { ...decision, at: now })
    return decision
  }

  /** The search through the vector index, with its settings (ef_search, probes, iterative scans). */
  async #searchIndexed<R>(compiled: CompiledQuery, compiledSql: string, markers: readonly QueryVector[], filtered: boolean, run: Run, parameters: readonly unknown[], decision: FilterDecision | null = null): Promise<QueryResult<R>> {
    const wantsIterative = filtered && markers.some((m) => m.settings.iterativeScan === undefined && m.index.method !== null)
    const capabilities = wantsIterative ? await this.#runtime.capabilities(run, this.#pinned !== null) : null
    const effective = markers.map((m) => effectiveSettings(m, filtered, capabilities, decision?.selectivity ?? null, decision?.sessionEfSearch ?? null))
    const settings = [...new Map(effective.flatMap((s) => settingsToApply(s))).entries()]
    // IVFFlat's iterative scan returns rows only nearly in distance order: sort the page again.
    const resort = effective.some((s, i) => s.iterativeScan === 'relaxed_order' && markers[i]!.index.method === 'ivfflat' && markers[i]!.settings.iterativeScan === undefined)
      && selectsDistance(compiled.query)
    const sorted = (text: string) => (resort ? renderSortedByDistance(text) : text)

    if (settings.length === 0) return this.#send<R>(sorted(compiledSql), parameters)
    // Outside a transaction: the settings in the search's own statement, one round trip.
    if (!this.inTransaction) {
      const key = `${compiledSql}\0${settings.map(([n, v]) => `${n}=${v}`).join(',')}`
      let gated = this.#shared.gated.get(key)
      if (gated === undefined) {
        gated = withSettings(compiled.query, compiled.queryId, settings, this.#runtime.catalog) ?? ''
        this.#shared.gated.set(key, gated)
      }
      if (gated) return this.#send<R>(sorted(gated), parameters)
    }
    const sql = sorted(compiledSql)

    const assignments = settings.map(([name, value]) => `pg_catalog.set_config(${quoteLiteral(name)}, ${quoteLiteral(value)}, true)`).join(', ')
    if (this.inTransaction) {
      // Inside the caller's transaction the settings are put back afterwards, so they stay this query's.
      // A setting that did not exist yet (pgvector is loaded on first use in a session) goes back to its default.
      const names = settings.map(([name]) => name)
      const before = (await this.run(`SELECT ${names.map((n, i) => `pg_catalog.current_setting(${quoteLiteral(n)}, true) AS v${i}`).join(', ')}`)).rows[0] ?? {}
      await this.run(`SELECT ${assignments}`)
      const result = await this.#send<R>(sql, parameters)
      await this.run(`SELECT ${names.map((n, i) => {
        const value = before[`v${i}`] as string | null | undefined
        return value
          ? `pg_catalog.set_config(${quoteLiteral(n)}, ${quoteLiteral(value)}, true)`
          : `pg_catalog.set_config(${quoteLiteral(n)}, (SELECT reset_val FROM pg_catalog.pg_settings WHERE name = ${quoteLiteral(n)}), true)`
      }).join(', ')}`)
      return result
    }
    // The settings live in a transaction on one connection, held until it ends.
    await this.pin()
    try {
      await this.#begin(assignments)
      try {
        const result = await this.#send<R>(sql, parameters)
        await this.run('COMMIT')
        return result
      } catch (error) {
        await this.run('ROLLBACK').catch(() => undefined)
        throw error
      }
    } finally {
      this.unpin()
    }
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('pgml-kit query builders do not stream; use execute()')
  }
}

class KitDriver implements Driver {
  readonly #db: Kysely<unknown>
  readonly #runtime: KitRuntime
  readonly #shared: KitShared

  constructor(db: Kysely<unknown>, runtime: KitRuntime, shared: KitShared) {
    this.#db = db
    this.#runtime = runtime
    this.#shared = shared
  }

  async init(): Promise<void> {}

  /** A connection that borrows one of the application's only when it must (see KitConnection). */
  async acquireConnection(): Promise<DatabaseConnection> {
    return new KitConnection(this.#db, this.#runtime, this.#shared)
  }

  /** A transaction holds one of the application's connections from BEGIN to its end. */
  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const c = connection as KitConnection
    if (c.overTransaction) {
      throw new PgmlKitError('KIT_IN_TRANSACTION', 'this kit was made over a transaction (createKit(config, { db: trx })): kit.db.transaction() would commit yours; run the queries on kit.db, which is already inside it')
    }
    const mode = [settings.isolationLevel ? `ISOLATION LEVEL ${settings.isolationLevel.toUpperCase()}` : '', settings.accessMode ? settings.accessMode.toUpperCase() : ''].filter(Boolean).join(' ')
    await c.pin()
    try {
      await c.run(`BEGIN${mode ? ` ${mode}` : ''}`)
    } catch (error) {
      c.unpin()
      throw error
    }
    c.inTransaction = true
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as KitConnection
    try {
      await c.run('COMMIT')
    } finally {
      c.inTransaction = false
      c.unpin()
    }
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as KitConnection
    try {
      await c.run('ROLLBACK')
    } finally {
      c.inTransaction = false
      c.unpin()
    }
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    (connection as KitConnection).unpin()
  }

  async destroy(): Promise<void> {}
}
