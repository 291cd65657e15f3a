import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { MODELS_DIR } from '../helpers/embedders.js'
import { TestProject } from '../helpers/project.js'
import { requireServerTier, server, withClient, type TestDatabase } from '../helpers/targets.js'

/**
 * The in-database ML's security model (README, "Security model"), on the server tier, the way the
 * attack of the security review went: a role that may train wrote a pickled payload into pgml.files,
 * and the next pgml.predict — a SECURITY DEFINER function owned by a superuser — unpickled it.
 * Every step of that attack is tried here as a least-privilege role and must fail.
 */
describe('pgml_compat security: permission to train is not permission to be superuser', () => {
  const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const TRAINER = `pgml_trainer_test_${suffix}`
  const APP = `pgml_app_test_${suffix}`
  let db: TestDatabase
  const extra: TestDatabase[] = []

  const admin = (sql: string, params?: unknown[]) => withClient(requireServerTier().url, (c) => c.query(sql, params))
  beforeAll(async () => {
    await admin(`CREATE ROLE ${TRAINER} LOGIN PASSWORD 'trainer'; CREATE ROLE ${APP} LOGIN PASSWORD 'app'`)
  })
  afterAll(async () => {
    await admin(`DROP ROLE IF EXISTS ${TRAINER}; DROP ROLE IF EXISTS ${APP}`)
  })
  afterEach(async () => {
    for (const d of extra.splice(0)) await d.close()
    await db?.close()
  })

  function as(role: string, password: string, database = db): string {
    const u = new URL(database.url)
    u.username = role
    u.password = password
    return u.toString()
  }
  const asTrainer = (sql: string, params?: unknown[]) => withClient(as(TRAINER, 'trainer'), async (c) => (await c.query(sql, params)).rows)
  const asApp = (sql: string, params?: unknown[]) => withClient(as(APP, 'app'), async (c) => (await c.query(sql, params)).rows)
  const isSuperuser = async () => (await db.query<{ s: boolean }>('SELECT rolsuper AS s FROM pg_roles WHERE rolname = $1', [TRAINER]))[0]!.s

  /** A database with pgml_compat, the trainer in pgml_trainer owning a schema with its table, the app with USAGE on pgml. */
  async function compatDatabase(version?: string): Promise<TestDatabase> {
    const d = await server.create()
    await d.query(`CREATE EXTENSION pgml_compat${version ? ` VERSION '${version}'` : ''} CASCADE`)
    await d.query(`CREATE SCHEMA training AUTHORIZATION ${TRAINER}; GRANT USAGE ON SCHEMA pgml TO ${APP}`)
    await d.query(`CREATE TABLE training.houses AS SELECT (i % 50)::float8 AS size, (i % 7)::float8 AS age, (3 * (i % 50) - 2 * (i % 7) + (i % 3) * 0.1)::float8 AS price
      FROM generate_series(1, 300) AS i; ALTER TABLE training.houses OWNER TO ${TRAINER}`)
    return d
  }

  /**
   * What the attacker wrote: a pickle whose loading runs Python, here as the review's attack did:
   * psql over the server's local socket, where peer authentication lets the OS user postgres in
   * as the superuser postgres, to run `ALTER ROLE <trainer> SUPERUSER` and leave a marker table.
   * Loaded by pgml.predict on pgml_compat 0.2.0, it made the trainer a superuser (checked by hand
   * on the docker/postgres image).
   */
  function payload(): Buffer {
    const name = new URL(db.url).pathname.slice(1)
    const code = `import os; os.system("psql -h /var/run/postgresql -U postgres -d ${name} -c 'ALTER ROLE ${TRAINER} SUPERUSER' -c 'CREATE TABLE public.pwned ()'")`
    // pickle protocol 2 by hand: GLOBAL builtins.exec, the code as a unicode string, TUPLE1, REDUCE, STOP.
    const text = Buffer.from(code, 'utf8')
    const length = Buffer.alloc(4)
    length.writeUInt32LE(text.length)
    return Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.from('cbuiltins\nexec\n', 'latin1'), Buffer.from([0x58]), length, text, Buffer.from([0x85, 0x52, 0x2e])])
  }
  const pwned = async () => (await db.query<{ ok: boolean }>(`SELECT to_regclass('public.pwned') IS NOT NULL AS ok`))[0]!.ok
  const REFUSED = /model \d+ is refused, nothing of it was loaded/

  it('a member of pgml_trainer trains, snapshots, deploys and loads datasets with no privilege on pgml\'s tables; every direct write is refused', { timeout: 400_000 }, async () => {
    db = await compatDatabase()
    await db.query(`GRANT pgml_trainer TO ${TRAINER}`)
    expect(await asTrainer(`SELECT project, task, algorithm, deployed FROM pgml.train('houses', 'regression', 'training.houses', 'price')`))
      .toEqual([{ project: 'houses', task: 'regression', algorithm: 'linear', deployed: true }])
    await asTrainer(`SELECT * FROM pgml.train('houses', algorithm => 'xgboost', materialize_snapshot => true, automatic_deploy => false)`)
    expect(await asTrainer(`SELECT * FROM pgml.deploy('houses', 'most_recent')`)).toEqual([{ project: 'houses', strategy: 'most_recent', algorithm: 'xgboost' }])
    expect(await asTrainer(`SELECT * FROM pgml.deploy(1)`)).toEqual([{ project: 'houses', strategy: 'specific', algorithm: 'linear' }])
    expect(await asTrainer(`SELECT * FROM pgml.load_dataset('iris', "limit" => 20)`)).toEqual([{ table_name: 'pgml.iris', rows: '20' }])
    expect(await asTrainer(`SELECT count(*)::int AS n FROM pgml.iris`)).toEqual([{ n: 20 }])
    expect(await asTrainer(`SELECT id, algorithm::text AS algorithm FROM pgml.models ORDER BY id`)).toEqual([{ id: '1', algorithm: 'linear' }, { id: '2', algorithm: 'xgboost' }])
    // Any role with USAGE on pgml predicts; it may not train or deploy.
    const [p] = await asApp(`SELECT pgml.predict('houses', ARRAY[10, 3]::real[]) AS p`)
    expect(p!.p).toBeCloseTo(24, 0)
    await expect(asApp(`SELECT * FROM pgml.train('x', 'regression', 'training.houses', 'price')`)).rejects.toThrow(/permission denied for function train/)
    await expect(asApp(`SELECT * FROM pgml.deploy(1)`)).rejects.toThrow(/permission denied for function deploy/)
    // PostgresML's suite functions of 0.5.0 follow the same lines: train_joint and a decomposition
    // for the trainer, predict_joint and decompose for any role, chunk and the vector functions need nothing.
    expect(await asTrainer(`SELECT project, task, algorithm FROM pgml.train_joint('both', 'regression', 'training.houses', ARRAY['price', 'age'])`))
      .toEqual([{ project: 'both', task: 'regression', algorithm: 'linear' }])
    await asTrainer(`CREATE VIEW training.shapes AS SELECT size, age FROM training.houses`)
    expect(await asTrainer(`SELECT project, task, algorithm FROM pgml.train('shapes', 'decomposition', 'training.shapes')`)).toEqual([{ project: 'shapes', task: 'decomposition', algorithm: 'pca' }])
    const [app] = await asApp(`SELECT pgml.predict_joint('both', ARRAY[10]::real[]) AS j, pgml.decompose('shapes', ARRAY[10, 3]::real[]) AS d,
      (SELECT count(*)::int FROM pgml.chunk('recursive_character', 'aa bb cc', '{"chunk_size": 3, "chunk_overlap": 0}')) AS c, pgml.dot_product(ARRAY[1, 2]::real[], ARRAY[3, 4]::real[]) AS dot`)
    expect(app!.j).toHaveLength(2)
    expect(app!.d).toHaveLength(2)
    expect([app!.c, app!.dot]).toEqual([3, 11])
    await expect(asApp(`SELECT * FROM pgml.train_joint('x', 'regression', 'training.houses', ARRAY['price', 'age'])`)).rejects.toThrow(/permission denied for function train_joint/)

    // The trainer writes nothing directly, reads no model bytes or keys, creates nothing in pgml.
    for (const sql of [
      `INSERT INTO pgml.files (model_id, path, part, data) VALUES (1, 'estimator.pickle', 1, '\\x00')`,
      `UPDATE pgml.files SET data = '\\x00'`,
      `DELETE FROM pgml.files`,
      `INSERT INTO pgml.models (project_id, num_features, algorithm, hyperparams, status, search_params, search_args) VALUES (1, 2, 'linear', '{}', 'successful', '{}', '{}')`,
      `UPDATE pgml.deployments SET model_id = 2`,
      `INSERT INTO pgml.deployments (project_id, model_id, strategy) VALUES (1, 2, 'specific')`,
      `INSERT INTO pgml._model_signatures (model_id, path, key_id, digest) VALUES (1, 'x', 1, '\\x00')`,
      `SELECT key FROM pgml._model_keys`,
      `SELECT data FROM pgml.files`,
      `TRUNCATE pgml.deployments`,
    ]) await expect(asTrainer(sql), sql).rejects.toThrow(/permission denied for table/)
    await expect(asTrainer(`CREATE TABLE pgml.mine (id int)`)).rejects.toThrow(/permission denied for schema pgml/)
    await expect(asTrainer(`CREATE FUNCTION pgml._source(int) RETURNS text LANGUAGE sql AS 'SELECT 1::text'`)).rejects.toThrow(/permission denied for schema pgml/)
    await expect(asTrainer(`CREATE FUNCTION training.t() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
      CREATE TRIGGER t BEFORE INSERT ON pgml.files FOR EACH ROW EXECUTE FUNCTION training.t()`)).rejects.toThrow(/permission denied for table files/)
    // The definer function that stores training takes nothing from the caller but a one-time token.
    await expect(asTrainer(`SELECT pgml._record_training('0123456789abcdef0123456789abcdef')`)).rejects.toThrow(/stores what pgml.train trained in the same call/)
    await expect(asTrainer(`SELECT pgml.sign_model(1)`)).rejects.toThrow(/permission denied for function sign_model/)
    await expect(asTrainer(`SELECT pgml._add_model_key()`)).rejects.toThrow(/permission denied for function _add_model_key/)
    expect(await isSuperuser()).toBe(false)
  })

  it('a model whose bytes were written outside pgml.train — altered, unsigned, truncated or foreign — is refused before it is unpickled (the attack, even with the grants 0.2.0 asked for)', { timeout: 400_000 }, async () => {
    db = await compatDatabase()
    await db.query(`GRANT pgml_trainer TO ${TRAINER}`)
    await asTrainer(`SELECT * FROM pgml.train('houses', 'regression', 'training.houses', 'price')`)
    // An administrator gives the trainer what pgml_compat 0.2.0's README asked for.
    await db.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON pgml.files, pgml.models, pgml.deployments TO ${TRAINER};
      GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgml TO ${TRAINER}`)
    const predict = () => asApp(`SELECT pgml.predict('houses', ARRAY[10, 3]::real[]) AS p`)

    // 1. The deployed model's bytes replaced by the payload.
    await asTrainer(`UPDATE pgml.files SET data = $1 WHERE model_id = 1`, [payload()])
    await expect(predict()).rejects.toThrow(/model 1 is refused, nothing of it was loaded: its bytes do not match its signature/)
    await expect(asApp(`SELECT pgml.predict(1::bigint, ARRAY[10, 3]::real[]) AS p`)).rejects.toThrow(REFUSED)
    await expect(asApp(`SELECT pgml.predict_batch('houses', ARRAY[[10, 3]]::real[])`)).rejects.toThrow(REFUSED)
    expect(await isSuperuser()).toBe(false)
    expect(await pwned()).toBe(false)

    // 2. A model of the trainer's own, with a file, deployed: it carries no signature.
    const [model] = await asTrainer(`INSERT INTO pgml.models (project_id, num_features, algorithm, hyperparams, status, search_params, search_args)
      VALUES (1, 2, 'linear', '{}', 'successful', '{}', '{}') RETURNING id`)
    await asTrainer(`INSERT INTO pgml.files (model_id, path, part, data) VALUES ($1, 'estimator.pickle', 0, $2)`, [model!.id, payload()])
    await asTrainer(`INSERT INTO pgml.deployments (project_id, model_id, strategy) VALUES (1, $1, 'specific')`, [model!.id])
    await expect(predict()).rejects.toThrow(new RegExp(`model ${model!.id} is refused, nothing of it was loaded: it carries no signature`))
    expect(await isSuperuser()).toBe(false)
    expect(await pwned()).toBe(false)

    // 3. A genuine model truncated, and 4. one split into parts with a gap.
    await asTrainer(`DELETE FROM pgml.deployments WHERE model_id = $1`, [model!.id])
    await asTrainer(`SELECT * FROM pgml.train('houses', algorithm => 'ridge')`)
    await asTrainer(`SELECT * FROM pgml.deploy('houses', 'most_recent')`)
    const [ridge] = await db.query<{ id: string; data: Buffer }>(`SELECT model_id AS id, data FROM pgml.files WHERE model_id = (SELECT max(id) FROM pgml.models)`)
    expect((await predict())[0]!.p).toBeCloseTo(24, 0)
    const predictRidge = () => asApp(`SELECT pgml.predict($1::bigint, ARRAY[10, 3]::real[]) AS p`, [ridge!.id])
    await asTrainer(`UPDATE pgml.files SET data = substring(data FROM 1 FOR length(data) - 8) WHERE model_id = $1`, [ridge!.id])
    await expect(predictRidge()).rejects.toThrow(/its bytes do not match its signature/)
    await asTrainer(`UPDATE pgml.files SET part = 1 WHERE model_id = $1`, [ridge!.id])
    await expect(predictRidge()).rejects.toThrow(/its file has parts 1, not 0 to 0/)

    // 5. Foreign: a genuine model's bytes under another model id of this database; a genuine
    // model and its signature copied from another database (another key), even by a superuser.
    await asTrainer(`UPDATE pgml.files SET data = $1, part = 0 WHERE model_id = $2`, [ridge!.data, ridge!.id])
    expect((await predictRidge())[0]!.p).toBeCloseTo(24, 0)
    await asTrainer(`UPDATE pgml.files SET data = $1 WHERE model_id = 1`, [ridge!.data])
    await expect(asApp(`SELECT pgml.predict(1::bigint, ARRAY[10, 3]::real[]) AS p`)).rejects.toThrow(/model 1 is refused.*its bytes do not match its signature/)
    const other = await compatDatabase()
    extra.push(other)
    await other.query(`SELECT * FROM pgml.train('houses', 'regression', 'training.houses', 'price')`)
    const [copied] = await other.query<{ data: Buffer; digest: Buffer }>(`SELECT f.data, s.digest FROM pgml.files f JOIN pgml._model_signatures s USING (model_id, path)`)
    await db.query(`UPDATE pgml.files SET data = $1 WHERE model_id = 1`, [copied!.data])
    await db.query(`UPDATE pgml._model_signatures SET digest = $1 WHERE model_id = 1`, [copied!.digest])
    await expect(asApp(`SELECT pgml.predict(1::bigint, ARRAY[10, 3]::real[]) AS p`)).rejects.toThrow(/model 1 is refused.*its bytes do not match its signature/)
    expect(await isSuperuser()).toBe(false)
    expect(await pwned()).toBe(false)

    // The owner vouches for bytes it trusts.
    await db.query(`SELECT pgml.sign_model(1)`)
    expect((await asApp(`SELECT pgml.predict(1::bigint, ARRAY[10, 3]::real[]) AS p`))[0]!.p).toBeCloseTo(24, 0)
  })

  it('pgml.embed loads models only from where the server\'s configuration says: a models_dir SET by a session, a role or a database owner is ignored', async () => {
    db = await compatDatabase()
    const name = new URL(db.url).pathname.slice(1)
    const embed = `SELECT pgml.embed('pgml-kit/tiny-bert-16', 'hello world') AS v`
    const [reference] = await asApp(embed)
    expect(reference!.v).toHaveLength(16)
    // The app role points models_dir at a directory of its choosing, three ways; pgml.embed (a
    // SECURITY DEFINER function) still reads the configured directory.
    expect(await withClient(as(APP, 'app'), async (c) => {
      await c.query(`SET pgml_compat.models_dir = '/tmp/not-the-models'`)
      return (await c.query(embed)).rows
    })).toEqual([reference])
    await db.query(`ALTER ROLE ${APP} IN DATABASE "${name}" SET pgml_compat.models_dir = '/tmp/not-the-models'`)
    expect(await asApp(embed)).toEqual([reference])
    await db.query(`ALTER DATABASE "${name}" SET pgml_compat.models_dir = '/tmp/not-the-models'`)
    expect(await asApp(embed)).toEqual([reference])
    await db.query(`ALTER ROLE ${APP} IN DATABASE "${name}" RESET ALL`)
    for (const id of ['../../../../tmp/x', '/etc', 'a/./b', 'a//b', '']) {
      await expect(asApp(`SELECT pgml.embed($1, 'x')`, [id]), id).rejects.toThrow(/invalid model id/)
    }
  })

  it('pgml._predict_batch refuses a bytea that is not a real[] in binary form with a clear error, not a Python struct.error', async () => {
    db = await compatDatabase()
    await db.query(`SELECT * FROM pgml.train('houses', 'regression', 'training.houses', 'price')`)
    for (const bytes of [`'\\x0001'::bytea`, `pg_catalog.array_send(ARRAY[1, 2]::int[])`, `'\\x0000000100000000000002bc00000002ffffffff'::bytea`,
      `pg_catalog.array_send(ARRAY[1, 2]::real[]) || '\\x00'::bytea`, `substring(pg_catalog.array_send(ARRAY[1, 2]::real[]) FROM 1 FOR 25)`]) {
      await expect(db.query(`SELECT pgml._predict_batch('houses', ${bytes})`), bytes).rejects.toThrow(/features must be a real\[\] in PostgreSQL's binary format/)
    }
    expect(await db.query(`SELECT array_length(pgml._predict_batch('houses', pg_catalog.array_send(ARRAY[[10, 3], [20, 1]]::real[])), 1) AS n`)).toEqual([{ n: 2 }])
  })

  it('lists every SECURITY DEFINER function — pgml_compat\'s and those pgml-kit generates — with its pinned search_path and who may execute it', async () => {
    db = await compatDatabase()
    const functions = await db.query<{ f: string; definer: boolean; config: string[] | null; execute: string }>(`
      SELECT p.oid::regprocedure::text AS f, p.prosecdef AS definer, p.proconfig AS config,
             coalesce((SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE r.rolname END, ',' ORDER BY 1)
                       FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a LEFT JOIN pg_roles r ON r.oid = a.grantee
                       WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner), 'owner only') AS execute
      FROM pg_proc p WHERE p.pronamespace = 'pgml'::regnamespace AND p.prokind <> 'a' ORDER BY 1`)
    expect(functions.filter((f) => JSON.stringify(f.config) !== '["search_path=pg_catalog, pg_temp"]')).toEqual([])
    // The vector aggregates (which cannot pin a search_path) run only functions that do.
    const aggregates = await db.query<{ a: string; support: string[] }>(`SELECT a.aggfnoid::regprocedure::text AS a,
        ARRAY(SELECT coalesce(array_to_string(p.proconfig, ','), '-') FROM pg_proc p WHERE p.oid IN (a.aggtransfn, a.aggcombinefn, a.aggfinalfn) ORDER BY p.oid) AS support
      FROM pg_aggregate a JOIN pg_proc f ON f.oid = a.aggfnoid WHERE f.pronamespace = 'pgml'::regnamespace ORDER BY 1`)
    expect(aggregates.map((a) => a.a).sort()).toEqual(['max', 'max_abs', 'min', 'min_abs', 'sum'].flatMap((n) => [`pgml.${n}(double precision[])`, `pgml.${n}(real[])`]).sort())
    for (const a of aggregates) expect(a.support, a.a).toEqual(['search_path=pg_catalog, pg_temp', 'search_path=pg_catalog, pg_temp'])
    const definers = Object.fromEntries(functions.filter((f) => f.definer).map((f) => [f.f, f.execute]))
    const predict = Object.fromEntries(['real[]', 'double precision[]', 'integer[]', 'bigint[]', 'smallint[]', 'boolean[]'].map((t) => [`pgml.predict(text,${t})`, 'PUBLIC']))
    expect(definers).toEqual({
      // Read-only, for every role that may use schema pgml (an application role embeds and predicts).
      'pgml.version()': 'PUBLIC', 'pgml.embed(text,text,jsonb)': 'PUBLIC', 'pgml.embed(text,text[],jsonb)': 'PUBLIC',
      'pgml.predict_joint(text,real[])': 'PUBLIC', 'pgml.predict_joint(bigint,real[])': 'PUBLIC', 'pgml.decompose(text,real[])': 'PUBLIC',
      ...predict, 'pgml.predict(bigint,real[])': 'PUBLIC', 'pgml._predict_row(text,jsonb)': 'PUBLIC', 'pgml._predict_model_row(bigint,jsonb)': 'PUBLIC',
      'pgml.predict_proba(text,real[])': 'PUBLIC', 'pgml.predict_proba(bigint,real[])': 'PUBLIC', 'pgml._predict_batch(text,bytea)': 'PUBLIC',
      'pgml.predict_batch(bigint,real[])': 'PUBLIC',
      // Writes pgml's tables: pgml_trainer only.
      'pgml._record_training(text)': 'pgml_trainer', 'pgml.deploy(bigint)': 'pgml_trainer',
      'pgml.deploy(text,pgml.strategy,pgml.algorithm)': 'pgml_trainer', 'pgml.load_dataset(text,text,bigint,jsonb)': 'pgml_trainer',
      // A trigger function: never called directly.
      'pgml._bump_deployment_generation()': 'owner only',
    })
    const invokers = Object.fromEntries(functions.filter((f) => !f.definer && f.execute !== 'PUBLIC').map((f) => [f.f, f.execute]))
    expect(invokers).toEqual({
      'pgml.train(text,text,text,text,pgml.algorithm,jsonb,pgml.search,jsonb,jsonb,real,pgml.sampling,pgml.runtime,boolean,boolean,jsonb,text)': 'pgml_trainer',
      'pgml.train_joint(text,text,text,text[],pgml.algorithm,jsonb,pgml.search,jsonb,jsonb,real,pgml.sampling,pgml.runtime,boolean,boolean,jsonb,text)': 'pgml_trainer',
      'pgml.sign_model(bigint)': 'owner only', 'pgml._add_model_key()': 'owner only',
    })
    // pgml's tables: nobody but the owner writes them; pgml_trainer reads what training needs.
    const tables = await db.query<{ t: string; grants: string | null }>(`
      SELECT c.oid::regclass::text AS t, (SELECT string_agg((CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE r.rolname END) || ':' || a.privilege_type, ',' ORDER BY 1)
        FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a LEFT JOIN pg_roles r ON r.oid = a.grantee WHERE a.grantee <> c.relowner) AS grants
      FROM pg_class c WHERE c.relnamespace = 'pgml'::regnamespace AND c.relkind IN ('r', 'v', 'S') ORDER BY 1`)
    for (const { t, grants } of tables) {
      expect(grants ?? '', t).toMatch(/^(pgml_trainer:SELECT)?$/)
    }
    expect(tables.filter((t) => t.grants === 'pgml_trainer:SELECT').map((t) => t.t)).toEqual(
      ['pgml.deployed_models', 'pgml.deployments', 'pgml.models', 'pgml.overview', 'pgml.projects', 'pgml.snapshots', 'pgml.trained_models'])

    // The SECURITY DEFINER functions pgml-kit generates are trigger functions (they cannot be
    // called directly), with a pinned search_path.
    const project = new TestProject(db)
    const config: PgmlKitConfig = {
      embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
      tables: { documents: { embeddings: {
        in_db: { source: ['title', 'body'], model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }, mode: 'trigger' },
        queued: { source: ['body'], model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }, mode: 'queue' },
      } } },
    }
    await project.withDocumentsTable(config)
    await project.generate()
    await project.migrate()
    const generated = await db.query<{ f: string; returns: string; config: string[] | null; public_execute: boolean }>(`
      SELECT p.oid::regprocedure::text AS f, p.prorettype::regtype::text AS returns, p.proconfig AS config,
             has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
      FROM pg_proc p WHERE p.prosecdef AND p.pronamespace NOT IN ('pgml'::regnamespace, 'pg_catalog'::regnamespace) ORDER BY 1`)
    expect(generated.map((f) => [f.returns, f.config, f.public_execute])).toEqual(generated.map(() => ['trigger', ['search_path=pg_catalog, pg_temp'], false]))
    // The two trigger functions of the columns, and the model registry's event recorder.
    expect(generated.map((f) => f.f)).toContain('pgml_kit.registry_record()')
    expect(generated.length).toBe(3)
    // Another role cannot attach them to a table of its own (its TEMP table, say) to write the
    // queue or embed on its behalf as their owner; attached elsewhere by anyone, they refuse to run.
    await db.query(`GRANT USAGE ON SCHEMA pgml_kit TO ${APP}`)
    for (const f of generated) {
      await expect(withClient(as(APP, 'app'), (c) => c.query(`CREATE TEMP TABLE fake (id bigint, title text, body text, queued vector(16), in_db vector(16));
        CREATE TRIGGER t BEFORE INSERT OR DELETE ON fake FOR EACH ROW EXECUTE FUNCTION ${f.f}`)), f.f).rejects.toThrow(/permission denied for function/)
      await db.session(async (query) => {
        await query(`CREATE TEMP TABLE fake (id bigint, title text, body text, queued vector(16), in_db vector(16));
          CREATE TRIGGER t BEFORE INSERT ON fake FOR EACH ROW EXECUTE FUNCTION ${f.f}`)
        await expect(query(`INSERT INTO fake (id, title, body) VALUES (1, 'a', 'b')`), f.f).rejects.toThrow(/is the trigger function of (public.documents|pgml_kit.model_versions, model_aliases and model_routes), not of pg_temp_\d+.fake/)
      })
    }
    await db.query(`INSERT INTO documents (title, body) VALUES ('Homes', 'for families')`)
    expect(await db.query(`SELECT vector_dims(in_db) AS d FROM documents`)).toEqual([{ d: 16 }])
    expect(await db.query(`SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs`)).toEqual([{ n: 1 }])
  })

  it('ALTER EXTENSION UPDATE from 0.2.0 takes back write grants, leaves models unsigned when others could write them, and refuses while a foreign trigger is attached', { timeout: 400_000 }, async () => {
    // 0.2.0 as its README had it: the trainer trained with INSERT on pgml's tables.
    db = await compatDatabase('0.2.0')
    await db.query(`GRANT USAGE ON SCHEMA pgml TO ${TRAINER}; GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA pgml TO ${TRAINER};
      GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgml TO ${TRAINER}; GRANT CREATE ON SCHEMA pgml TO ${TRAINER}`)
    await asTrainer(`SELECT * FROM pgml.train('houses', 'regression', 'training.houses', 'price')`)
    const notices: string[] = []
    await withClient(db.url, async (c) => {
      c.on('notice', (n) => notices.push(n.message ?? ''))
      await c.query('ALTER EXTENSION pgml_compat UPDATE')
    })
    expect(await db.query(`SELECT extversion AS v FROM pg_extension WHERE extname = 'pgml_compat'`)).toEqual([{ v: '0.5.0' }])
    expect(notices.join('\n')).toMatch(new RegExp(`1 stored model\\(s\\) were left unsigned, and pgml.predict refuses them: ${TRAINER} could write`))
    expect(await db.query(`SELECT has_table_privilege($1, 'pgml.files', 'INSERT') OR has_table_privilege($1, 'pgml.models', 'UPDATE')
      OR has_schema_privilege($1, 'pgml', 'CREATE') AS w`, [TRAINER])).toEqual([{ w: false }])
    await expect(asApp(`SELECT pgml.predict('houses', ARRAY[10, 3]::real[]) AS p`)).rejects.toThrow(/model 1 is refused.*carries no signature/)
    await db.query(`SELECT pgml.sign_model(1)`)
    expect((await asApp(`SELECT pgml.predict('houses', ARRAY[10, 3]::real[]) AS p`))[0]!.p).toBeCloseTo(24, 0)

    // With no other writer, the upgrade signs the models stored before it.
    const clean = await compatDatabase('0.2.0')
    extra.push(clean)
    await clean.query(`SELECT * FROM pgml.train('houses', 'regression', 'training.houses', 'price')`)
    await clean.query('ALTER EXTENSION pgml_compat UPDATE')
    expect((await clean.query<{ p: number }>(`SELECT pgml.predict('houses', ARRAY[10, 3]::real[]) AS p`))[0]!.p).toBeCloseTo(24, 0)

    // A trigger someone attached to pgml's tables would run as the owner: the upgrade refuses, changing nothing.
    const trapped = await compatDatabase('0.2.0')
    extra.push(trapped)
    await trapped.query(`GRANT TRIGGER ON pgml.files TO ${TRAINER}; GRANT USAGE ON SCHEMA pgml TO ${TRAINER}`)
    await withClient(as(TRAINER, 'trainer', trapped), (c) => c.query(`CREATE FUNCTION training.grab() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
      CREATE TRIGGER "grab ""it""" BEFORE INSERT ON pgml.files FOR EACH ROW EXECUTE FUNCTION training.grab()`))
    await expect(trapped.query('ALTER EXTENSION pgml_compat UPDATE')).rejects.toThrow(/triggers that pgml_compat did not create are attached to its tables: "grab ""it""" ON pgml.files/)
    expect(await trapped.query(`SELECT extversion AS v FROM pg_extension WHERE extname = 'pgml_compat'`)).toEqual([{ v: '0.2.0' }])
  })
})
