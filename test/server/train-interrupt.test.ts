import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { server, type TestDatabase } from '../helpers/targets.js'

/**
 * pgml.train can be stopped: PL/Python never checks PostgreSQL's interrupts while scikit-learn or
 * xgboost fits, so before pgml_compat 0.4.0 a cancel, a statement_timeout or even
 * pg_terminate_backend was ignored until the fit ended (the audit waited 20 minutes, then had to
 * SIGKILL the backend, which restarts the server). Each fit here would run for many minutes; the
 * bound below only tells "stopped" from "ran on" (a hang detector, not a speed target).
 */
const STOPPED_WITHIN_MS = 20_000

/** A fit of many minutes: 100,000 boosting rounds or trees on 20,000 rows. */
const LONG_FITS = {
  xgboost: `SELECT * FROM pgml.train('long', 'regression', 'big', 'y', 'xgboost', '{"n_estimators": 100000, "max_depth": 8, "n_jobs": 1}')`,
  random_forest: `SELECT * FROM pgml.train('long', 'regression', 'big', 'y', 'random_forest', '{"n_estimators": 100000, "n_jobs": 1}')`,
  grid: `SELECT * FROM pgml.train('long', 'regression', 'big', 'y', 'xgboost', '{"n_jobs": 1}', search => 'grid',
           search_params => '{"n_estimators": [50000, 60000], "max_depth": [6, 8]}')`,
} as const

/** What psql sends on Ctrl-C: a CancelRequest on a new connection, with the backend's pid and secret key. */
async function sendCancelRequest(url: string, client: pg.Client): Promise<void> {
  const { hostname, port } = new URL(url)
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number }
  await new Promise<void>((resolve, reject) => {
    const socket = connect(Number(port || 5432), hostname, () => {
      const message = Buffer.alloc(16)
      message.writeInt32BE(16, 0)
      message.writeInt32BE(80877102, 4)
      message.writeInt32BE(processID, 8)
      message.writeInt32BE(secretKey, 12)
      socket.end(message)
    })
    socket.on('close', () => resolve())
    socket.on('error', reject)
  })
}

describe('pgml.train stops on cancel, statement_timeout, Ctrl-C and terminate, leaving nothing behind (pgml_compat on PostgreSQL)', () => {
  let db: TestDatabase
  const clients: pg.Client[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.end().catch(() => undefined)
    await db?.close()
  })

  async function setUp(): Promise<void> {
    db = await server.create()
    await db.query('CREATE EXTENSION pgml_compat CASCADE')
    await db.query(`CREATE TABLE big AS SELECT i, random() AS a, random() AS b, random() AS c, random() AS y FROM generate_series(1, 20000) AS i`)
  }
  async function trainer(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: db.url })
    client.on('error', () => undefined)
    await client.connect()
    clients.push(client)
    return client
  }
  const pidOf = async (client: pg.Client) => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  /** Waits until the backend has been in pgml.train's fit for a while (the data loads in well under a second). */
  async function fitting(pid: number): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const [row] = await db.query<{ s: number }>(`SELECT extract(epoch FROM clock_timestamp() - query_start)::float8 AS s FROM pg_stat_activity WHERE pid = $1 AND state = 'active'`, [pid])
      if (row && row.s > 2) return
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error('pgml.train did not start')
  }
  async function stoppedBy(train: Promise<unknown>, stop: () => Promise<unknown>): Promise<{ error: Error & { code?: string }; ms: number }> {
    const failed = train.then(() => { throw new Error('pgml.train finished: it was not stopped') }, (error: unknown) => error as Error & { code?: string })
    const started = performance.now()
    await stop()
    const error = await Promise.race([failed, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`pgml.train still running ${STOPPED_WITHIN_MS} ms after it was asked to stop`)), STOPPED_WITHIN_MS))])
    return { error, ms: performance.now() - started }
  }
  const nothingStored = async () => expect(await db.query(`SELECT (SELECT count(*) FROM pgml.projects)::int AS projects, (SELECT count(*) FROM pgml.models)::int AS models,
      (SELECT count(*) FROM pgml.snapshots)::int AS snapshots, (SELECT count(*) FROM pgml.files)::int AS files, (SELECT count(*) FROM pgml.deployments)::int AS deployments`))
    .toEqual([{ projects: 0, models: 0, snapshots: 0, files: 0, deployments: 0 }])

  it('pg_cancel_backend stops an xgboost fit and a random forest; the session trains normally afterwards', { timeout: 180_000 }, async () => {
    await setUp()
    const client = await trainer()
    const pid = await pidOf(client)
    for (const sql of [LONG_FITS.xgboost, LONG_FITS.random_forest]) {
      const train = client.query(sql)
      await fitting(pid)
      const { error } = await stoppedBy(train, () => db.query('SELECT pg_cancel_backend($1)', [pid]))
      expect(error.code, error.message).toBe('57014')
      expect(error.message).toMatch(/canceling statement due to user request/)
      await nothingStored()
    }
    // The same backend (its Python, its imported libraries) trains and predicts afterwards.
    await client.query(`SELECT * FROM pgml.train('small', 'regression', 'big', 'y', 'xgboost', '{"n_estimators": 5}')`)
    expect((await client.query(`SELECT pgml.predict('small', ARRAY[0.5, 0.5, 0.5, 0.5]::real[]) AS p`)).rows[0].p).toEqual(expect.any(Number))
  })

  it('statement_timeout stops a grid search', { timeout: 180_000 }, async () => {
    await setUp()
    const client = await trainer()
    await client.query(`SET statement_timeout = '4s'`)
    const started = performance.now()
    const error = await client.query(LONG_FITS.grid).then(() => null, (e: Error & { code?: string }) => e)
    expect(error?.code, error?.message).toBe('57014')
    expect(error!.message).toMatch(/statement timeout/)
    expect(performance.now() - started).toBeLessThan(4_000 + STOPPED_WITHIN_MS)
    await nothingStored()
  })

  it('a client\'s cancel request (what psql sends on Ctrl-C) stops it', { timeout: 180_000 }, async () => {
    await setUp()
    const client = await trainer()
    const pid = await pidOf(client)
    const train = client.query(LONG_FITS.xgboost)
    await fitting(pid)
    const { error } = await stoppedBy(train, () => sendCancelRequest(db.url, client))
    expect(error.code, error.message).toBe('57014')
    await nothingStored()
  })

  it('pg_terminate_backend ends the training backend without restarting the server', { timeout: 180_000 }, async () => {
    await setUp()
    const [{ started }] = (await db.query<{ started: string }>('SELECT pg_postmaster_start_time()::text AS started')) as [{ started: string }]
    const client = await trainer()
    const pid = await pidOf(client)
    const train = client.query(LONG_FITS.xgboost)
    await fitting(pid)
    const { error } = await stoppedBy(train, () => db.query('SELECT pg_terminate_backend($1)', [pid]))
    expect(error.message).toMatch(/terminating connection due to administrator command|Connection terminated/)
    // The backend is gone, the server was not restarted (a SIGKILL of a backend restarts every session).
    for (let i = 0; i < 50 && (await db.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).length > 0; i++) await new Promise((r) => setTimeout(r, 100))
    expect(await db.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).toEqual([])
    expect(await db.query('SELECT pg_postmaster_start_time()::text AS started')).toEqual([{ started }])
    await nothingStored()
  })
})
