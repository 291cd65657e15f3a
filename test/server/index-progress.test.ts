import { afterEach, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { documentsConfig } from '../helpers/fixtures.js'
import { TestProject } from '../helpers/project.js'
import { server, type TestDatabase } from '../helpers/targets.js'

/** pg_stat_progress_create_index exists on servers (PGlite does not report it). */
describe('index build progress during migrate', () => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  it('shows a concurrent HNSW build\'s phases while it runs', async () => {
    db = await server.create()
    const model = { id: 'test/double', dimensions: 64 }
    const project = await new TestProject(db).withDocumentsTable(documentsConfig({ model, indexes: [] }))
    await project.generate('add-column')
    await project.migrate()
    await db.query(`INSERT INTO documents (title, body, body_embedding)
      SELECT 't' || i, 'b', ARRAY(SELECT random() + i * 0 FROM generate_series(1, 64))::vector(64) FROM generate_series(1, 40000) i`)
    await project.writeConfig(documentsConfig({ model, indexes: [{ method: 'hnsw', distance: 'cosine' }] }))
    await project.generate('add-index')
    const migrate = await runCli(['migrate'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(migrate.code, migrate.stderr).toBe(0)
    expect(migrate.stderr).toMatch(/building documents_body_embedding_hnsw_cosine_idx: building index: loading tuples \(\d+\/\d+ blocks\)/)
  })
})
