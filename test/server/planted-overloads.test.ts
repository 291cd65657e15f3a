import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { createKit } from '../../src/query/create-kit.js'
import { readStatus } from '../../src/status.js'
import { migrate } from '../../src/migrations/run.js'
import { readSnapshot } from '../../src/migrations/snapshot.js'
import { backfill } from '../../src/worker/backfill.js'
import { retryDeadLetters } from '../../src/worker/queue.js'
import { runWorker } from '../../src/worker/run-worker.js'
import { checkParity } from '../../src/parity/check-parity.js'
import { checkIndex, recordCheck } from '../../src/indexes/check.js'
import { readColumnWithCopies } from '../../src/db/live-catalog.js'
import { localEmbedderLoader } from '../../src/embed/embedder-for-config.js'
import { MODELS_DIR, TINY_16, TINY_32, loadTiny } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { server, withClient, type TestDatabase } from '../helpers/targets.js'
import { leastPrivilegeRoles } from '../helpers/roles.js'
import { describeCalls, unqualifiedCalls } from '../helpers/qualified.js'

/**
 * A role that may create objects in `public` (every role on PostgreSQL 14 and older; later, any
 * role granted CREATE on it) defines functions and operators there whose argument types match
 * pgml-kit's calls more exactly than the built-ins do. PostgreSQL prefers an exact match to a
 * built-in that needs a conversion, whatever the search_path order, so pgml-kit's own statements
 * would run that role's code as the migrating role, the worker role, or the role that searches.
 * Each planted object counts its calls (in a sequence, which no rollback takes back) and, run by
 * another role, tries to grant its owner UPDATE on the catalog.
 */

/** Types a pgml-kit statement can apply an operator to: catalog columns, keys, vectors' neighbours, source columns, parameters. */
const TYPES = ['text', 'varchar', 'name', '"char"', 'jsonb', 'json', 'smallint', 'integer', 'bigint', 'real', 'double precision', 'numeric', 'boolean',
  'oid', 'regclass', 'regtype', 'regnamespace', 'regprocedure', 'regconfig', 'timestamptz', 'timestamp', 'interval', 'tsvector', 'tsquery', 'text[]', 'bigint[]', 'int2vector']
const OPERATORS = ['=', '<>', '<', '<=', '>', '>=', '||', '->', '->>', '+', '-', '*', '/', '@@', '~~']

/** The session settings the test's own statements run with: nothing of schema public is found unqualified. */
const PINNED = 'SET search_path = pg_catalog, pg_temp; '

