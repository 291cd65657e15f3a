import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { loadConfig } from '../../src/config/load.js'
import { readIndexHealth, repairIndexes } from '../../src/indexes/health.js'
import { readStatus } from '../../src/status.js'
import { runCli } from '../helpers/cli.js'
import { documentsConfig } from '../helpers/fixtures.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

const HNSW = 'documents_body_embedding_hnsw_cosine_idx'
const IVFFLAT = 'documents_body_embedding_ivfflat_l2_idx'

describe.each(tiers)('vector index health and repair on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function setup() {
    db = await tier.create()
    const project = await new TestProject(db).withDocumentsTable(documentsConfig({ indexes: [{ method: 'hnsw', distance: 'cosine' }, { method: 'ivfflat', distance: 'l2', lists: 2 }] }))
    await project.generate('add-doc-embeddings')
    await project.migrate()
    // The IVFFlat index waited for vectors.
    await db.query(`INSERT INTO documents (title, body, body_embedding) VALUES ('a', 'b', '[1,0,0,0,0,0,0,0]'), ('c', 'd', '[0,1,0,0,0,0,0,0]')`)
    await project.generate('add-ivfflat')
    await project.migrate()
    return loadConfig('pgml-kit.config.ts', db.cwd)
  }
  const indexes = () => db.query<{ name: string; valid: boolean; options: string[] | null }>(
    `SELECT c.relname AS name, i.indisvalid AS valid, c.reloptions AS options FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE i.indrelid = 'public.documents'::regclass AND c.relname LIKE 'documents_body_embedding_%' ORDER BY 1`)

  it('status names an INVALID index, one that differs from the config and a missing one; repair rebuilds them and they are ok', async () => {
    const config = await setup()
    const status = () => readStatus({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: config.migrationsDir, settings: config.migrations, state: config.state })
    expect((await status()).indexes.map((i) => [i.index, i.state])).toEqual([[`public.${HNSW}`, 'ok'], [`public.${IVFFLAT}`, 'ok']])
    expect((await status()).indexes[0]!.sizeBytes).toBeGreaterThan(0)

    // What an interrupted concurrent build leaves, and an index someone rebuilt by hand with other parameters.
    await db.query(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'public.${HNSW}'::regclass`)
    await db.query(`DROP INDEX public.${IVFFLAT}; CREATE INDEX ${IVFFLAT} ON documents USING ivfflat (body_embedding vector_l2_ops) WITH (lists = 5)`)
    expect((await status()).indexes.map((i) => [i.state, i.detail])).toEqual([
      ['invalid', 'INVALID: a build failed or was cancelled; searches ignore it'],
      ['differs', 'parameters (lists=5), the config says (lists=2)'],
    ])

    const steps: string[] = []
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      const result = await repairIndexes(client, config.state, { onStep: (s) => steps.push(s.sql) })
      expect(result.repaired.map((r) => r.state)).toEqual(['invalid', 'differs'])
      expect(steps.filter((s) => s.startsWith('CREATE INDEX CONCURRENTLY'))).toHaveLength(2)
      expect(await readIndexHealth(client, config.state)).toEqual([
        expect.objectContaining({ state: 'ok' }), expect.objectContaining({ state: 'ok' }),
      ])
      expect(await indexes()).toEqual([
        { name: HNSW, valid: true, options: ['m=16', 'ef_construction=64'] },
        { name: IVFFLAT, valid: true, options: ['lists=2'] },
      ])
      // Nothing to do the second time.
      expect(await repairIndexes(client, config.state)).toEqual({ repaired: [], ok: [`public.${HNSW}`, `public.${IVFFLAT}`] })
      await expect(repairIndexes(client, config.state, { column: 'documents.title' })).rejects.toThrow(/declares no vector index on documents.title/)
    } finally {
      await client.end()
    }

    // A dropped index, through the CLI, for one column.
    await db.query(`DROP INDEX public.${HNSW}`)
    expect((await status()).indexes[0]).toMatchObject({ state: 'missing', sizeBytes: null })
    const cli = await runCli(['index', 'repair', 'documents.body_embedding'], { cwd: db.cwd, databaseUrl: db.databaseUrl || undefined })
    expect(cli.code, cli.stderr).toBe(0)
    expect(cli.stdout).toContain(`repaired public.${HNSW} (was missing: no index of this name: searches scan the table)`)
    expect(cli.stdout).toContain(`ok public.${IVFFLAT}`)
    expect((await indexes()).map((i) => i.valid)).toEqual([true, true])
  })
})
