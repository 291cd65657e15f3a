-- pgml_kit runtime schema, version 4: the results of `pgml-kit index check`, so `status` can show
-- each index's last measured recall and the setting that reached the target.
UPDATE pgml_kit.runtime_version SET version = 4, installed_at = now() WHERE version < 4;

CREATE TABLE IF NOT EXISTS pgml_kit.index_checks (
  index_schema name NOT NULL,
  index_name name NOT NULL,
  checked_at timestamptz NOT NULL DEFAULT now(),
  k integer NOT NULL,
  queries integer NOT NULL,
  filter text,
  target_recall double precision NOT NULL,
  parameter text NOT NULL,
  recommended integer,
  recommended_iterative boolean,
  recall double precision,
  p50_ms double precision,
  results jsonb NOT NULL,
  PRIMARY KEY (index_schema, index_name, checked_at)
);
COMMENT ON TABLE pgml_kit.index_checks IS 'Results of pgml-kit index check: recall@k of a vector index against exact search, per setting.';
