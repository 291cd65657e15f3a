import { describe, expect, it } from 'vitest'
import { EMPTY_STATE } from '../../src/model/ir.js'
import { resolveConfig } from '../../src/model/resolve.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { planMigration } from '../../src/plan/plan-migration.js'
import { checkAgainstDatabase, type LiveSchema, type LiveTable } from '../../src/plan/live-checks.js'
import { originOf, failedLine, renderOrigin } from '../../src/migrations/origin.js'

const MODEL = { id: 'x/tiny', dimensions: 8 }

function table(columns: Record<string, string>, keys: string[][] = [['id']]): LiveTable {
  return { columns: new Map(Object.entries(columns).map(([name, type]) => [name, { type, text: type === 'text' || type.startsWith('character varying') }])), keys }
}

function live(tables: Record<string, LiveTable>, options: { roles?: string[]; pending?: { name: string; text: string }[] } = {}): LiveSchema {
  return { source: 'the test database', tables: new Map(Object.entries(tables)), roles: new Set(options.roles ?? []), pending: options.pending ?? [] }
}

function checksOf(config: PgmlKitConfig, previous: PgmlKitConfig | null = null) {
  return planMigration(previous ? resolveConfig(previous).state : EMPTY_STATE, resolveConfig(config).state).checks
}

const CONFIG: PgmlKitConfig = {
  roles: { app: 'web', worker: ['embedder', 'missing_role'] },
  tables: {
    documents: {
      fullText: { source: ['nope', { column: 'title', weight: 'A' }, 'views'] },
      embeddings: { body_embedding: { source: ['title', 'views', 'gone'], model: MODEL, mode: 'queue' } },
    },
    notes: { schema: 'app', embeddings: { e: { source: 'body', model: MODEL, mode: 'app' } } },
    missing: { embeddings: { e: { source: 'body', model: MODEL, mode: 'app' } } },
  },
}

describe('checkAgainstDatabase: what a generated migration\'s first checks would refuse, found before writing it', () => {
  it('checks a column added to a table renamed in the same change under the table\'s old name, until the rename is applied', () => {
    const previous: PgmlKitConfig = { tables: { documents: { embeddings: { e: { source: 'body', model: MODEL, mode: 'app' } } } } }
    const resolved = resolveConfig({ tables: { articles: { renamedFrom: 'documents', embeddings: { e: { source: 'body', model: MODEL, mode: 'app' }, f: { source: 'title', model: MODEL, mode: 'app' } } } } })
    const checks = planMigration(resolveConfig(previous).state, resolved.state, { tableRenames: resolved.tableRenames }).checks
    expect(checks.added.map((c) => `${c.table}.${c.column}`)).toEqual(['articles.f'])
    const shape = table({ id: 'bigint', title: 'text', body: 'text', e: 'vector(8)' })
    expect(checkAgainstDatabase(checks, live({ 'public.documents': shape })).problems).toEqual([])
    expect(checkAgainstDatabase(checks, live({ 'public.articles': shape })).problems).toEqual([])
    expect(checkAgainstDatabase(checks, live({})).problems).toEqual([{ path: 'tables.articles', message: 'table public.articles does not exist in the test database' }])
  })

  it('reports every problem at once, each with its config path', () => {
    const result = checkAgainstDatabase(checksOf(CONFIG), live({
      'public.documents': table({ id: 'bigint', title: 'text', views: 'integer', search_tsv: 'tsvector' }),
      'app.notes': table({ id: 'bigint', body: 'character varying(200)' }, []),
    }, { roles: ['web', 'embedder'] }))
    expect(result.notes).toEqual([])
    expect(result.problems).toEqual([
      { path: 'roles.worker', message: 'role "missing_role" does not exist in the test database' },
      { path: 'tables.notes.primaryKey', message: '(id) is not the primary key (nor a unique, not-null key) of app.notes; set primaryKey to the columns of its primary key' },
      { path: 'tables.documents.embeddings.body_embedding.source[1]', message: 'column "views" of public.documents is integer, not text (or varchar)' },
      { path: 'tables.documents.embeddings.body_embedding.source[2]', message: 'column "gone" does not exist in public.documents' },
      { path: 'tables.missing', message: 'table public.missing does not exist in the test database' },
      { path: 'tables.documents.fullText.source[0]', message: 'column "nope" does not exist in public.documents' },
      { path: 'tables.documents.fullText.source[2]', message: 'column "views" of public.documents is integer, not text (or varchar)' },
      { path: 'tables.documents.fullText.column', message: 'public.documents already has a column "search_tsv"; choose another name, or drop that column in a migration of your own' },
    ])
  })

  it('accepts a database that has what the config names (a composite unique, not-null key will do)', () => {
    const config: PgmlKitConfig = { tables: { t: { primaryKey: ['a', 'b'], fullText: { source: 'body' }, embeddings: { e: { source: 'body', model: MODEL, mode: 'queue' } } } } }
    expect(checkAgainstDatabase(checksOf(config), live({ 'public.t': table({ a: 'int', b: 'int', body: 'text' }, [['b', 'a']]) }))).toEqual({ problems: [], notes: [] })
  })

  it('notes instead of refusing what a pending migration of the project names, and only that', () => {
    const pending = [{ name: '1000_create', text: 'CREATE TABLE Missing (id bigint PRIMARY KEY, body text);\nCREATE ROLE missing_role;\nALTER TABLE documents ADD COLUMN gone text;' }]
    const result = checkAgainstDatabase(checksOf(CONFIG), live({
      'public.documents': table({ id: 'bigint', title: 'text', views: 'integer' }),
      'app.notes': table({ id: 'bigint', body: 'text' }),
    }, { roles: ['web', 'embedder'], pending }))
    expect(result.problems.map((p) => p.path)).toEqual([
      'tables.documents.embeddings.body_embedding.source[1]', 'tables.documents.fullText.source[0]', 'tables.documents.fullText.source[2]',
    ])
    expect(result.notes).toEqual([
      'role "missing_role" does not exist in the test database; pending migration 1000_create (not applied there) may change that, so it is not checked now (migrate checks it before changing anything)',
      'column "gone" does not exist in public.documents; pending migration 1000_create (not applied there) may change that, so it is not checked now (migrate checks it before changing anything)',
      'table public.missing does not exist in the test database; pending migration 1000_create (not applied there) may change that, so it is not checked now (migrate checks it before changing anything)',
    ])
  })

  it('checks only what the plan adds or changes', () => {
    const changed: PgmlKitConfig = { tables: { documents: { embeddings: { body_embedding: { source: ['title', 'summary'], model: MODEL, mode: 'queue' } } } } }
    const before: PgmlKitConfig = { tables: { documents: { embeddings: { body_embedding: { source: ['title'], model: MODEL, mode: 'queue' } } } } }
    // The key is not checked again for a column that exists; the new source is.
    const result = checkAgainstDatabase(checksOf(changed, before), live({ 'public.documents': table({ title: 'text', body_embedding: 'vector(8)' }, []) }))
    expect(result.problems).toEqual([{ path: 'tables.documents.embeddings.body_embedding.source[1]', message: 'column "summary" does not exist in public.documents' }])
    expect(checkAgainstDatabase(checksOf(before, before), live({}))).toEqual({ problems: [], notes: [] })
  })
})

