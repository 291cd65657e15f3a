import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { readStatus } from '../../src/status.js'
import { loadConfig } from '../../src/config/load.js'
import { MODELS_DIR } from '../helpers/embedders.js'
import { runCli } from '../helpers/cli.js'
import { requireServerTier, server, withClient, type TestDatabase } from '../helpers/targets.js'
import { TestProject } from '../helpers/project.js'

/**
 * A database where an administrator installed pgml_compat and the application's migrations run as
 * a role that is not a superuser (the owner of the app's schema): README, "Security model", the
 * grants an administrator gives. Each case of the review's report is here: no grant on pgml at all,
 * USAGE without the grant option, and USAGE WITH GRANT OPTION.
 */
describe('pgml_compat installed by an administrator, migrations run by a non-superuser owner', () => {
  const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const OWNER = `pgml_owner_test_${suffix}`
  const APP = `pgml_app_rw_test_${suffix}`
  // Passwords that are not part of any role name: the CLI masks a password wherever it appears in what it prints.
  const OWNER_PW = 'Kq7-owner-pw'
  const APP_PW = 'Zr4-app-pw'
  let db: TestDatabase
  const admin = (sql: string) => withClient(requireServerTier().url, (c) => c.query(sql))
  beforeAll(async () => admin(`CREATE ROLE ${OWNER} LOGIN PASSWORD '${OWNER_PW}'; CREATE ROLE ${APP} LOGIN PASSWORD '${APP_PW}'`))
  afterAll(async () => admin(`DROP ROLE IF EXISTS ${OWNER}; DROP ROLE IF EXISTS ${APP}`))
  afterEach(async () => db?.close())

  const as = (role: string, password: string) => {
    const u = new URL(db.url)
    u.username = role
    u.password = password
    return u.toString()
  }

  /** The owner's project: a trigger-mode column (pgml.embed in the writing transaction) and an app role. */
  async function project(): Promise<TestProject> {
    db = await server.create()
    const name = new URL(db.url).pathname.slice(1)
    // What an administrator does for an application: a database it owns, pgml_compat and pgvector installed.
    await db.query(`ALTER DATABASE "${name}" OWNER TO ${OWNER}; ALTER SCHEMA public OWNER TO ${OWNER};
      CREATE EXTENSION vector; CREATE EXTENSION pgml_compat CASCADE`)
    const p = new TestProject({ ...db, databaseUrl: as(OWNER, OWNER_PW) })
    await p.writeMigration('1000000000000_create-documents.sql', `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, body text);
GRANT SELECT, INSERT, UPDATE, DELETE ON documents TO ${APP};
-- Down Migration
DROP TABLE documents;
`)
    const config: PgmlKitConfig = {
      embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
      roles: { app: APP },
      tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }, mode: 'trigger' } } } },
    }
    await p.writeConfig(config)
    await p.generate()
    return p
  }
  const tables = async () => (await db.query<{ t: string }>(`SELECT string_agg(relname, ',' ORDER BY relname) AS t FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'`))[0]!.t

  it('no grant on pgml: migrate refuses before changing anything, naming the grant an administrator gives', async () => {
    const p = await project()
    const cli = await runCli(['migrate', '--database-url', as(OWNER, OWNER_PW)], { cwd: db.cwd })
    expect(cli.code).toBe(1)
    expect(cli.stderr).toContain(`may not use schema pgml (installed by an administrator, with no USAGE granted to "${OWNER}"); nothing was changed`)
    expect(cli.stderr).toContain(`GRANT USAGE ON SCHEMA pgml TO "${OWNER}" WITH GRANT OPTION;`)
    expect(cli.stderr).not.toMatch(/permission denied|at .*\.js:\d+/)
    expect(await tables()).toBeNull()
    await expect(p.migrate()).rejects.toThrow(/PGML_NO_USAGE|may not use schema pgml/)
  })

  it('pgml_compat available but not installed: a non-superuser owner is told what the administrator runs, before anything changes', async () => {
    await project()
    await db.query('DROP EXTENSION pgml_compat')
    const cli = await runCli(['migrate', '--database-url', as(OWNER, OWNER_PW)], { cwd: db.cwd })
    expect(cli.code).toBe(1)
    expect(cli.stderr).toContain('installing it needs a superuser')
    expect(cli.stderr).toContain(`CREATE EXTENSION pgml_compat CASCADE; GRANT USAGE ON SCHEMA pgml TO "${OWNER}" WITH GRANT OPTION;`)
    expect(await tables()).toBeNull()
  })

  it('USAGE without the grant option: migrate succeeds with one notice naming the administrator\'s GRANT; status says the administrator grants it; writes embed', async () => {
    const p = await project()
    await db.query(`GRANT USAGE ON SCHEMA pgml TO ${OWNER}`)
    const cli = await runCli(['migrate', '--database-url', as(OWNER, OWNER_PW)], { cwd: db.cwd })
    expect(cli.code, cli.stderr).toBe(0)
    const output = cli.stdout + cli.stderr
    expect(output).not.toMatch(/no privileges were granted/)
    expect(output.match(/holds no USAGE WITH GRANT OPTION on schema pgml/g)).toHaveLength(1)
    expect(output).toContain(`an administrator runs: GRANT USAGE ON SCHEMA "pgml" TO "${APP}";`)
    // The app role writes; the SECURITY DEFINER trigger embeds for it.
    await withClient(as(APP, APP_PW), (c) => c.query(`INSERT INTO documents (title, body) VALUES ('Homes', 'for families')`))
    expect(await db.query(`SELECT vector_dims(body_embedding) AS d FROM documents`)).toEqual([{ d: 16 }])
    const loaded = await loadConfig('pgml-kit.config.ts', db.cwd)
    const status = await readStatus({ cwd: db.cwd, databaseUrl: as(OWNER, OWNER_PW), dir: loaded.migrationsDir, settings: loaded.migrations, state: loaded.state })
    expect(status.missingPrivileges).toEqual([{ role: APP, purpose: 'app', missing: 'USAGE on schema pgml', grantedBy: 'administrator', fix: `GRANT USAGE ON SCHEMA "pgml" TO "${APP}";` }])
    const printed = await runCli(['status', '--database-url', as(OWNER, OWNER_PW)], { cwd: db.cwd })
    expect(printed.stdout).toContain('an administrator grants it')
    expect(printed.stdout).not.toContain('pgml-kit migrate grants it')
    // Down reverts cleanly, with nothing to revoke on pgml.
    await p.migrate('down', 10)
  })

  it('USAGE WITH GRANT OPTION: migrate passes USAGE on to the app role with no notice, and down takes it back', async () => {
    const p = await project()
    await db.query(`GRANT USAGE ON SCHEMA pgml TO ${OWNER} WITH GRANT OPTION`)
    const result = await runCli(['migrate', '--database-url', as(OWNER, OWNER_PW)], { cwd: db.cwd })
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout + result.stderr).not.toMatch(/GRANT OPTION|no privileges were granted/)
    expect(await db.query(`SELECT has_schema_privilege($1, 'pgml', 'USAGE') AS u`, [APP])).toEqual([{ u: true }])
    await withClient(as(APP, APP_PW), (c) => c.query(`INSERT INTO documents (title, body) VALUES ('Homes', 'for families')`))
    const [v] = await withClient(as(APP, APP_PW), async (c) => (await c.query(`SELECT pgml.embed('pgml-kit/tiny-bert-16', 'x') AS v`)).rows)
    expect(v.v).toHaveLength(16)
    await p.migrate('down', 10)
    expect(await db.query(`SELECT has_schema_privilege($1, 'pgml', 'USAGE') AS u`, [APP])).toEqual([{ u: false }])
  })

  it('training as code as the non-superuser owner: refused with the grant to ask for, then trains and deploys as a member of pgml_trainer', async () => {
    db = await server.create()
    const name = new URL(db.url).pathname.slice(1)
    await db.query(`ALTER DATABASE "${name}" OWNER TO ${OWNER}; ALTER SCHEMA public OWNER TO ${OWNER}; CREATE EXTENSION pgml_compat CASCADE;
      GRANT USAGE ON SCHEMA pgml TO ${OWNER} WITH GRANT OPTION`)
    const p = new TestProject({ ...db, databaseUrl: as(OWNER, OWNER_PW) })
    await p.writeMigration('1000000000000_create-houses.sql', `-- Up Migration
CREATE TABLE houses AS SELECT (i % 50)::float8 AS size, (i % 7)::float8 AS age, (3 * (i % 50) - 2 * (i % 7))::float8 AS price FROM generate_series(1, 200) AS i;
-- Down Migration
DROP TABLE houses;
`)
    await p.writeConfig({ tables: {}, models: { houses: { task: 'regression', relation: 'houses', target: 'price', algorithm: 'linear' } } })
    await p.generate()
    await p.migrate()
    const cli = (...args: string[]) => runCli([...args, '--database-url', as(OWNER, OWNER_PW)], { cwd: db.cwd })
    const refused = await cli('train', 'houses')
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('this role may not train models (project "houses"): permission denied for function train')
    expect(refused.stderr).toContain('GRANT pgml_trainer TO')
    await db.query(`GRANT pgml_trainer TO ${OWNER}`)
    const trained = await cli('train', 'houses')
    expect(trained.code, trained.stderr).toBe(0)
    expect((await cli('deploy', 'houses', '--strategy', 'most_recent')).code).toBe(0)
    expect((await cli('models', 'houses')).stdout).toMatch(/deployed/)
    expect(await db.query(`SELECT count(*)::int AS n FROM pgml.models`)).toEqual([{ n: 1 }])
  })
})
