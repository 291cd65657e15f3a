/**
 * Extensions. `pgml` is either PostgresML's own extension or pgml-kit's PL/Python `pgml_compat`
 * (same schema and functions); a database that already has `pgml.embed` is left as it is.
 */
/** Creates pgvector unless it is there, and records that pgml-kit created it (the runtime schema exists by then). */
export function renderCreateVectorExtension(): string {
  return `DO $pgml_kit$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'vector') THEN
    CREATE EXTENSION vector;
    INSERT INTO pgml_kit.created_extensions (name) VALUES ('vector') ON CONFLICT DO NOTHING;
  END IF;
END
$pgml_kit$;`
}

/**
 * Drops pgvector only if a pgml-kit migration created it, and only when nothing else uses it any
 * more (RESTRICT; another project's columns, another tool's objects): a database that had pgvector
 * before, or still needs it, keeps it.
 */
export function renderDropVectorExtension(): string {
  return `DO $pgml_kit$
BEGIN
  IF EXISTS (SELECT 1 FROM pgml_kit.created_extensions WHERE name = 'vector') THEN
    BEGIN
      DROP EXTENSION vector;
      DELETE FROM pgml_kit.created_extensions WHERE name = 'vector';
    EXCEPTION WHEN dependent_objects_still_exist THEN
      RAISE NOTICE 'pgml-kit: extension vector is still used by other objects; it stays';
    END;
  END IF;
END
$pgml_kit$;`
}

export function renderEnsurePgml(): string {
  return `DO $pgml_kit$
BEGIN
  IF pg_catalog.to_regprocedure('pgml.embed(text, text, jsonb)') IS NULL THEN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pgml') THEN
      CREATE EXTENSION pgml CASCADE;
    ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pgml_compat') THEN
      CREATE EXTENSION pgml_compat CASCADE;
    ELSE
      RAISE EXCEPTION 'pgml-kit: this database has no pgml.embed'
        USING HINT = 'Install PostgresML (extension pgml) or pgml-kit''s pgml_compat, or use embedding mode "queue" or "app".';
    END IF;
  END IF;
END
$pgml_kit$;`
}

export function renderKeepPgml(): string {
  return '-- pgml is left installed: it owns trained models and deployments that this migration did not create.'
}
