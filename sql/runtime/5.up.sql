-- pgml_kit runtime schema, version 5: what the query builders, workers and backfill need to follow
-- the catalog rather than the application's config, so that a staged model change switches them
-- all in the transaction that renames the columns: the token pooling; for the extra column of a
-- staged change its role (`next`: the shadow being filled with the new model; `previous`: the old
-- model's column kept after the switch until it is dropped) and the live column it belongs to; and,
-- for DBAs and other tools, the distance of the column's first index. Columns of the catalog, so
-- earlier uninstall scripts drop them with it.
UPDATE pgml_kit.runtime_version SET version = 5, installed_at = pg_catalog.now() WHERE version < 5;

ALTER TABLE pgml_kit.embedding_columns ADD COLUMN IF NOT EXISTS pooling text;
ALTER TABLE pgml_kit.embedding_columns ADD COLUMN IF NOT EXISTS distance text;
ALTER TABLE pgml_kit.embedding_columns ADD COLUMN IF NOT EXISTS rollout_role text;
ALTER TABLE pgml_kit.embedding_columns ADD COLUMN IF NOT EXISTS rollout_of name;
COMMENT ON COLUMN pgml_kit.embedding_columns.pooling IS 'Token pooling of the model (mean, cls), or NULL: as the model''s own files say.';
COMMENT ON COLUMN pgml_kit.embedding_columns.distance IS 'The distance of the column''s first index, which searches use by default: l2, inner_product, cosine or l1.';
COMMENT ON COLUMN pgml_kit.embedding_columns.rollout_role IS 'NULL for the column searches use; next: the shadow of a staged model change being filled; previous: the old model''s column kept after the switch.';
COMMENT ON COLUMN pgml_kit.embedding_columns.rollout_of IS 'For a next or previous column: the live embedding column it belongs to.';
