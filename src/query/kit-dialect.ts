import {
  CompiledQuery, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, QueryNode, SelectQueryNode,
  type DatabaseConnection, type Dialect, type Driver, type Kysely, type QueryResult, type RootOperationNode, type TransactionSettings,
} from 'kysely'
import { CatalogProbe, DistanceOperator, QueryVector, effectiveSettings, settingsToApply, type SearchCapabilities } from './query-vector.js'
import { quoteLiteral } from '../sql/quote.js'
import { renderCatalogProbe } from '../sql/render-catalog.js'
import { renderSortedByDistance, settingsGate } from '../sql/render-search.js'
import { renderVectorType } from '../sql/render-source.js'
import { renderDistanceOperator } from '../sql/render-index.js'
import { PgmlKitError } from '../errors.js'
import type { CatalogCache } from './catalog-cache.js'
import type { EmbeddingColumnNode } from '../model/ir.js'

type Run = (sql: string, parameters: readonly unknown[]) => Promise<QueryResult<Record<string, unknown>>>

/** What the kit's driver asks of the kit: query vectors, the catalog, and (once) what the database can do. */
export interface KitRuntime {
  /** Turns a QueryVector into the vector literal, embedding a text with `column` (the column as the catalog has it), on the connection the query will run on. */
  resolve(marker: QueryVector, column: EmbeddingColumnNode, run: Run): Promise<string>
  capabilities(run: Run): Promise<SearchCapabilities>
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
  /** Whether the driver runs `BEGIN; SELECT ...` as one simple query (node-postgres does); learnt on first use. */
  readonly #multiStatement = { ok: true }

  constructor(db: Kysely<unknown>, runtime: KitRuntime) {
    this.#db = db
    this.#runtime = runtime
  }

  createDriver(): Driver {
    return new KitDriver(this.#db, this.#runtime, this.#multiStatement)
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

/** The query compiled from the catalog copy as it is now (compiled again if it changed since). */
function current(compiled: CompiledQuery, catalog: CatalogCache): CompiledQuery {
  if (compiledFrom.get(compiled) === catalog.version) return compiled
  return new KitQueryCompiler(catalog).compileQuery(compiled.query, compiled.queryId)
}

/**
 * The search with its settings applied by the statement itself: settingsGate's condition ANDed
 * into the outermost SELECT's WHERE. PostgreSQL evaluates it before any scan starts (an index scan
 * reads ef_search, probes and the iterative-scan settings when it starts), and the settings are
 * local to the statement's transaction — outside an explicit one, the statement itself. One round
 * trip, a plain parameterised statement (a driver may prepare it), nothing left behind on the
 * connection. Null when the query is not a SELECT.
 */
function withSettings(compiled: CompiledQuery, settings: readonly (readonly [string, string])[], catalog: CatalogCache): CompiledQuery | null {
  if (!SelectQueryNode.is(compiled.query)) return null
  const gated = QueryNode.cloneWithWhere(compiled.query, settingsGate(settings).toOperationNode())
  return new KitQueryCompiler(catalog).compileQuery(gated, compiled.queryId)
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
  readonly #multiStatement: { ok: boolean }
  #pinned: { readonly conn: Kysely<unknown>; readonly release: () => void } | null = null
  inTransaction = false

  constructor(db: Kysely<unknown>, runtime: KitRuntime, multiStatement: { ok: boolean }) {
    this.#db = db
    this.#runtime = runtime
    this.#multiStatement = multiStatement
  }

  /** Borrows one of the application's connections until `unpin`. */
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
    const pinned = this.#pinned
    this.#pinned = null
    pinned?.release()
  }

  #target(): Kysely<unknown> {
    return this.#pinned?.conn ?? this.#db
  }

  run(sql: string, parameters: readonly unknown[] = []): Promise<QueryResult<Record<string, unknown>>> {
    return this.#target().executeQuery(CompiledQuery.raw(sql, [...parameters]))
  }

  /** BEGIN and the settings in one round trip where the driver allows it, else two. */
  async #begin(assignments: string): Promise<void> {
    if (this.#multiStatement.ok) {
      try {
        await this.run(`BEGIN; SELECT ${assignments}`)
        return
      } catch (error) {
        // 42601: this driver prepares every query, and a prepared statement holds one command; nothing ran.
        if ((error as { code?: string }).code !== '42601') throw error
        this.#multiStatement.ok = false
      }
    }
    await this.run('BEGIN')
    await this.run(`SELECT ${assignments}`)
  }

