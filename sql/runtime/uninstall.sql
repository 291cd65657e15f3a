-- Removes the pgml_kit runtime schema when nothing uses it any more: no embedding column is
-- registered by any pgml-kit project in this database, no pgml-kit trigger function is left, and the
-- model registry records no model (its history is kept: drop it by hand if you mean to).
-- Otherwise it stays as it is. The schema itself is dropped without CASCADE, so anything else put
-- in it keeps it (and this step fails, changing nothing, rather than drop what is not ours).
DO $pgml_kit$
BEGIN
  IF EXISTS (SELECT 1 FROM pgml_kit.embedding_columns)
     OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = 'pgml_kit' AND p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype::pg_catalog.oid AND p.proname NOT IN ('registry_guard', 'registry_record', 'route_guard')) THEN
    RAISE NOTICE 'pgml-kit: the pgml_kit schema is still used (embedding columns or trigger functions of another pgml-kit project); it stays';
    RETURN;
  END IF;
  IF pg_catalog.to_regclass('pgml_kit.model_versions') IS NOT NULL THEN
    IF EXISTS (SELECT 1 FROM pgml_kit.model_versions) THEN
      RAISE NOTICE 'pgml-kit: the pgml_kit schema keeps the model registry''s history (pgml_kit.model_versions has rows); it stays';
      RETURN;
    END IF;
    DROP FUNCTION IF EXISTS pgml_kit.predict(text, real[], text);
    DROP FUNCTION IF EXISTS pgml_kit.maintain_prediction_log(integer, interval);
    DROP FUNCTION IF EXISTS pgml_kit.traffic_bucket(text, text);
    DROP TABLE IF EXISTS pgml_kit.prediction_log;
    DROP TABLE IF EXISTS pgml_kit.prediction_log_settings;
    DROP TABLE IF EXISTS pgml_kit.model_routes;
    DROP FUNCTION IF EXISTS pgml_kit.route_guard();
    DROP FUNCTION IF EXISTS pgml_kit.model_id(text);
    DROP VIEW IF EXISTS pgml_kit.lineage_edges;
    DROP TABLE IF EXISTS pgml_kit.monitor_runs;
    DROP TABLE IF EXISTS pgml_kit.model_lineage;
    DROP TABLE IF EXISTS pgml_kit.model_events;
    DROP TABLE IF EXISTS pgml_kit.model_aliases;
    DROP TABLE IF EXISTS pgml_kit.model_versions;
    DROP FUNCTION IF EXISTS pgml_kit.registry_guard();
    DROP FUNCTION IF EXISTS pgml_kit.registry_record();
  END IF;
  DROP TABLE IF EXISTS pgml_kit.embedding_baselines;
  DROP TABLE IF EXISTS pgml_kit.created_extensions;
  DROP TABLE IF EXISTS pgml_kit.backfill_checkpoints;
  DROP TABLE IF EXISTS pgml_kit.embedding_dead_letters;
  DROP TABLE IF EXISTS pgml_kit.embedding_jobs;
  DROP TABLE IF EXISTS pgml_kit.embedding_columns;
  DROP TABLE IF EXISTS pgml_kit.runtime_version;
  DROP SCHEMA pgml_kit;
END
$pgml_kit$;
