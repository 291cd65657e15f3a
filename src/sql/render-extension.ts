/**
 * Extensions. `pgml` is either PostgresML's own extension or pgml-kit's PL/Python `pgml_compat`
 * (same schema and functions); a database that already has `pgml.embed` is left as it is.
 */
export function renderCreateVectorExtension(): string {
  return 'CREATE EXTENSION IF NOT EXISTS vector;'
}

export function renderDropVectorExtension(): string {
  // RESTRICT (the default): refuses while any column, index or function still uses the types.
  return 'DROP EXTENSION IF EXISTS vector;'
}

export function renderEnsurePgml(): string {
  return `DO $pgml_kit$
BEGIN
  IF to_regprocedure('pgml.embed(text, text, jsonb)') IS NULL THEN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgml') THEN
      CREATE EXTENSION pgml CASCADE;
    ELSIF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgml_compat') THEN
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
