-- pgml_kit runtime schema, version 4: the last result of `pgml-kit index check` for each index of a
-- column, so `status` can show its measured recall and the setting that reached the target. A
-- column of the catalog rather than a table of its own: the runtime's earlier uninstall scripts
-- (already written into projects' migrations) drop the catalog, and it with them.
UPDATE pgml_kit.runtime_version SET version = 4, installed_at = pg_catalog.now() WHERE version < 4;

ALTER TABLE pgml_kit.embedding_columns ADD COLUMN IF NOT EXISTS index_checks jsonb NOT NULL DEFAULT '{}';
COMMENT ON COLUMN pgml_kit.embedding_columns.index_checks IS 'Last pgml-kit index check per index name: recall@k against exact search, the recommended setting, when.';
