-- pgml_kit runtime schema, version 2: the queue behind the "queue" embedding mode.
-- A trigger on each queue-mode table upserts one job per row whose source changed; workers
-- (`pgml-kit worker`) lease jobs, embed the text outside the database, write the vector only if
-- the source is still what they embedded, and delete the job only if no newer change re-queued it.
ALTER TABLE pgml_kit.embedding_columns ADD COLUMN IF NOT EXISTS key_columns text[] NOT NULL DEFAULT '{}';
UPDATE pgml_kit.runtime_version SET version = 2, installed_at = pg_catalog.now() WHERE version < 2;

CREATE TABLE IF NOT EXISTS pgml_kit.embedding_jobs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_schema name NOT NULL,
  table_name name NOT NULL,
  column_name name NOT NULL,
  row_key jsonb NOT NULL,
  -- Bumped each time the row's source changes again; a worker completes a job only at the
  -- generation it embedded.
  generation bigint NOT NULL DEFAULT 1,
  enqueued_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  first_enqueued_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  -- squawk-ignore prefer-bigint-over-int -- retries of one job: a few, then it is a dead letter
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  leased_until timestamptz,
  leased_by text,
  last_error text,
  UNIQUE (table_schema, table_name, column_name, row_key)
);
CREATE INDEX IF NOT EXISTS embedding_jobs_due_idx ON pgml_kit.embedding_jobs (next_attempt_at, id);
COMMENT ON TABLE pgml_kit.embedding_jobs IS 'Rows whose embedding must be (re)computed by a pgml-kit worker. One job per row and column.';

CREATE TABLE IF NOT EXISTS pgml_kit.embedding_dead_letters (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_schema name NOT NULL,
  table_name name NOT NULL,
  column_name name NOT NULL,
  row_key jsonb NOT NULL,
  -- squawk-ignore prefer-bigint-over-int -- retries of one job: a few, then it is a dead letter
  attempts integer NOT NULL,
  last_error text,
  first_enqueued_at timestamptz NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE pgml_kit.embedding_dead_letters IS 'Jobs that failed every attempt; `pgml-kit queue retry` puts them back in the queue.';

CREATE TABLE IF NOT EXISTS pgml_kit.backfill_checkpoints (
  table_schema name NOT NULL,
  table_name name NOT NULL,
  column_name name NOT NULL,
  last_key jsonb NOT NULL,
  rows_done bigint NOT NULL,
  started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (table_schema, table_name, column_name)
);
COMMENT ON TABLE pgml_kit.backfill_checkpoints IS 'Where an interrupted `pgml-kit backfill --all` resumes.';
