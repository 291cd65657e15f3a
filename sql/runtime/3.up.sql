-- pgml_kit runtime schema, version 3: which extensions pgml-kit itself created, so that reverting
-- removes only those (never a pgvector that was there before, or that other tools still use).
UPDATE pgml_kit.runtime_version SET version = 3, installed_at = pg_catalog.now() WHERE version < 3;

CREATE TABLE IF NOT EXISTS pgml_kit.created_extensions (
  name name PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE pgml_kit.created_extensions IS 'Extensions a pgml-kit migration created (CREATE EXTENSION); only these are dropped again, and only when nothing uses them.';
