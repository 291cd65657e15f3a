import {
  CompiledQuery, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, SelectQueryNode,
  type DatabaseConnection, type Dialect, type Driver, type Kysely, type QueryResult, type RootOperationNode, type TransactionSettings,
} from 'kysely'
import { QueryVector, effectiveSettings, settingsToApply, type SearchCapabilities } from './query-vector.js'
import { quoteLiteral } from '../sql/quote.js'

type Run = (sql: string, parameters: readonly unknown[]) => Promise<QueryResult<Record<string, unknown>>>

/** What the kit's driver asks of the kit: query vectors, and (once) what the database can do. */
export interface KitRuntime {
  /** Turns a QueryVector into the vector literal, on the connection the query will run on. */
  resolve(marker: QueryVector, run: Run): Promise<string>
  capabilities(run: Run): Promise<SearchCapabilities>
}

/**
 * A Kysely dialect that runs on connections borrowed from the application's own `Kysely<DB>`
 * (same pool, same driver). A query that carries a QueryVector gets its vector resolved first; if
 * it needs index settings (ef_search, probes, iterative scans) they are set with
 * `set_config(name, value, true)` — SET LOCAL — inside a transaction, so they never leak to other
 * queries on a pooled connection. A query that needs none runs as it is, in one round trip.
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
    return new KitQueryCompiler()
  }

  createAdapter() {
    return new PostgresAdapter()
  }

  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db)
  }
}

/**
 * PostgreSQL's compiler, except that a query vector used several times in one query (the
 * distance selected, the similarity, the ORDER BY) is sent once: every use refers to the same `$n`.
 * A vector of 384 dimensions is several kilobytes of text the server would otherwise parse again
 * for each use.
 */
class KitQueryCompiler extends PostgresQueryCompiler {
  #vectors = new Map<QueryVector, number>()

  override compileQuery(node: RootOperationNode, queryId: Parameters<PostgresQueryCompiler['compileQuery']>[1]): CompiledQuery {
    this.#vectors = new Map()
    return super.compileQuery(node, queryId)
  }

  protected override appendValue(value: unknown): void {
    if (!(value instanceof QueryVector)) return super.appendValue(value)
    const index = this.#vectors.get(value)
    if (index !== undefined) return this.append(`$${index}`)
    super.appendValue(value)
    this.#vectors.set(value, this.numParameters)
  }
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

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const markers = compiled.parameters.filter((p): p is QueryVector => p instanceof QueryVector)
    if (markers.length === 0) {
      // Your own queries through kit.db keep the connection they ran on, as Kysely's connection() promises.
      await this.pin()
      return this.#target().executeQuery<R>(compiled)
    }
    const run: Run = (sql, params) => this.run(sql, params)
    const filtered = isFiltered(compiled.query)
    const wantsIterative = filtered && markers.some((m) => m.settings.iterativeScan === undefined && m.index.method !== null)
    const capabilities = wantsIterative ? await this.#runtime.capabilities(run) : null
    const effective = markers.map((m) => effectiveSettings(m, filtered, capabilities))
    const settings = [...new Map(effective.flatMap((s) => settingsToApply(s))).entries()]
    // IVFFlat's iterative scan returns rows only nearly in distance order: sort the page again.
    const resort = effective.some((s, i) => s.iterativeScan === 'relaxed_order' && markers[i]!.index.method === 'ivfflat' && markers[i]!.settings.iterativeScan === undefined)
      && selectsDistance(compiled.query)
    const sql = resort ? `SELECT * FROM (${compiled.sql}) AS pgml_kit_sorted ORDER BY "distance"` : compiled.sql

    const resolveAll = async () => {
      const resolved = new Map<QueryVector, string>()
      for (const marker of markers) if (!resolved.has(marker)) resolved.set(marker, await this.#runtime.resolve(marker, run))
      return compiled.parameters.map((p) => (p instanceof QueryVector ? resolved.get(p) : p))
    }
    if (settings.length === 0) return this.#target().executeQuery<R>(CompiledQuery.raw(sql, await resolveAll()))

    const assignments = settings.map(([name, value]) => `pg_catalog.set_config(${quoteLiteral(name)}, ${quoteLiteral(value)}, true)`).join(', ')
    if (this.inTransaction) {
      // Inside the caller's transaction the settings are put back afterwards, so they stay this query's.
      // A setting that did not exist yet (pgvector is loaded on first use in a session) goes back to its default.
      const names = settings.map(([name]) => name)
      const before = (await this.run(`SELECT ${names.map((n, i) => `pg_catalog.current_setting(${quoteLiteral(n)}, true) AS v${i}`).join(', ')}`)).rows[0] ?? {}
      await this.run(`SELECT ${assignments}`)
      const result = await this.#target().executeQuery<R>(CompiledQuery.raw(sql, await resolveAll()))
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
        const result = await this.#target().executeQuery<R>(CompiledQuery.raw(sql, await resolveAll()))
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
