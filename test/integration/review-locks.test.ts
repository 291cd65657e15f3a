import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { loadConfig } from '../../src/config/load.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { planFromConfig } from '../../src/migrations/generate.js'
import { indexTables, reviewFiles, type LockMode, type StatementFacts } from '../../src/plan/review.js'
import { DOUBLE_DIMENSIONS, PGML_EMBED_TEST_DOUBLE } from '../helpers/fixtures.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * The review document's lock claims, checked against pg_locks: every statement of the generated
 * transactional files runs in a transaction of its own connection, and after each one the locks
 * it took are read. The claimed lock must be held, and no lock on a user table may be stronger
 * than what the review says for that table. (pgml.embed is the named TEST DOUBLE.)
 */
const model = { id: 'test/double', dimensions: DOUBLE_DIMENSIONS }
const NOTES = `
-- Up Migration
CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);
-- Down Migration
DROP TABLE notes;
`

const first: PgmlKitConfig = {
  tables: {
    documents: {
      embeddings: {
        body_embedding: { source: ['title', 'body'], model, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine' }] },
        gen_embedding: { source: ['body'], model, mode: 'generated' },
      },
      fullText: { source: ['title', 'body'] },
    },
    notes: { embeddings: { note_vec: { source: 'body', model, mode: 'queue' } } },
  },
}

const second: PgmlKitConfig = {
  tables: {
    documents: {
      embeddings: {
        body_vec: { source: ['body'], model: { ...model, queryPrefix: 'q: ' }, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'cosine' }], renamedFrom: 'body_embedding' },
        gen_embedding: { source: ['title'], model, mode: 'generated' },
      },
    },
    notes: { embeddings: { summary_vec: { source: 'body', model, mode: 'app', indexes: [{ method: 'hnsw', distance: 'l2' }] } } },
  },
}

const MODE: Record<string, LockMode | 'ACCESS SHARE' | 'ROW SHARE' | 'EXCLUSIVE'> = {
  AccessShareLock: 'ACCESS SHARE', RowShareLock: 'ROW SHARE', RowExclusiveLock: 'ROW EXCLUSIVE', ShareUpdateExclusiveLock: 'SHARE UPDATE EXCLUSIVE',
  ShareLock: 'SHARE', ShareRowExclusiveLock: 'SHARE ROW EXCLUSIVE', ExclusiveLock: 'EXCLUSIVE', AccessExclusiveLock: 'ACCESS EXCLUSIVE',
}
const RANK = ['ACCESS SHARE', 'ROW SHARE', 'ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE']

describe.each(tiers)('review lock claims on the $name tier (pgml.embed test double)', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function checkPlan(p: TestProject, options: { switch?: 'always'; dropPrevious?: boolean } = {}): Promise<number> {
    const config = await loadConfig('pgml-kit.config.ts', db.cwd)
    const { files, snapshot, desired } = await planFromConfig(config, { name: 'review', dropPrevious: options.dropPrevious ?? false, ...options })
    const reviews = await reviewFiles(files, { settings: config.migrations, configFile: 'pgml-kit.config.ts', indexTables: indexTables(snapshot.state, desired) })
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    let checked = 0
    try {
      for (const review of reviews.filter((r) => r.file.transactional)) {
        const statements: StatementFacts[] = review.steps.flatMap((s) => s.up)
        // Relations that exist before the file runs (locks on relations it creates are not the review's concern).
        // By oid, named as before the file (a statement may rename what it locks).
        const names = new Map((await client.query<{ oid: number; rel: string }>(`SELECT c.oid::int AS oid, n.nspname || '.' || c.relname AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'pgml_kit')`)).rows.map((r) => [r.oid, r.rel]))
        const existing = new Set(names.values())
        const locks = async () => (await client.query<{ oid: number; mode: string; kind: string }>(
          `SELECT c.oid::int AS oid, l.mode, c.relkind::text AS kind FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
           WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'`)).rows
          .filter((l) => names.has(l.oid)).map((l) => ({ rel: names.get(l.oid)!, mode: MODE[l.mode]!, table: l.kind === 'r' }))
        // The whole file in one transaction, as migrate runs it, rolled back at the end.
        await client.query('BEGIN')
        let before = await locks()
        for (const statement of statements) {
          await client.query(statement.sql)
          const now = await locks()
          const taken = now.filter((l) => !before.some((b) => b.rel === l.rel && b.mode === l.mode))
          before = now
          const held = now
          if (process.env.DEBUG_LOCKS) console.log(statement.text, JSON.stringify(taken))
          const claimedOn = statement.lock ? statement.lock.on.replace(/^index /, '') : null
          if (statement.lock && existing.has(claimedOn!)) {
            expect(held, `${statement.text}: claims ${statement.lock.mode} on ${claimedOn}`).toContainEqual(expect.objectContaining({ rel: claimedOn, mode: statement.lock.mode }))
            checked += 1
          }
          // Nothing stronger than claimed on a user table (ACCESS SHARE/ROW SHARE from reading are below
          // any claim; a rewrite's locks on the table's own indexes come with the table's).
          for (const lock of taken.filter((l) => l.table && l.rel.startsWith('public.') && RANK.indexOf(l.mode) > RANK.indexOf('ROW SHARE'))) {
            const claim = claimedOn === lock.rel ? statement.lock!.mode : null
            expect(claim === null ? -1 : RANK.indexOf(claim), `${statement.text}: takes ${lock.mode} on ${lock.rel}, the review says ${claim ?? 'nothing'}`).toBeGreaterThanOrEqual(RANK.indexOf(lock.mode))
          }
        }
        await client.query('ROLLBACK')
      }
    } finally {
      await client.end()
    }
    // Record the plan as generated and run the rest (index builds) the usual way.
    await p.generate('review', { allowDestructive: true, ...(options.switch ? { switch: options.switch } : {}) })
    await p.migrate()
    return checked
  }

  it('claims the locks PostgreSQL takes, statement by statement', async () => {
    db = await tier.create()
    await db.query(PGML_EMBED_TEST_DOUBLE)
    const p = await new TestProject(db).withDocumentsTable(first)
    await p.writeMigration('1000000000001_create-notes.sql', NOTES)
    await p.migrate()
    await db.query(`INSERT INTO documents (title, body) VALUES ('a', 'b'), ('c', 'd')`)
    expect(await checkPlan(p)).toBeGreaterThanOrEqual(7)
    await p.writeConfig(second)
    expect(await checkPlan(p)).toBeGreaterThan(4)
    // A staged model change: the shadow, the switch (renames), the drop of the previous column.
    const staged = structuredClone(second)
    staged.tables.notes!.embeddings.summary_vec!.model = { id: 'test/double-b', dimensions: 4 }
    staged.tables.notes!.embeddings.summary_vec!.mode = 'queue'
    await p.writeConfig(staged)
    expect(await checkPlan(p)).toBeGreaterThan(2)
    expect(await checkPlan(p, { switch: 'always' })).toBeGreaterThan(8)
    expect(await checkPlan(p, { dropPrevious: true })).toBeGreaterThanOrEqual(2)
  })
})