describe('functions and operators planted in schema public never run as pgml-kit\'s roles', () => {
  const roles = leastPrivilegeRoles()
  const ATTACKER = roles.app
  const WORKER = roles.worker

  let db: TestDatabase
  const pools: pg.Pool[] = []
  afterEach(async () => {
    for (const pool of pools.splice(0)) await pool.end()
    await db?.close()
  })

  // Every statement pgml-kit sends while `capturing`: none may call a function by an unqualified name.
  const sent: string[] = []
  let capturing = false
  const query = pg.Client.prototype.query
  beforeAll(() => {
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      if (capturing) {
        const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: unknown } | undefined)?.text
        if (typeof text === 'string') sent.push(text)
      }
      return (query as (...a: unknown[]) => unknown).apply(this, args)
    } as typeof query
  })
  afterAll(() => {
    pg.Client.prototype.query = query
  })
  async function kit<T>(what: () => Promise<T>): Promise<T> {
    capturing = true
    try {
      return await what()
    } finally {
      capturing = false
    }
  }

  const as = (role: 'app' | 'worker') => roles.as(db.url, role)
  /** The test's own statements: as the administrator (or `url`), with nothing of public found unqualified. */
  const admin = <R extends pg.QueryResultRow>(sql: string, url = db.url) =>
    withClient(url, async (c) => {
      await c.query(PINNED)
      return (await c.query<R>(sql)).rows
    })

  const MODEL = { id: TINY_16.id, dimensions: TINY_16.dimensions, documentPrefix: TINY_16.documentPrefix, queryPrefix: TINY_16.queryPrefix }
  const MODEL_B = { id: TINY_32.id, dimensions: TINY_32.dimensions }
  const config = (bodyModel: typeof MODEL | typeof MODEL_B): PgmlKitConfig => ({
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    roles: { app: ATTACKER, worker: WORKER },
    tables: {
      documents: {
        embeddings: {
          // varchar sources: md5(varchar) and varchar || text have no exact built-in match.
          body_embedding: { source: ['title', 'body'], model: bodyModel, mode: 'queue', indexes: [{ method: 'hnsw', distance: 'cosine', build: 'auto' }] },
          title_embedding: { source: 'title', model: MODEL, mode: 'trigger', indexes: [{ method: 'hnsw', distance: 'l2' }] },
          summary_embedding: { source: ['body', 'title'], model: MODEL, mode: 'generated' },
        },
        fullText: { source: ['title', { column: 'body', weight: 'B' }] },
      },
    },
  })

  /** What the attacker plants before pgml-kit's migrations run: functions and, for every pair of TYPES, each operator PostgreSQL has no exact built-in for. */
  async function plant(): Promise<void> {
    await admin(`GRANT CREATE ON SCHEMA public TO ${ATTACKER}`)
    await admin(`
      CREATE SEQUENCE public.planted_calls_seq;
      GRANT USAGE ON SEQUENCE public.planted_calls_seq TO PUBLIC;
      CREATE TABLE public.planted_calls (called_as name NOT NULL, what text NOT NULL);
      GRANT INSERT ON public.planted_calls TO PUBLIC;
      CREATE FUNCTION public.planted(what text) RETURNS void LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_catalog.nextval('public.planted_calls_seq');
        INSERT INTO public.planted_calls VALUES (current_user, what);
        IF current_user OPERATOR(pg_catalog.<>) '${ATTACKER}' THEN
          BEGIN
            EXECUTE 'GRANT UPDATE ON pgml_kit.embedding_columns TO ${ATTACKER}';
          EXCEPTION WHEN others THEN NULL;
          END;
        END IF;
      END $$;
      CREATE FUNCTION public.md5(varchar) RETURNS text LANGUAGE plpgsql AS $$ BEGIN PERFORM public.planted('md5(varchar)'); RETURN pg_catalog.md5($1::text); END $$;
      CREATE FUNCTION public.jsonb_build_object(text, bigint) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN PERFORM public.planted('jsonb_build_object(text, bigint)'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
      CREATE FUNCTION public.jsonb_populate_record(public.documents, jsonb) RETURNS public.documents LANGUAGE plpgsql AS $$ BEGIN PERFORM public.planted('jsonb_populate_record(documents, jsonb)'); RETURN pg_catalog.jsonb_populate_record($1, $2); END $$;
      CREATE FUNCTION public.array_to_json(real[]) RETURNS json LANGUAGE plpgsql AS $$ BEGIN PERFORM public.planted('array_to_json(real[])'); RETURN pg_catalog.array_to_json($1); END $$;
      CREATE FUNCTION public.power(integer, integer) RETURNS double precision LANGUAGE plpgsql AS $$ BEGIN PERFORM public.planted('power(integer, integer)'); RETURN pg_catalog.power($1::float8, $2::float8); END $$;
      CREATE FUNCTION public.make_interval(secs double precision) RETURNS interval LANGUAGE plpgsql AS $$ BEGIN PERFORM public.planted('make_interval(secs)'); RETURN pg_catalog.make_interval(secs => secs); END $$;
      CREATE FUNCTION public.to_tsvector(regconfig, varchar) RETURNS tsvector LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM public.planted('to_tsvector(regconfig, varchar)'); RETURN pg_catalog.to_tsvector($1, $2::text); END $$;
      ${['text[]', 'bigint[]', 'jsonb[]', 'boolean[]'].map((t) => `CREATE FUNCTION public.unnest(${t}) RETURNS SETOF ${t.slice(0, -2)} LANGUAGE plpgsql AS $$ BEGIN PERFORM public.planted('unnest(${t})'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;`).join('\n')}
    `, as('app'))
    // One statement per operator, generated from the catalog: a few thousand in all.
    const statements = await admin<{ sql: string }>(`
      WITH t(ty) AS (SELECT * FROM pg_catalog.unnest(ARRAY[${TYPES.map((t) => `'${t.replaceAll("'", "''")}'`).join(', ')}])),
      o(op) AS (SELECT * FROM pg_catalog.unnest(ARRAY[${OPERATORS.map((o) => `'${o}'`).join(', ')}])),
      pairs AS (
        SELECT o.op, l.ty AS l, r.ty AS r, pg_catalog.row_number() OVER () AS n FROM o, t AS l, t AS r
        WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_operator x WHERE x.oprname OPERATOR(pg_catalog.=) o.op
          AND x.oprleft OPERATOR(pg_catalog.=) l.ty::pg_catalog.regtype::pg_catalog.oid AND x.oprright OPERATOR(pg_catalog.=) r.ty::pg_catalog.regtype::pg_catalog.oid))
      SELECT pg_catalog.format('CREATE FUNCTION public.planted_op_%s(%s, %s) RETURNS %s LANGUAGE plpgsql AS %L; CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.planted_op_%s);',
        n, l, r, CASE WHEN op IN ('||', '->>') THEN 'text' WHEN op OPERATOR(pg_catalog.=) '->' THEN 'jsonb' WHEN op IN ('+', '-', '*', '/') THEN l ELSE 'boolean' END,
        pg_catalog.format('BEGIN PERFORM public.planted(%L); RETURN NULL; END', pg_catalog.format('%s(%s, %s)', op, l, r)), op, l, r, n) AS sql
      FROM pairs`)
    expect(statements.length).toBeGreaterThan(5000)
    await withClient(as('app'), async (c) => {
      for (let i = 0; i < statements.length; i += 500) await c.query(statements.slice(i, i + 500).map((s) => s.sql).join('\n'))
    })
  }

  /** Planted once the catalog exists: to_jsonb of its row type, and jsonb_build_array of 15 jsonb (its fingerprint's shape). */
  async function plantOnCatalog(): Promise<void> {
    await admin(`
      CREATE FUNCTION public.to_jsonb(r pgml_kit.embedding_columns) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN PERFORM public.planted('to_jsonb(embedding_columns)'); RETURN pg_catalog.to_jsonb(r); END $$;
      CREATE FUNCTION public.jsonb_build_array(${Array.from({ length: 15 }, () => 'jsonb').join(', ')}) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN PERFORM public.planted('jsonb_build_array(jsonb × 15)'); RETURN '[]'; END $$;
    `, as('app'))
  }

  async function planted(): Promise<{ calls: number; who: { called_as: string; what: string }[]; grabbed: boolean }> {
    const [seq] = await admin<{ n: string; called: boolean }>('SELECT last_value AS n, is_called AS called FROM public.planted_calls_seq')
    const who = await admin<{ called_as: string; what: string }>('SELECT called_as::text, what FROM public.planted_calls')
    const [grab] = await admin<{ ok: boolean }>(`SELECT pg_catalog.has_table_privilege('${ATTACKER}', 'pgml_kit.embedding_columns', 'UPDATE') AS ok`)
    return { calls: seq!.called ? Number(seq!.n) : 0, who, grabbed: grab!.ok }
  }

  it('through migrate, status, drift, the worker, backfill, parity, index check, queue retry, a staged model switch and searches', async () => {
    db = await server.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_create-documents.sql', `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title varchar(200), body varchar, department text);
GRANT SELECT, INSERT, UPDATE, DELETE ON documents TO ${ATTACKER};
-- Down Migration
DROP TABLE documents;
`)
    await p.writeConfig(config(MODEL))
    await kit(() => p.migrate())
    await plant()

    // The migrations: runtime schema, columns (one generated from the varchar sources), triggers, queue, indexes, grants.
    await p.generate('add-embeddings')
    await kit(() => p.migrate())
    await plantOnCatalog()
    await admin(`INSERT INTO public.documents (title, body, department)
      SELECT 'page ' OPERATOR(pg_catalog.||) i::text, CASE WHEN i OPERATOR(pg_catalog.%) 3 OPERATOR(pg_catalog.=) 0 THEN 'children play in the park' ELSE 'opening hours of the library' END, 'x'
      FROM pg_catalog.generate_series(1, 12) AS i`, as('app'))

    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const body = loaded.state.embeddingColumns.find((c) => c.column === 'body_embedding')!
    const title = loaded.state.embeddingColumns.find((c) => c.column === 'title_embedding')!
    const status = (url: string, drift = false) => kit(async () => readStatus({
      databaseUrl: url, cwd: db.cwd, dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state,
      ...(drift ? { drift: (await readSnapshot(loaded.migrationsDir)).state } : {}),
    }))

    // The worker role embeds the queue; backfill runs as the worker and as the migrating role.
    const work = (url: string) => kit(() => runWorker({ url, columns: loaded.state.embeddingColumns, loadEmbedder: localEmbedderLoader(loaded.embedder), once: true }))
    expect(await work(as('worker'))).toMatchObject({ written: 12, failed: 0 })
    await admin(`ALTER TABLE public.documents DISABLE TRIGGER USER; UPDATE public.documents SET body_embedding = NULL, title_embedding = NULL WHERE id OPERATOR(pg_catalog.<=) 4; ALTER TABLE public.documents ENABLE TRIGGER USER`)
    expect(await kit(() => backfill({ url: as('worker'), column: body, loadEmbedder: localEmbedderLoader(loaded.embedder) }))).toMatchObject({ written: 4 })
    expect(await kit(() => backfill({ url: as('worker'), column: title }))).toMatchObject({ how: 'database', written: 4 })
    expect(await kit(() => backfill({ url: db.url, column: body, loadEmbedder: localEmbedderLoader(loaded.embedder), all: true }))).toMatchObject({ written: 12 })
    expect(await kit(() => backfill({ url: db.url, column: title, all: true }))).toMatchObject({ written: 12 })
    expect(await work(db.url)).toMatchObject({ failed: 0 })

    // status, with the privilege check and drift.
    expect((await status(db.url, true)).drift).toEqual([])
    expect((await status(db.url)).missingPrivileges).toEqual([])

    // parity, index check (recorded in the catalog), queue retry.
    const embedder = await loadTiny()
    expect((await kit(() => checkParity({ url: db.url, column: body, embedder, sample: 5 }))).ok).toBe(true)
    expect((await kit(() => checkParity({ url: db.url, column: title, embedder, texts: ['a park'] }))).ok).toBe(true)
    await kit(() => withClient(db.url, async (c) => {
      const result = await checkIndex(c, loaded.state, { column: 'documents.body_embedding', queries: 3, k: 3 })
      expect(await recordCheck(c, loaded.state, result)).toBe(true)
    }))
    await admin(`INSERT INTO pgml_kit.embedding_dead_letters (table_schema, table_name, column_name, row_key, attempts, first_enqueued_at)
      VALUES ('public', 'documents', 'body_embedding', '{"id": 1}', 5, pg_catalog.now())`)
    expect(await kit(() => withClient(as('worker'), (c) => retryDeadLetters(c)))).toBe(1)
    expect(await work(as('worker'))).toMatchObject({ written: 1, failed: 0 })

    // Searches through createKit, by a role other than the attacker: vector (local and in-database embedding) and hybrid.
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    pools.push(pool)
    type Kit = { search(r: string, q: string, o: object): { select(c: string[]): { execute(): Promise<unknown[]> } }; hybridSearch(r: string, q: string, o: object): { select(c: string[]): { execute(): Promise<unknown[]> } } }
    const local = createKit(loaded.source, { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool }) }), cwd: db.cwd }) as unknown as Kit
    const inDatabase = createKit(loaded.source, { db: new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool }) }), cwd: db.cwd, embedIn: 'database' }) as unknown as Kit
    const searches = async () => {
      expect(await kit(() => local.search('documents.body_embedding', 'a park', { k: 3 }).select(['title']).execute())).toHaveLength(3)
      expect(await kit(() => inDatabase.search('documents.title_embedding', 'a park', { k: 3 }).select(['title']).execute())).toHaveLength(3)
      expect(await kit(() => local.hybridSearch('documents.body_embedding', 'park', { k: 3 }).select(['title']).execute())).toHaveLength(3)
    }
    await searches()

    // A staged model change: the shadow, filled by the worker and backfill, then the switch (its checks run as the migrating role).
    await p.writeConfig(config(MODEL_B))
    await p.generate('switch-model', { allowDestructive: false })
    await kit(() => p.migrate())
    const staged = await loadConfig('pgml-kit.config.ts', db.cwd)
    for (const column of await kit(() => readColumnWithCopies(db.url, staged.state.embeddingColumns.find((c) => c.column === 'body_embedding')!))) {
      await kit(() => backfill({ url: as('worker'), column, loadEmbedder: localEmbedderLoader(staged.embedder) }))
    }
    await p.generate('switch-model', { switch: 'always', allowDestructive: false })
    const switched = await kit(() => migrate({ databaseUrl: db.databaseUrl, cwd: db.cwd, dir: staged.migrationsDir, settings: staged.migrations }))
    expect(switched.ran).toHaveLength(1)
    expect(await admin<{ model_id: string }>(`SELECT model_id FROM pgml_kit.embedding_columns WHERE column_name OPERATOR(pg_catalog.=) 'body_embedding'`)).toEqual([{ model_id: MODEL_B.id }])
    await searches()
    expect(await kit(() => runWorker({ url: as('worker'), columns: staged.state.embeddingColumns, loadEmbedder: localEmbedderLoader(staged.embedder), once: true }))).toMatchObject({ failed: 0 })

    // Nothing planted ran, and the attacker holds nothing it did not have.
    expect(await planted()).toEqual({ calls: 0, who: [], grabbed: false })
    // And every statement pgml-kit sent names its functions with their schema (node-pg-migrate's own
    // history row takes now(), which has no arguments to match better: pg_catalog's is found first).
    const ownHistory = /^INSERT INTO "[^"]+"\."[^"]+" \(name, run_on\) VALUES \('[^']*', NOW\(\)\);$/
    const unqualified = [...new Set(sent)].filter((s) => !ownHistory.test(s.trim())).flatMap((s) => unqualifiedCalls(s))
    expect(describeCalls(unqualified)).toEqual([])
    expect(sent.length).toBeGreaterThan(100)
  })
})
