import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { TestProject } from '../helpers/project.js'
import { leastPrivilegeRoles } from '../helpers/roles.js'
import { server, withClient, type TestDatabase } from '../helpers/targets.js'

/**
 * pgml-kit's trigger functions run as the role that migrates (SECURITY DEFINER) on tables another
 * role may own. That role may later change a key or source column to a type of its own: an enum
 * with a cast to json (the queue's job key is built with jsonb_build_object, which calls such a
 * cast) made it superuser when the migrating role was one. The function now refuses values of
 * types owned by a role that is neither a superuser nor its owner, before touching them.
 */
const CONFIG: PgmlKitConfig = {
  tables: { docs: { embeddings: { body_embedding: { source: 'body', model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }, mode: 'queue' } } } },
}

describe('trigger functions on a table another role owns (server)', () => {
  const roles = leastPrivilegeRoles()
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function setup(): Promise<TestProject> {
    db = await server.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_docs.sql', `-- Up Migration
CREATE TABLE public.docs (id text PRIMARY KEY, body text);
ALTER TABLE public.docs OWNER TO ${roles.app};
CREATE SCHEMA lp AUTHORIZATION ${roles.app};
-- Down Migration
DROP SCHEMA lp CASCADE; DROP TABLE public.docs;
`)
    await p.writeConfig(CONFIG)
    await p.generate('queue')
    await p.migrate()
    return p
  }
  const superuser = async () => (await db.query<{ s: boolean }>(`SELECT rolsuper AS s FROM pg_roles WHERE rolname = '${roles.app}'`))[0]!.s
  const attack = () => withClient(roles.as(db.url, 'app'), async (c) => {
    await c.query(`CREATE TYPE lp.e AS ENUM ('a', 'b');
      CREATE FUNCTION lp.e2j(lp.e) RETURNS json LANGUAGE plpgsql AS $$ BEGIN
        IF current_user <> '${roles.app}' THEN EXECUTE 'ALTER ROLE ${roles.app} SUPERUSER'; END IF; RETURN to_json($1::text); END $$;
      CREATE CAST (lp.e AS json) WITH FUNCTION lp.e2j(lp.e);
      ALTER TABLE public.docs ALTER COLUMN id TYPE lp.e USING 'a'::lp.e`)
    return c.query(`INSERT INTO public.docs VALUES ('b', 'hello')`).then(() => null, (error: Error) => error)
  })

  it('the owner turns the key into its own enum with a cast to json: the write is refused, naming the column and type, and no cast runs as the migrating role', async () => {
    await setup()
    // Ordinary writes of the owner are queued.
    await withClient(roles.as(db.url, 'app'), (c) => c.query(`INSERT INTO public.docs VALUES ('x', 'hello'); UPDATE public.docs SET body = 'hi'; DELETE FROM public.docs`))
    const error = await attack()
    expect(error?.message).toMatch(/public\.docs column id \(lp\.e\) is of a type owned by a role that is neither a superuser nor the owner of/)
    expect(await superuser()).toBe(false)
  })

  it('a function generated before the guard is replaced in place by the next generate; down puts the old body back', async () => {
    const p = await setup()
    // The snapshot as the previous release wrote it: no typeGuard.
    const path = join(p.migrationsDir, '.pgml-kit-snapshot.json')
    const snapshot = JSON.parse(await readFile(path, 'utf8')) as { state: { embeddingColumns: Record<string, unknown>[] } }
    for (const c of snapshot.state.embeddingColumns) delete c.typeGuard
    await writeFile(path, JSON.stringify(snapshot, null, 2))
    const [file] = await p.generate('guard')
    expect(await readFile(file!, 'utf8')).toMatch(/\[safe\] +replace the queue function of public\.docs\.body_embedding: it refuses source and key values/)
    await p.migrate()
    const body = async () => (await db.query<{ src: string }>("SELECT prosrc AS src FROM pg_proc WHERE proname LIKE 'pgml_kit_enqueue%' OR proname LIKE '%body_embedding%' ORDER BY oid DESC LIMIT 1"))[0]!.src
    expect(await body()).toMatch(/pgml_kit_foreign/)
    await p.migrate('down', 1)
    expect(await body()).not.toMatch(/pgml_kit_foreign/)
    await p.migrate()
    expect(await attack()).toBeInstanceOf(Error)
    expect(await superuser()).toBe(false)
    expect(await p.generate('again')).toEqual([])
  })
})
