import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { promisify } from 'node:util'
import { inject } from 'vitest'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { openTarget } from '../../src/db/target.js'
import { EMBEDDED_DIR } from '../../src/db/embedded.js'

/**
 * A fresh database for one test: a new PGlite data directory (embedded tier), or a new database
 * on the server tier's PostgreSQL (PGML_KIT_TEST_DATABASE_URL, or the docker/postgres image; see
 * global-setup.ts).
 */
export interface TestDatabase {
  /** Project directory (config, migrations, and .pgml-kit/ for the embedded tier). */
  readonly cwd: string
  /** What to pass as `databaseUrl` to pgml-kit: '' selects the embedded default. */
  readonly databaseUrl: string
  /** A URL tests can connect to directly. */
  readonly url: string
  /** Runs one statement on a connection of its own. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>
  /** Runs `fn` with one connection (session state, warm caches such as PL/Python's imports), then closes it. */
  session<T>(fn: (query: TestDatabase['query']) => Promise<T>): Promise<T>
  close(): Promise<void>
}

export interface TestTier {
  readonly name: 'embedded' | 'server'
  create(): Promise<TestDatabase>
}

/** The server tier, or null when it is skipped this run. */
export const serverTier = inject('server')
const serverUrl = serverTier?.url

/** Runs `fn` with a connection of its own to `url`, then closes it. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
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

function sessionFn(url: string): TestDatabase['session'] {
  return (fn) => withClient(url, (c) => fn(async (sql, params) => (await c.query(sql, params)).rows))
}

const run = promisify(execFile)

/**
 * Copies a directory tree. The system's `cp -a` copies the 39 MB, ~970-file data directory in
 * about 0.25 s, node's fs.cp in about 0.95 s — per embedded test; fs.cp where there is no `cp`.
 */
async function copyTree(from: string, to: string): Promise<void> {
  await mkdir(join(to, '..'), { recursive: true })
  try {
    await run('cp', ['-a', from, to])
  } catch {
    await rm(to, { recursive: true, force: true })
    await cp(from, to, { recursive: true })
  }
}

const embedded: TestTier = {
  name: 'embedded',
  async create() {
    const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-test-'))
    // A copy of a freshly initialised data directory: the same state initdb gives, seconds sooner.
    await copyTree(inject('pgliteTemplate'), join(cwd, EMBEDDED_DIR, 'data'))
    // This process owns the data directory for the whole test; pgml-kit calls connect to it.
    // An empty databaseUrl selects the embedded default even when DATABASE_URL is set.
    const target = await openTarget({ cwd, databaseUrl: '' })
    return {
      cwd, databaseUrl: '', url: target.url, query: queryFn(target.url), session: sessionFn(target.url),
      async close() {
        await target.close()
        await rm(cwd, { recursive: true, force: true })
      },
    }
  },
}

const NO_SERVER = 'the server tier is not available in this run: set PGML_KIT_TEST_DATABASE_URL or start a Docker engine (scripts/docker-engine.sh); PGML_KIT_TEST_SERVER=skip leaves test/server and test/docker out'

/** The server tier's description, or a loud failure when this run has none. */
export function requireServerTier(): NonNullable<typeof serverTier> {
  if (!serverTier) throw new Error(NO_SERVER)
  return serverTier
}

/**
 * The server tier. Files under test/server and test/docker need it: vitest.config.ts leaves them
 * out when PGML_KIT_TEST_SERVER=skip; otherwise a run without a server fails here, loudly.
 */
export const server: TestTier = {
  name: 'server',
  async create() {
    if (!serverUrl) throw new Error(NO_SERVER)
    const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-test-'))
    const name = `pgml_kit_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
    await withClient(serverUrl, (c) => c.query(`CREATE DATABASE "${name}"`))
    const url = new URL(serverUrl)
    url.pathname = `/${name}`
    return {
      cwd, databaseUrl: url.toString(), url: url.toString(), query: queryFn(url.toString()), session: sessionFn(url.toString()),
      async close() {
        await withClient(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
        await rm(cwd, { recursive: true, force: true })
      },
    }
  },
}

/** The tiers this run covers: embedded always, server when there is one. */
export const tiers: readonly TestTier[] = serverUrl ? [embedded, server] : [embedded]
