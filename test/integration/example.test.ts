import { cp } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { checkGenerated } from '../../src/migrations/generate.js'
import { migrate } from '../../src/migrations/run.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { localEmbedderLoader } from '../../src/embed/embedder-for-config.js'
import { runCli } from '../helpers/cli.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

describe('the repository root example', () => {
  it('has migrations generated from its current config, unedited', async () => {
    const result = await checkGenerated(await loadConfig('pgml-kit.config.ts', ROOT))
    expect(result.problems).toEqual([])
    expect(result.ok).toBe(true)
  })
})

describe.each(tiers)('the repository root example on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  it('migrates up, down to nothing, and up again', async () => {
    db = await tier.create()
    await cp(join(ROOT, 'migrations'), join(db.cwd, 'migrations'), { recursive: true })
    await cp(join(ROOT, 'pgml-kit.config.ts'), join(db.cwd, 'pgml-kit.config.ts'))
    const config = await loadConfig('pgml-kit.config.ts', db.cwd)
    const run = (direction: 'up' | 'down', count?: number) => migrate({
      databaseUrl: db.databaseUrl, cwd: db.cwd, dir: config.migrationsDir, settings: config.migrations, direction, ...(count ? { count } : {}),
    })
    const up = await run('up')
    expect(up.ran.length).toBeGreaterThanOrEqual(3)
    expect(await db.query(`SELECT column_name, model_id, mode FROM pgml_kit.embedding_columns`)).toEqual([
      { column_name: 'body_embedding', model_id: 'pgml-kit/wordnet-static-128', mode: 'queue' },
    ])
    // The seed rows were queued by the trigger; the worker embeds them with the model pgml-kit ships.
    const queued = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs'))[0]!.n
    expect(queued).toBeGreaterThan(0)
    const totals = await runWorker({ url: db.url, columns: config.state.embeddingColumns, loadEmbedder: localEmbedderLoader(config.embedder), once: true })
    expect(totals.written).toBe(queued)
    expect(await db.query('SELECT count(*)::int AS n FROM documents WHERE body_embedding IS NULL')).toEqual([{ n: 0 }])
    // The last step of `npm run example`: a semantic search from the command line.
    const search = await runCli(['search', 'documents.body_embedding', 'homes for families', '-k', '3', '--json'], { cwd: db.cwd, databaseUrl: db.databaseUrl || undefined })
    expect(search.code, search.stderr).toBe(0)
    const hits = JSON.parse(search.stdout) as { id: string; title: string; distance: number }[]
    expect(hits).toHaveLength(3)
    // A model that knows what words mean: the housing programme answers it, not an arbitrary row.
    expect(hits[0]?.title).toBe('Affordable housing programme')
    expect(hits.map((h) => h.distance)).toEqual([...hits.map((h) => h.distance)].sort((a, b) => a - b))
    expect((await run('down', up.ran.length)).ran).toHaveLength(up.ran.length)
    expect(await db.query(`SELECT to_regclass('public.documents') AS t`)).toEqual([{ t: null }])
    expect((await run('up')).ran).toEqual(up.ran)
  })
})
