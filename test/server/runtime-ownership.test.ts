import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { MODELS_DIR } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { requireServerTier, server, withClient, type TestDatabase } from '../helpers/targets.js'

/**
 * Objects a migration writes, made beforehand by a less privileged role: the migration history
 * table with a trigger, or schema pgml_kit itself. Migrating as a superuser would run that role's
 * trigger (or, through pgml-kit's SECURITY DEFINER trigger functions, its tables' triggers) with
 * superuser rights. migrate must refuse before anything runs.
 */
describe('migrate refuses a runtime schema or history table that a less trusted role owns', () => {
  const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const APP = `pgml_squatter_test_${suffix}`
  let db: TestDatabase
  const admin = (sql: string) => withClient(requireServerTier().url, (c) => c.query(sql))
  beforeAll(async () => admin(`CREATE ROLE ${APP} LOGIN PASSWORD 'app'`))
  afterAll(async () => admin(`DROP ROLE IF EXISTS ${APP}`))
  afterEach(async () => db?.close())

  const asApp = (sql: string) => {
    const u = new URL(db.url)
    u.username = APP
    u.password = 'app'
    return withClient(u.toString(), (c) => c.query(sql))
  }
  const config: PgmlKitConfig = {
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }, mode: 'queue' } } } },
  }
  async function project(): Promise<TestProject> {
    db = await server.create()
    const p = await new TestProject(db).withDocumentsTable(config)
    await p.generate()
    return p
  }
  const superuser = async () => (await db.query<{ s: boolean }>('SELECT rolsuper AS s FROM pg_roles WHERE rolname = $1', [APP]))[0]!.s

  it('a history table made first by another role, with a trigger that would make it superuser', async () => {
    const p = await project()
    // PostgreSQL 14 and older let every role create in public; later versions, whoever is granted it.
    await db.query(`GRANT CREATE ON SCHEMA public TO ${APP}`)
    await asApp(`CREATE TABLE public.pgmigrations (id serial PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL);
      GRANT ALL ON public.pgmigrations TO PUBLIC; GRANT ALL ON SEQUENCE public.pgmigrations_id_seq TO PUBLIC;
      CREATE FUNCTION public.escalate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'ALTER ROLE ${APP} SUPERUSER'; RETURN NEW; END $$;
      CREATE TRIGGER escalate AFTER INSERT ON public.pgmigrations FOR EACH ROW EXECUTE FUNCTION public.escalate()`)
    await expect(p.migrate()).rejects.toThrow(new RegExp(`table pgmigrations belongs to "${APP}".*trigger escalate on pgmigrations \\(function escalate\\(\\)\\) belongs to "${APP}": migrating as "postgres" would run code "${APP}" controls with "postgres"'s rights \\(a superuser\\); nothing was changed`))
    expect(await superuser()).toBe(false)
    expect(await db.query(`SELECT count(*)::int AS n FROM public.pgmigrations`)).toEqual([{ n: 0 }])
    expect(await db.query(`SELECT to_regclass('public.documents') IS NULL AS none`)).toEqual([{ none: true }])
  })

  it('schema pgml_kit made first by a role with CREATE on the database', async () => {
    const p = await project()
    const name = new URL(db.url).pathname.slice(1)
    await db.query(`GRANT CREATE ON DATABASE "${name}" TO ${APP}`)
    await asApp(`CREATE SCHEMA pgml_kit`)
    await expect(p.migrate()).rejects.toThrow(new RegExp(`schema pgml_kit belongs to "${APP}": migrating as "postgres" would run code`))
    expect(await db.query(`SELECT to_regclass('pgml_kit.embedding_jobs') IS NULL AS none, to_regclass('public.documents') IS NULL AS no_table`)).toEqual([{ none: true, no_table: true }])
    // Once a trusted role owns it, migrate goes on.
    await db.query(`ALTER SCHEMA pgml_kit OWNER TO postgres`)
    await p.migrate()
    expect(await db.query(`SELECT count(*)::int AS n FROM pgml_kit.embedding_columns`)).toEqual([{ n: 1 }])
  })
})