describe('origins: which config object a statement of a generated file comes from', () => {
  const section = ['-- Up Migration', 'SET LOCAL lock_timeout = \'5s\';', `${renderOrigin(null)}\nDO $$ BEGIN END $$;`,
    `${renderOrigin('tables.documents.fullText')}\nALTER TABLE "documents" ADD COLUMN "search_tsv" tsvector;`, 'COMMENT ON COLUMN "documents"."search_tsv" IS \'x\';',
    `${renderOrigin('tables.a\nb.embeddings.c')}\nALTER TABLE "a\nb" ADD COLUMN "c" vector(8);`].join('\n\n')

  it('is the last marker up to the statement, none for pgml-kit\'s own steps, and a name cannot forge a marker', () => {
    expect(originOf(section, 'SET LOCAL lock_timeout = \'5s\';')).toBeNull()
    expect(originOf(section, `${renderOrigin(null)}\nDO $$ BEGIN END $$;`)).toBeNull()
    expect(originOf(section, `${renderOrigin('tables.documents.fullText')}\nALTER TABLE "documents" ADD COLUMN "search_tsv" tsvector;`)).toBe('tables.documents.fullText')
    expect(originOf(section, 'COMMENT ON COLUMN "documents"."search_tsv" IS \'x\';')).toBe('tables.documents.fullText')
    expect(originOf(section, 'ALTER TABLE "a\nb" ADD COLUMN "c" vector(8);')).toBe('tables.a\\nb.embeddings.c')
    // A file run as one query: its one object, if it holds one.
    expect(originOf(section, null)).toBeNull()
    expect(originOf(`${renderOrigin('tables.t.embeddings.e.indexes')}\nDROP INDEX x;\n\nRESET lock_timeout;`, null)).toBe('tables.t.embeddings.e.indexes')
  })

  it('shows the failing line: at the error position (in characters), else the first that is not a comment', () => {
    expect(failedLine(`${renderOrigin('x')}\n-- squawk-ignore a\nALTER TABLE "t" ADD COLUMN "c" int;`, null)).toBe('ALTER TABLE "t" ADD COLUMN "c" int;')
    expect(failedLine('SELECT 1;\nSELECT "😀" + nope;', 20)).toBe('SELECT "😀" + nope;')
    expect(failedLine(`SELECT '${'x'.repeat(200)}'`, null, 20)).toBe(`SELECT '${'x'.repeat(11)}…`)
  })
})
