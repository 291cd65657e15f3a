import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { exampleInMode } from '../helpers/example.js'
import { requireServerTier, server, type TestDatabase } from '../helpers/targets.js'


/**
 * The image users run (docker/postgres: PostgreSQL 17, pgvector, PL/Python, pgml_compat): the
 * repository's example migrates onto it in every embedding mode — trigger and generated with
 * pgml_compat inside the image, with the model pgml-kit ships that the image carries — every row
 * gets its vector, parity with the local model holds, and the search finds the housing page.
 */
describe('the docker/postgres image', () => {
  let db: TestDatabase
  beforeAll(() => {
    // vitest.config.ts leaves this file out when the server tier is a PGML_KIT_TEST_DATABASE_URL.
    if (requireServerTier().source !== 'docker') throw new Error('test/docker needs the server tier to be the docker/postgres image')
  })
  afterEach(async () => db?.close())

  it.each(['queue', 'trigger', 'generated', 'app'] as const)('runs the example in mode %s, and parity holds', async (mode) => {
    db = await server.create()
    await exampleInMode(db.cwd, mode)

    const cli = (...args: string[]) => runCli([...args, '--database-url', db.databaseUrl], { cwd: db.cwd })
    const migrate = await cli('migrate')
    expect(migrate.code, migrate.stderr).toBe(0)
    if (mode === 'queue') expect((await cli('worker', '--once')).stdout).toMatch(/^8 vectors written/)
    if (mode === 'app') expect((await cli('backfill', 'documents.body_embedding')).stdout).toMatch(/^8 vectors written/)
    expect(await db.query('SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NOT NULL')).toEqual([{ n: 8 }])

    const parity = await cli('parity', 'documents.body_embedding', '--min-cosine', '0.9999')
    expect(parity.code, parity.stdout + parity.stderr).toBe(0)
    expect(parity.stdout).toMatch(/stored vectors vs the local model, 8 rows/)
    if (mode === 'trigger') {
      await writeFile(join(db.cwd, 'texts.txt'), 'homes for families\nopening hours of parks\n')
      const texts = await cli('parity', 'documents.body_embedding', '--texts', 'texts.txt', '--min-cosine', '0.9999')
      expect(texts.code, texts.stdout + texts.stderr).toBe(0)
    }
    const search = await cli('search', 'documents.body_embedding', 'homes for families', '-k', '3', '--json')
    const hits = JSON.parse(search.stdout) as { title: string }[]
    expect(hits).toHaveLength(3)
    expect(hits[0]?.title).toBe('Affordable housing programme')
  })
})
