import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { createKit } from '../../src/query/create-kit.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * An application whose config serves a model through the registry, against a database not migrated
 * to it: a clear error naming the config setting and what to run, not "function does not exist".
 * And a key given for a model that is not served: refused, naming where to declare serving.
 */
const config: PgmlKitConfig = {
  tables: {},
  models: {
    churn: { task: 'regression', relation: 'public.customers', target: 'spend', serving: { log: { sample: 0.5 } } },
    plain: { task: 'regression', relation: 'public.customers', target: 'spend' },
  },
}

describe('serving through the registry, set up wrong', () => {
  const tier = tiers.find((t) => t.name === 'embedded')!
  let db: TestDatabase
  let pool: pg.Pool
  beforeAll(async () => {
    db = await tier.create()
    pool = new pg.Pool({ connectionString: db.url, max: 1 })
  })
  afterAll(async () => {
    await pool?.end()
    await db?.close()
  })

  it('says to migrate, or where to declare serving', async () => {
    const kit = createKit(config, { db: new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) }) })
    await expect(kit.predict('churn', [1, 2], { key: 7 })).rejects.toMatchObject({ code: 'SERVING_MISSING', where: 'models.churn.serving', hint: 'pgml-kit generate && pgml-kit migrate' })
    await expect(kit.predict('plain', [1, 2], { key: 7 })).rejects.toMatchObject({ code: 'SERVING_OFF', where: 'models.plain.serving' })
  })
})
