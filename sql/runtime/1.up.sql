-- pgml_kit runtime schema, version 1: the catalog of embedding columns that pgml-kit manages.
-- DBAs and `pgml-kit status` read it; nothing needs the app's config at run time to know which
-- model produced a column. Shared by every pgml-kit project in the database: each statement
-- leaves an existing (or newer) runtime as it is.
CREATE SCHEMA IF NOT EXISTS pgml_kit;
COMMENT ON SCHEMA pgml_kit IS 'pgml-kit runtime: catalog of managed embedding columns. Changed only by pgml-kit migrations.';

CREATE TABLE IF NOT EXISTS pgml_kit.runtime_version (
  -- squawk-ignore prefer-bigint-over-int -- a schema version number: a handful of rows, ever
  version integer PRIMARY KEY,
  installed_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
INSERT INTO pgml_kit.runtime_version (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pgml_kit.runtime_version);

CREATE TABLE IF NOT EXISTS pgml_kit.embedding_columns (
  table_schema name NOT NULL,
  table_name name NOT NULL,
  column_name name NOT NULL,
  model_id text NOT NULL,
  model_revision text,
  -- squawk-ignore prefer-bigint-over-int -- dimensions are at most 16,000 (the CHECK)
  dimensions integer NOT NULL CHECK (dimensions BETWEEN 1 AND 16000),
  vector_type text NOT NULL CHECK (vector_type IN ('vector', 'halfvec')),
  mode text NOT NULL CHECK (mode IN ('trigger', 'generated', 'queue', 'app')),
  source_columns text[] NOT NULL,
  source_separator text NOT NULL,
  source_expression text NOT NULL,
  document_prefix text NOT NULL,
  query_prefix text NOT NULL,
  normalize boolean NOT NULL,
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (table_schema, table_name, column_name)
);
COMMENT ON TABLE pgml_kit.embedding_columns IS 'One row per embedding column managed by pgml-kit: model, dimensions, mode and the expression its vectors are computed from.';
