import {
  CompiledQuery, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler,
  type DatabaseConnection, type Dialect, type Driver, type Kysely, type QueryResult, type TransactionSettings,
} from 'kysely'
import { QueryVector, settingsToApply } from './query-vector.js'
import { CURRENT_SETTING, RESET_LOCAL, SET_LOCAL } from '../sql/render-search.js'

/** Turns a QueryVector into the vector literal, on the connection the query will run on. */
export type VectorResolver = (marker: QueryVector, run: (sql: string, parameters: readonly unknown[]) => Promise<QueryResult<Record<string, unknown>>>) => Promise<string>

/**
 * A Kysely dialect that runs on connections borrowed from the application's own `Kysely<DB>`
 * (same pool, same driver). Queries that carry a QueryVector run inside a transaction it manages:
 * index settings are set with `set_config(name, value, true)` — SET LOCAL — so they never leak to
 * other queries on a pooled connection, and the query vector is resolved first.
 */
export class KitDialect implements Dialect {
  readonly #db: Kysely<unknown>
  readonly #resolve: VectorResolver

  constructor(db: Kysely<unknown>, resolve: VectorResolver) {
    this.#db = db
    this.#resolve = resolve
  }

  createDriver(): Driver {
    return new KitDriver(this.#db, this.#resolve)
  }

  createQueryCompiler() {
    return new PostgresQueryCompiler()
  }

  createAdapter() {
    return new PostgresAdapter()
  }

  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db)
  }
}

class KitConnection implements DatabaseConnection {
  readonly #borrowed: Kysely<unknown>
  readonly #resolve: VectorResolver
  readonly release: () => void
  inTransaction = false

  constructor(borrowed: Kysely<unknown>, resolve: VectorResolver, release: () => void) {
    this.#borrowed = borrowed
    this.#resolve = resolve
    this.release = release
  }

  run(sql: string, parameters: readonly unknown[] = []): Promise<QueryResult<Record<string, unknown>>> {
    return this.#borrowed.executeQuery(CompiledQuery.raw(sql, [...parameters]))
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const markers = compiled.parameters.filter((p): p is QueryVector => p instanceof QueryVector)
    if (markers.length === 0) return this.#borrowed.executeQuery<R>(compiled)
    const settings = markers.flatMap((m) => settingsToApply(m.settings))
    const own = !this.inTransaction
    if (own) await this.run('BEGIN')
    try {
      // Inside a caller's transaction, settings are put back afterwards so they stay this query's.
      // A setting that did not exist yet (pgvector is loaded on first use in a session) goes back to its default.
      const previous: [string, string | null][] = []
      if (!own) for (const [name] of settings) previous.push([name, ((await this.run(CURRENT_SETTING, [name])).rows[0]?.v as string | null | undefined) || null])
      for (const [name, value] of settings) await this.run(SET_LOCAL, [name, value])
      const resolved = new Map<QueryVector, string>()
      for (const marker of markers) if (!resolved.has(marker)) resolved.set(marker, await this.#resolve(marker, (sql, params) => this.run(sql, params)))
      const result = await this.#borrowed.executeQuery<R>(CompiledQuery.raw(compiled.sql, compiled.parameters.map((p) => (p instanceof QueryVector ? resolved.get(p) : p))))
      for (const [name, value] of previous) await (value === null ? this.run(RESET_LOCAL, [name]) : this.run(SET_LOCAL, [name, value]))
      if (own) await this.run('COMMIT')
      return result
    } catch (error) {
      if (own) await this.run('ROLLBACK').catch(() => undefined)
      throw error
    }
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('pgml-kit query builders do not stream; use execute()')
  }
}

class KitDriver implements Driver {
  readonly #db: Kysely<unknown>
  readonly #resolve: VectorResolver

  constructor(db: Kysely<unknown>, resolve: VectorResolver) {
    this.#db = db
    this.#resolve = resolve
  }

  async init(): Promise<void> {}

  /** Holds one of the application's connections until Kysely releases it. */
  acquireConnection(): Promise<DatabaseConnection> {
    return new Promise((resolve, reject) => {
      this.#db.connection().execute(async (borrowed) => {
        await new Promise<void>((release) => resolve(new KitConnection(borrowed, this.#resolve, release)))
      }).catch(reject)
    })
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const c = connection as KitConnection
    const mode = [settings.isolationLevel ? `ISOLATION LEVEL ${settings.isolationLevel.toUpperCase()}` : '', settings.accessMode ? settings.accessMode.toUpperCase() : ''].filter(Boolean).join(' ')
    await c.run(`BEGIN${mode ? ` ${mode}` : ''}`)
    c.inTransaction = true
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as KitConnection
    await c.run('COMMIT')
    c.inTransaction = false
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as KitConnection
    await c.run('ROLLBACK')
    c.inTransaction = false
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    (connection as KitConnection).release()
  }

  async destroy(): Promise<void> {}
}
