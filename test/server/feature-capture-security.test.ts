import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { materialize } from '../../src/features/ml.js'
import { TestProject } from '../helpers/project.js'
import { leastPrivilegeRoles } from '../helpers/roles.js'
import { server, withClient, type TestDatabase } from '../helpers/targets.js'

/**
 * The change-capture trigger function runs as the role that migrates (SECURITY DEFINER) on rows of
 * a table another role owns. That role may change its columns' types afterwards; nothing it
 * defines (casts, domain checks) may then run with the migrating role's rights. The audit's
 * attack: a cast from the owner's type to the change log's column type that makes the owner a
 * superuser when called by one.
 */
describe('change capture on a table another role owns (server)', () => {
  const roles = leastPrivilegeRoles()
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function setup() {
    db = await server.create()
    await db.query(`CREATE SCHEMA s3 AUTHORIZATION ${roles.app}`)
    await withClient(roles.as(db.url, 'app'), (c) => c.query('CREATE TABLE s3.ev2 (customer_id bigint, event_ts timestamptz NOT NULL, created_ts timestamptz, spend float8)'))
    const p = new TestProject(db)
    await p.writeConfig({ tables: {}, features: { views: { plain: { entities: 'customer_id', source: { table: 'ev2', schema: 's3' }, timestamp: 'event_ts', features: { spend: 'double precision' } } } } })
    await p.generate('features')
    await p.migrate()
    return (await loadConfig('pgml-kit.config.ts', db.cwd)).state
  }
  const superuser = async () => (await db.query<{ s: boolean }>(`SELECT rolsuper AS s FROM pg_roles WHERE rolname = '${roles.app}'`))[0]!.s

  it('the owner changes the key column to a type with its own cast: a write is captured, no cast of the owner runs as the migrating role', async () => {
    const state = await setup()
    await withClient(roles.as(db.url, 'app'), async (c) => {
      await c.query(`CREATE TYPE s3.k AS (v bigint);
        CREATE FUNCTION s3.k2b(s3.k) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN
          IF current_user <> '${roles.app}' THEN EXECUTE 'ALTER ROLE ${roles.app} SUPERUSER'; END IF; RETURN ($1).v; END $$;
        CREATE CAST (s3.k AS bigint) WITH FUNCTION s3.k2b(s3.k) AS ASSIGNMENT;
        CREATE FUNCTION s3.k2t(s3.k) RETURNS text LANGUAGE plpgsql AS $$ BEGIN
          IF current_user <> '${roles.app}' THEN EXECUTE 'ALTER ROLE ${roles.app} SUPERUSER'; END IF; RETURN ($1).v::text; END $$;
        CREATE CAST (s3.k AS text) WITH FUNCTION s3.k2t(s3.k) AS ASSIGNMENT;
        ALTER TABLE s3.ev2 ALTER COLUMN customer_id TYPE s3.k USING ROW(customer_id)::s3.k`)
      await c.query('INSERT INTO s3.ev2 VALUES (ROW(5)::s3.k, now(), NULL, 1)')
      await c.query('UPDATE s3.ev2 SET spend = 2')
      await c.query('DELETE FROM s3.ev2')
    })
    expect(await superuser()).toBe(false)
    // The writes were logged (as the key's text).
    expect(await db.query('SELECT customer_id FROM features.plain_changes WHERE NOT pgml_kit_full ORDER BY 1')).toEqual([{ customer_id: '(5)' }, { customer_id: '(5)' }, { customer_id: '(5)' }])
    // Materialisation (its caller's rights) cannot read the key back as the view's type: it says so, and changes nothing.
    await expect(withClient(roles.as(db.url, 'app'), (c) => materialize(c, state))).rejects.toThrow()
    expect(await superuser()).toBe(false)
  })

  it('the owner changes the key column to a domain whose check calls its function: the capture never checks it', async () => {
    await setup()
    await withClient(roles.as(db.url, 'app'), async (c) => {
      await c.query(`CREATE FUNCTION s3.ok(bigint) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN
          IF current_user <> '${roles.app}' THEN EXECUTE 'ALTER ROLE ${roles.app} SUPERUSER'; END IF; RETURN true; END $$;
        CREATE DOMAIN s3.d AS bigint CHECK (s3.ok(VALUE));
        ALTER TABLE s3.ev2 ALTER COLUMN customer_id TYPE s3.d`)
      await c.query('INSERT INTO s3.ev2 VALUES (7, now(), NULL, 1)')
    })
    expect(await superuser()).toBe(false)
    expect(await db.query('SELECT customer_id FROM features.plain_changes WHERE NOT pgml_kit_full')).toEqual([{ customer_id: '7' }])
  })

  it('the owner of the source cannot attach the capture function to its own table, nor write the change log directly', async () => {
    await setup()
    await withClient(roles.as(db.url, 'app'), async (c) => {
      await c.query('CREATE TABLE s3.mine (customer_id bigint)')
      await expect(c.query('CREATE TRIGGER t AFTER INSERT ON s3.mine REFERENCING NEW TABLE AS pgml_kit_new FOR EACH STATEMENT EXECUTE FUNCTION features.capture_plain()')).rejects.toThrow(/permission denied/)
      await expect(c.query("INSERT INTO features.plain_changes (customer_id) VALUES ('1')")).rejects.toThrow(/permission denied/)
    })
  })
})
