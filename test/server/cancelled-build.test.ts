import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { basename } from 'node:path'
import { loadConfig } from '../../src/config/load.js'
import { readIndexHealth, repairIndexes } from '../../src/indexes/health.js'
import { documentsConfig } from '../helpers/fixtures.js'
import { TestProject } from '../helpers/project.js'
import { server, type TestDatabase } from '../helpers/targets.js'

const HNSW = 'documents_body_embedding_hnsw_cosine_idx'

/**
 * A concurrent index build really cancelled halfway — held at "waiting for old snapshots" by a
 * transaction another session keeps open, then stopped with pg_cancel_backend, as a DBA stops a
 * build that waits too long — leaves an INVALID index and its migration unapplied. Run again,
 * `migrate` carries on from there (the leftover is dropped, the index built, the migration
 * recorded), and so does `index repair`, without deleting anything by hand. (Server tier: the
 * embedded database serves one transaction at a time, so no build waits there for another's.)
 */
describe('a cancelled concurrent index build', () => {
  let db: TestDatabase
  const clients: pg.Client[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.end().catch(() => undefined)
    await db?.close()
  })
  async function connect(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: db.url })
    c.on('error', () => undefined)
    await c.connect()
    clients.push(c)
    return c
  }
  const state = async () => db.query<{ valid: boolean }>(`SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1`, [HNSW])

  /** Starts `migrate` while a long transaction holds an old snapshot, cancels the build once it waits, and lets the transaction end. */
  async function cancelBuild(p: TestProject): Promise<unknown> {
    const report = await connect()
    await report.query('BEGIN ISOLATION LEVEL REPEATABLE READ')
    await report.query('SELECT count(*) FROM documents')
    const migration = p.migrate().then(() => null, (error: unknown) => error)
    const admin = await connect()
    let cancelled = false
    for (let i = 0; i < 300 && !cancelled; i++) {
      const { rows } = await admin.query<{ ok: boolean }>(`SELECT pg_cancel_backend(pid) AS ok FROM pg_stat_activity
        WHERE query ILIKE '%CREATE INDEX CONCURRENTLY%' AND state = 'active' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`)
      cancelled = rows.some((r) => r.ok)
      if (!cancelled) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(cancelled).toBe(true)
    const error = await migration
    await report.query('COMMIT')
    return error
  }

  /** A table with vectors and a generated, unapplied migration that builds its HNSW index. */
  async function withPendingIndex(): Promise<{ p: TestProject; migration: string }> {
    db = await server.create()
    const p = await new TestProject(db).withDocumentsTable(documentsConfig({ indexes: [] }))
    await p.generate('add-embeddings')
    await p.migrate()
    await db.query(`INSERT INTO documents (title, body, body_embedding) SELECT 't' || i, 'b', ('[' || i || ',1,0,0,0,0,0,0]')::vector FROM generate_series(1, 50) AS i`)
    await p.writeConfig(documentsConfig())
    const [file] = await p.generate('add-index')
    return { p, migration: basename(file!, '.sql') }
  }

  it('migrate run again drops the INVALID leftover, builds the index and records the migration', async () => {
    const { p, migration } = await withPendingIndex()
    const error = await cancelBuild(p)
    expect(String((error as Error).message)).toMatch(/canceling statement due to user request/)
    expect(await state()).toEqual([{ valid: false }])
    expect((await db.query<{ name: string }>('SELECT name FROM pgmigrations')).map((r) => r.name)).not.toContain(migration)

    const again = await p.migrate()
    expect(again.ran).toEqual([migration])
    expect(await state()).toEqual([{ valid: true }])
    expect((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE '%pgml_kit_invalid%'`))[0]!.n).toBe(0)
    expect((await p.migrate()).ran).toEqual([])
  })

  it('index repair rebuilds what the cancelled build left; the migration then finds the index and is recorded', async () => {
    const { p, migration } = await withPendingIndex()
    await cancelBuild(p)
    expect(await state()).toEqual([{ valid: false }])

    const config = await loadConfig('pgml-kit.config.ts', db.cwd)
    const client = await connect()
    const result = await repairIndexes(client, config.state)
    expect(result.repaired.map((r) => r.state)).toEqual(['invalid'])
    expect(await readIndexHealth(client, config.state)).toEqual([expect.objectContaining({ state: 'ok' })])
    expect((await p.migrate()).ran).toEqual([migration])
    expect(await state()).toEqual([{ valid: true }])
  })
})
