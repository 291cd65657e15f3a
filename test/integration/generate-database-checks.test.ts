import { readdir } from 'node:fs/promises'
import { afterEach, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { runCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

const TINY = { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }

const TABLES = `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text, views integer);
CREATE TABLE notes (body text);
-- Down Migration
DROP TABLE notes;
DROP TABLE documents;
`

/** Everything the checks at the top of a generated migration would refuse, at once. */
function badConfig(suffix: string): PgmlKitConfig {
  return {
    roles: { worker: `no_such_role_${suffix}` },
    tables: {
      documents: {
        fullText: { source: ['nope', 'title'] },
        embeddings: { body_embedding: { source: ['body', 'views'], model: TINY, mode: 'queue' } },
      },
      notes: { embeddings: { note_embedding: { source: 'body', model: TINY, mode: 'app' } } },
      missing_table: { embeddings: { e: { source: 'body', model: TINY, mode: 'queue' } } },
    },
  }
}

const GOOD: PgmlKitConfig = {
  tables: { documents: { fullText: { source: ['title', 'body'] }, embeddings: { body_embedding: { source: ['title', 'body'], model: TINY, mode: 'queue' } } } },
}

describe.each(tiers)('generate and plan check the config against the database given on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  const files = async (p: TestProject) => (await readdir(p.migrationsDir)).sort()

  it('refuse, before writing anything, every table, column, key and role the migrations would refuse, with its config path', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_tables.sql', TABLES)
    await p.writeConfig({ tables: {} })
    await p.migrate()
    const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`
    await p.writeConfig(badConfig(suffix))
    const before = await files(p)

    const generate = await runCli(['generate', '--name', 'embeddings', '--database-url', db.url], { cwd: db.cwd })
    expect(generate.code, generate.stderr).toBe(2)
    expect(await files(p)).toEqual(before)
    const lines = generate.stderr.split('\n')
    const database = /^error pgml-kit\.config\.ts does not match (.*); migrations generated from it would fail there:$/.exec(lines[0]!)?.[1]
    expect(database, generate.stderr).toBeDefined()
    expect(lines.filter((l) => /^  [a-z]/.test(l) && !l.startsWith('  hint')).sort()).toEqual([
      `  roles.worker: role "no_such_role_${suffix}" does not exist in ${database}`,
      '  tables.documents.embeddings.body_embedding.source[1]: column "views" of public.documents is integer, not text (or varchar)',
      '  tables.documents.fullText.source[0]: column "nope" does not exist in public.documents',
      `  tables.missing_table: table public.missing_table does not exist in ${database}`,
      '  tables.notes.primaryKey: (id) is not the primary key (nor a unique, not-null key) of public.notes; set primaryKey to the columns of its primary key',
    ])
    expect(generate.stderr).toMatch(/hint nothing was written: fix the config, or the database/)

    // plan refuses the same, and so does $DATABASE_URL; --json says it as JSON.
    const plan = await runCli(['plan', '--database-url', db.url], { cwd: db.cwd })
    expect(plan.code).toBe(2)
    expect(plan.stderr).toContain('tables.documents.fullText.source[0]: column "nope" does not exist in public.documents')
    const fromEnv = await runCli(['generate', '--name', 'embeddings', '--json'], { cwd: db.cwd, databaseUrl: db.url })
    expect(fromEnv.code).toBe(2)
    expect((JSON.parse(fromEnv.stdout) as { error: { code: string } }).error.code).toBe('CONFIG_DOES_NOT_MATCH_DATABASE')
    expect(await files(p)).toEqual(before)

    // Without a database, generate writes the files as it always did (migrate refuses them, naming the same paths).
    const blind = await runCli(['generate', '--name', 'embeddings'], { cwd: db.cwd })
    expect(blind.code, blind.stderr).toBe(0)
    expect((await files(p)).length).toBeGreaterThan(before.length)
  })

  it('checks what exists and notes, without refusing, what a pending migration of the project may still create', async () => {
    db = await tier.create()
    const p = new TestProject(db)
    // Not applied yet: the tables come with the project's own first migration.
    await p.writeMigration('1000000000000_tables.sql', TABLES)
    await p.writeConfig(GOOD)
    const generate = await runCli(['generate', '--name', 'embeddings', '--database-url', db.url], { cwd: db.cwd })
    expect(generate.code, generate.stderr).toBe(0)
    expect(generate.stderr).toMatch(/note table public\.documents does not exist in .*; pending migration 1000000000000_tables \(not applied there\) may change that, so it is not checked now \(migrate checks it before changing anything\)/)
    expect(generate.stdout).toMatch(/wrote .*_embeddings\.sql/)
    expect((await p.migrate()).ran.length).toBeGreaterThan(1)

    // A pending migration that does not name the column does not excuse it.
    await p.writeMigration('3000000000000_more.sql', '-- Up Migration\nALTER TABLE documents ADD COLUMN summary text;\n-- Down Migration\nALTER TABLE documents DROP COLUMN summary;\n')
    await p.writeConfig({ tables: { documents: { ...GOOD.tables.documents!, embeddings: { ...GOOD.tables.documents!.embeddings, summary_embedding: { source: ['summary', 'abstract'], model: TINY, mode: 'app' } } } } })
    const more = await runCli(['generate', '--name', 'more', '--database-url', db.url], { cwd: db.cwd })
    expect(more.code).toBe(2)
    expect(more.stderr).toContain('tables.documents.embeddings.summary_embedding.source[1]: column "abstract" does not exist in public.documents')
    expect(more.stderr).not.toContain('source[0]')
    expect(more.stderr).toMatch(/ {2}note: column "summary" does not exist in public\.documents; pending migration 3000000000000_more \(not applied there\) may change that/)
  })
})
