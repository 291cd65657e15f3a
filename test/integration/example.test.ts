import { cp } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { checkGenerated } from '../../src/migrations/generate.js'
import { migrate } from '../../src/migrations/run.js'
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
      { column_name: 'body_embedding', model_id: 'intfloat/e5-small-v2', mode: 'app' },
    ])
    expect((await run('down', up.ran.length)).ran).toHaveLength(up.ran.length)
    expect(await db.query(`SELECT to_regclass('public.documents') AS t`)).toEqual([{ t: null }])
    expect((await run('up')).ran).toEqual(up.ran)
  })
})
