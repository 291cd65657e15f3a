import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { openTarget } from '../../src/db/target.js'

/**
 * A fresh database for one test: a new PGlite data directory (embedded tier), or a new database
 * on the server named by PGML_KIT_TEST_DATABASE_URL (server tier).
 */
export interface TestDatabase {
  /** Project directory (config, migrations, and .pgml-kit/ for the embedded tier). */
  readonly cwd: string
  /** What to pass as `databaseUrl` to pgml-kit: '' selects the embedded default. */
  readonly databaseUrl: string
  /** A URL tests can connect to directly. */
  readonly url: string
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>
  close(): Promise<void>
}

export interface TestTier {
  readonly name: 'embedded' | 'server'
  create(): Promise<TestDatabase>
}

const serverUrl = process.env.PGML_KIT_TEST_DATABASE_URL

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

function queryFn(url: string): TestDatabase['query'] {
  return async (sql, params) => withClient(url, async (c) => (await c.query(sql, params)).rows)
}

const embedded: TestTier = {
  name: 'embedded',
  async create() {
    const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-test-'))
    // This process owns the data directory for the whole test; pgml-kit calls connect to it.
    // An empty databaseUrl selects the embedded default even when DATABASE_URL is set.
    const target = await openTarget({ cwd, databaseUrl: '' })
    return {
      cwd, databaseUrl: '', url: target.url, query: queryFn(target.url),
      async close() {
        await target.close()
        await rm(cwd, { recursive: true, force: true })
      },
    }
  },
}

const server: TestTier = {
  name: 'server',
  async create() {
    if (!serverUrl) throw new Error('PGML_KIT_TEST_DATABASE_URL is not set')
    const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-test-'))
    const name = `pgml_kit_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
    await withClient(serverUrl, (c) => c.query(`CREATE DATABASE "${name}"`))
    const url = new URL(serverUrl)
    url.pathname = `/${name}`
    return {
      cwd, databaseUrl: url.toString(), url: url.toString(), query: queryFn(url.toString()),
      async close() {
        await withClient(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
        await rm(cwd, { recursive: true, force: true })
      },
    }
  },
}

/** The tiers this run covers: embedded always, server when PGML_KIT_TEST_DATABASE_URL is set. */
export const tiers: readonly TestTier[] = serverUrl ? [embedded, server] : [embedded]