  async executeQuery<R>(original: CompiledQuery): Promise<QueryResult<R>> {
    const markers = original.parameters.filter((p): p is QueryVector => p instanceof QueryVector)
    if (markers.length === 0) {
      // Your own queries through kit.db keep the connection they ran on, as Kysely's connection() promises.
      await this.pin()
      return this.#target().executeQuery<R>(original)
    }
    const run: Run = (sql, params) => this.run(sql, params)
    const { catalog } = this.#runtime
    await catalog.ensure(run)
    // The column's catalog row changed since the kit read it (a staged model change switched it):
    // read it again and run the search again, with the model, prefix and type it says now. Once.
    for (let attempt = 0; ; attempt++) {
      // One copy of the catalog for the SQL's cast, the query's embedding and the fingerprint to expect.
      const version = catalog.version
      const compiled = current(original, catalog)
      const columns = new Map(markers.map((m) => [m, catalog.column(m.column)]))
      const expected = columns.get(markers[0]!)!.fingerprint
      let result: QueryResult<R>
      try {
        result = await this.#search<R>(compiled, markers, (m) => columns.get(m)!.node, run)
      } catch (error) {
        // Inside the caller's transaction a failed statement aborts it: nothing can run again there.
        const stale = attempt === 0 && !this.inTransaction && STALE_CATALOG.has((error as { code?: string }).code ?? '')
        if (stale && ((await catalog.refresh(run)) || catalog.version !== version)) continue
        throw error
      }
      const rows = result.rows as Record<string, unknown>[]
      const moved = expected !== undefined && rows.some((row) => PROBE_COLUMN in row && row[PROBE_COLUMN] !== expected)
      if (moved && attempt === 0) {
        await catalog.refresh(run)
        continue
      }
      if (moved) {
        throw new PgmlKitError('CATALOG_CHANGING', `the catalog row of ${markers[0]!.column.table}.${markers[0]!.column.column} changed twice while one search ran`, { hint: 'a migration is switching the column: run the search again' })
      }
      for (const row of rows) delete row[PROBE_COLUMN]
      return result
    }
  }

  async #search<R>(compiled: CompiledQuery, markers: readonly QueryVector[], columnOf: (marker: QueryVector) => EmbeddingColumnNode, run: Run): Promise<QueryResult<R>> {
    const filtered = isFiltered(compiled.query)
    const wantsIterative = filtered && markers.some((m) => m.settings.iterativeScan === undefined && m.index.method !== null)
    const capabilities = wantsIterative ? await this.#runtime.capabilities(run) : null
    const effective = markers.map((m) => effectiveSettings(m, filtered, capabilities))
    const settings = [...new Map(effective.flatMap((s) => settingsToApply(s))).entries()]
    // IVFFlat's iterative scan returns rows only nearly in distance order: sort the page again.
    const resort = effective.some((s, i) => s.iterativeScan === 'relaxed_order' && markers[i]!.index.method === 'ivfflat' && markers[i]!.settings.iterativeScan === undefined)
      && selectsDistance(compiled.query)
    const sorted = (query: CompiledQuery) => (resort ? renderSortedByDistance(query.sql) : query.sql)

    const resolveAll = async (query: CompiledQuery) => {
      const resolved = new Map<QueryVector, string>()
      for (const marker of markers) if (!resolved.has(marker)) resolved.set(marker, await this.#runtime.resolve(marker, columnOf(marker), run))
      return query.parameters.map((p) => (p instanceof QueryVector ? resolved.get(p) : p))
    }
    if (settings.length === 0) return this.#target().executeQuery<R>(CompiledQuery.raw(sorted(compiled), await resolveAll(compiled)))
    // Outside a transaction: the settings in the search's own statement, one round trip.
    const gated = this.inTransaction ? null : withSettings(compiled, settings, this.#runtime.catalog)
    if (gated) return this.#target().executeQuery<R>(CompiledQuery.raw(sorted(gated), await resolveAll(gated)))
    const sql = sorted(compiled)

    const assignments = settings.map(([name, value]) => `pg_catalog.set_config(${quoteLiteral(name)}, ${quoteLiteral(value)}, true)`).join(', ')
    if (this.inTransaction) {
      // Inside the caller's transaction the settings are put back afterwards, so they stay this query's.
      // A setting that did not exist yet (pgvector is loaded on first use in a session) goes back to its default.
      const names = settings.map(([name]) => name)
      const before = (await this.run(`SELECT ${names.map((n, i) => `pg_catalog.current_setting(${quoteLiteral(n)}, true) AS v${i}`).join(', ')}`)).rows[0] ?? {}
      await this.run(`SELECT ${assignments}`)
      const result = await this.#target().executeQuery<R>(CompiledQuery.raw(sql, await resolveAll(compiled)))
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
        const result = await this.#target().executeQuery<R>(CompiledQuery.raw(sql, await resolveAll(compiled)))
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
  readonly #multiStatement: { ok: boolean }

  constructor(db: Kysely<unknown>, runtime: KitRuntime, multiStatement: { ok: boolean }) {
    this.#db = db
    this.#runtime = runtime
    this.#multiStatement = multiStatement
  }

  async init(): Promise<void> {}

  /** A connection that borrows one of the application's only when it must (see KitConnection). */
  async acquireConnection(): Promise<DatabaseConnection> {
    return new KitConnection(this.#db, this.#runtime, this.#multiStatement)
  }

  /** A transaction holds one of the application's connections from BEGIN to its end. */
  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const c = connection as KitConnection
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
