-- pgml_kit runtime schema, version 7: serving through the registry. A project's challenger alias
-- can run in shadow (predicted beside the champion on logged requests, never returned) or take a
-- share of the traffic, chosen by a stable hash of the entity key (pgml_kit.model_routes, set by
-- `pgml-kit models route`, recorded as registry events). Predictions made through
-- pgml_kit.predict(project, features, entity_key) follow the route and, for projects whose config
-- turns the log on (pgml_kit.prediction_log_settings, written by the generated migration), are
-- logged on a sample of the requests: when, which version, which arm, the entity, the features,
-- the prediction. The log is partitioned by day (UTC); pgml_kit.maintain_prediction_log() adds the
-- coming days' partitions and drops what is past each project's retention. Rows that arrive
-- before their day's partition exists wait in the default partition, and are moved into it.
UPDATE pgml_kit.runtime_version SET version = 7, installed_at = pg_catalog.now() WHERE version < 7;

ALTER TABLE pgml_kit.model_events DROP CONSTRAINT IF EXISTS model_events_event_check;
ALTER TABLE pgml_kit.model_events ADD CONSTRAINT model_events_event_check
  CHECK (event IN ('registered', 'deployed', 'alias_set', 'alias_removed', 'described', 'tagged', 'archived', 'route_set', 'route_removed'));

CREATE TABLE IF NOT EXISTS pgml_kit.model_routes (
  project text PRIMARY KEY,
  alias text NOT NULL CHECK (alias <> 'champion'),
  mode text NOT NULL CHECK (mode IN ('shadow', 'canary')),
  share double precision NOT NULL DEFAULT 1 CHECK (share > 0 AND share <= 1),
  set_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  set_by name NOT NULL DEFAULT session_user,
  FOREIGN KEY (project, alias) REFERENCES pgml_kit.model_aliases (project, alias)
);
COMMENT ON TABLE pgml_kit.model_routes IS 'pgml-kit serving: the challenger alias of a project, in shadow (logged beside the champion, never returned) or canary (serves `share` of the entity keys, by a stable hash). Read by pgml_kit.predict.';

CREATE TABLE IF NOT EXISTS pgml_kit.prediction_log_settings (
  project text PRIMARY KEY,
  sample double precision NOT NULL CHECK (sample > 0 AND sample <= 1),
  -- squawk-ignore prefer-bigint-over-int -- a number of days
  retention_days integer NOT NULL CHECK (retention_days > 0)
);
COMMENT ON TABLE pgml_kit.prediction_log_settings IS 'pgml-kit serving: the projects whose predictions pgml_kit.predict logs, the share of requests logged and how many days they are kept. Written by the migrations pgml-kit generates from models.<project>.serving.log.';

CREATE TABLE IF NOT EXISTS pgml_kit.prediction_log (
  at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  request_id uuid NOT NULL,
  project text NOT NULL,
  model_id bigint,
  -- squawk-ignore prefer-bigint-over-int -- a version number of one project
  version integer,
  arm text NOT NULL CHECK (arm IN ('champion', 'canary', 'shadow', 'pinned')),
  entity_key text,
  features real[],
  prediction real,
  error text,
  -- Who logged it: the application writes the other columns itself (pgml_kit.predict runs with its
  -- rights), so a row is as trustworthy as the role that wrote it; this one it cannot choose.
  logged_by name NOT NULL DEFAULT session_user
) PARTITION BY RANGE (at);
CREATE TABLE IF NOT EXISTS pgml_kit.prediction_log_default PARTITION OF pgml_kit.prediction_log DEFAULT;
CREATE INDEX IF NOT EXISTS prediction_log_project_idx ON pgml_kit.prediction_log (project, at);
COMMENT ON TABLE pgml_kit.prediction_log IS 'pgml-kit serving: a sample of the predictions made through pgml_kit.predict — when, by which model and version, in which arm (champion, canary, shadow, or pinned: a version named by the caller), for which entity, from which features. A shadow row shares its request_id with the prediction returned. Partitioned by day (UTC).';

-- The share of traffic an entity key falls in, in [0, 1): the same for the same project and key in
-- every session and release (md5, not hashtext, whose values may change between major versions).
CREATE OR REPLACE FUNCTION pgml_kit.traffic_bucket(project text, entity_key text) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $pgml_kit$
  SELECT (('x' OPERATOR(pg_catalog.||) pg_catalog.substr(pg_catalog.md5(project OPERATOR(pg_catalog.||) pg_catalog.chr(31) OPERATOR(pg_catalog.||) entity_key), 1, 8))::bit(32)::bigint)::double precision OPERATOR(pg_catalog./) 4294967296.0
$pgml_kit$;

-- Predicts as the registry says: 'project@alias' and 'project@v3' with that version (arm pinned);
-- a project name with its champion (the version pgml-kit deployed; pgml's deployed model when the
-- registry has none), or its challenger for the canary's share of entity keys (a random share of
-- requests without a key). Requests in the project's log sample are logged, with the shadow
-- challenger's prediction beside them (its failure is logged, never raised). Runs with the rights
-- of its caller: applications need SELECT on the routes and settings, INSERT on the log
-- (the migrations grant roles.app that).
CREATE OR REPLACE FUNCTION pgml_kit.predict(reference text, features real[], entity_key text DEFAULT NULL) RETURNS real
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgml_kit$
DECLARE
  at_sign integer := pg_catalog.strpos(pg_catalog.reverse(reference), '@');
  project_name text := reference;
  served_id bigint;
  served_version integer;
  arm text := 'champion';
  route_mode text;
  route_share double precision;
  route_model_id bigint;
  route_version integer;
  result real;
  shadow real;
  shadow_error text;
  sample double precision;
  request uuid;
BEGIN
  IF reference IS NULL OR features IS NULL THEN
    RETURN NULL;
  END IF;
  IF at_sign > 0 THEN
    project_name := pg_catalog.left(reference, pg_catalog.length(reference) - at_sign);
    served_id := pgml_kit.model_id(reference);
    SELECT v.version INTO served_version FROM pgml_kit.model_versions AS v WHERE v.model_id = served_id;
    arm := 'pinned';
  ELSE
    -- One lookup: the champion, the route's challenger (when it is another live version) and the log's sample.
    SELECT c.model_id, c.version, r.mode, r.share, r.model_id, r.version, s.sample
    INTO served_id, served_version, route_mode, route_share, route_model_id, route_version, sample
    FROM (SELECT project_name AS project) AS p
    LEFT JOIN LATERAL (
      SELECT v.model_id, v.version FROM pgml_kit.model_aliases AS a
      JOIN pgml_kit.model_versions AS v ON v.project = a.project AND v.version = a.version
      WHERE a.project = p.project AND a.alias = 'champion' AND v.archived_at IS NULL) AS c ON true
    LEFT JOIN LATERAL (
      SELECT rt.mode, rt.share, v.model_id, v.version FROM pgml_kit.model_routes AS rt
      JOIN pgml_kit.model_aliases AS a ON a.project = rt.project AND a.alias = rt.alias
      JOIN pgml_kit.model_versions AS v ON v.project = a.project AND v.version = a.version
      WHERE rt.project = p.project AND v.archived_at IS NULL) AS r ON r.model_id IS DISTINCT FROM c.model_id
    LEFT JOIN pgml_kit.prediction_log_settings AS s ON s.project = p.project;
    IF route_mode = 'canary' AND coalesce(pgml_kit.traffic_bucket(project_name, entity_key), pg_catalog.random()) < route_share THEN
      served_id := route_model_id;
      served_version := route_version;
      arm := 'canary';
    END IF;
  END IF;
  IF served_id IS NULL THEN
    result := pgml.predict(project_name, features);
  ELSE
    result := pgml.predict(served_id, features);
  END IF;
  IF arm = 'pinned' THEN
    SELECT s.sample INTO sample FROM pgml_kit.prediction_log_settings AS s WHERE s.project = project_name;
  END IF;
  IF sample IS NOT NULL AND pg_catalog.random() < sample THEN
    request := pg_catalog.gen_random_uuid();
    IF arm = 'champion' THEN
      IF route_mode = 'shadow' THEN
        BEGIN
          shadow := pgml.predict(route_model_id, features);
        EXCEPTION WHEN OTHERS THEN
          shadow_error := SQLERRM;
        END;
      END IF;
    END IF;
    -- Logging never fails the prediction: a row that cannot be written is reported, not raised.
    BEGIN
      INSERT INTO pgml_kit.prediction_log (request_id, project, model_id, version, arm, entity_key, features, prediction)
      VALUES (request, project_name, served_id, served_version, arm, entity_key, features, result);
      IF arm = 'champion' THEN
        IF route_mode = 'shadow' THEN
          INSERT INTO pgml_kit.prediction_log (request_id, project, model_id, version, arm, entity_key, features, prediction, error)
          VALUES (request, project_name, route_model_id, route_version, 'shadow', entity_key, features, shadow, shadow_error);
        END IF;
      END IF;
    EXCEPTION WHEN OTHERS THEN
      RAISE WARNING 'pgml-kit: prediction of % not logged: %', pg_catalog.quote_literal(project_name), SQLERRM;
    END;
  END IF;
  RETURN result;
END
$pgml_kit$;
COMMENT ON FUNCTION pgml_kit.predict(text, real[], text) IS 'pgml-kit serving: pgml.predict through the registry — the champion, or the canary challenger for its share of entity keys; logs a sample of requests (with the shadow challenger''s prediction) when the project''s log is on.';

-- Keeps the log's partitions (UTC days): adds those of the coming `days_ahead` days — and today's
-- when it is missing (the log's first run, or maintenance that lapsed for more than a week: until
-- then today's requests log into the default partition) — and moves the rows the default partition
-- holds for earlier days into partitions of their own (never yesterday's: a request's time is its
-- transaction's start, and a long one may still be logging it). Each day's step waits at most
-- `wait` for the default partition's lock and, if it cannot have it, is left for the next run
-- (`skipped`) — requests that log into the default partition (only when today's partition is
-- missing) wait behind it meanwhile, and one caught moving to a new partition is not logged (a
-- warning; the prediction is returned). Deletes each project's rows past its retention; returns
-- the partitions wholly past the longest retention, for the caller to drop one by one (pgml-kit
-- monitor does, each in a transaction of its own that waits at most a moment for the log's lock).
-- Run by the owner of the log (pgml-kit migrate and pgml-kit monitor do).
CREATE OR REPLACE FUNCTION pgml_kit.maintain_prediction_log(days_ahead integer DEFAULT 7, wait interval DEFAULT '1 second')
RETURNS TABLE (created integer, moved bigint, deleted bigint, skipped integer, expired text[])
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgml_kit$
DECLARE
  today date := (pg_catalog.now() AT TIME ZONE 'UTC')::date;
  first_run boolean;
  day date;
  part text;
  keep integer;
  n bigint;
  setting record;
  previous_timeout text := pg_catalog.current_setting('lock_timeout');
BEGIN
  created := 0;
  moved := 0;
  deleted := 0;
  skipped := 0;
  PERFORM pg_catalog.set_config('lock_timeout', (pg_catalog.date_part('epoch', wait) * 1000)::bigint::text, true);
  -- The longest retention (30 days when no project logs): also that of rows of projects no longer logged.
  SELECT pg_catalog.max(s.retention_days) INTO keep FROM pgml_kit.prediction_log_settings AS s;
  keep := coalesce(keep, 30);
  FOR setting IN SELECT s.project, s.retention_days FROM pgml_kit.prediction_log_settings AS s WHERE s.retention_days < keep LOOP
    DELETE FROM pgml_kit.prediction_log AS l WHERE l.project = setting.project AND l.at < pg_catalog.now() - pg_catalog.make_interval(days => setting.retention_days);
    GET DIAGNOSTICS n = ROW_COUNT;
    deleted := deleted + n;
  END LOOP;
  DELETE FROM pgml_kit.prediction_log_default AS l WHERE l.at < pg_catalog.now() - pg_catalog.make_interval(days => keep);
  GET DIAGNOSTICS n = ROW_COUNT;
  deleted := deleted + n;
  first_run := NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
                           WHERE i.inhparent = 'pgml_kit.prediction_log'::pg_catalog.regclass AND c.relname ~ '^prediction_log_p[0-9]{8}$')
               AND NOT EXISTS (SELECT 1 FROM pgml_kit.prediction_log_default);
  FOR day IN
    SELECT d.day FROM (
      SELECT DISTINCT (l.at AT TIME ZONE 'UTC')::date AS day FROM pgml_kit.prediction_log_default AS l
      WHERE l.at < ((today - 1)::timestamp AT TIME ZONE 'UTC')
      UNION
      SELECT today + g FROM pg_catalog.generate_series(
        CASE WHEN first_run OR pg_catalog.to_regclass(pg_catalog.format('pgml_kit.%I', 'prediction_log_p' || pg_catalog.to_char(today, 'YYYYMMDD'))) IS NULL THEN 0 ELSE 1 END,
        greatest(days_ahead, 0)) AS g
    ) AS d ORDER BY d.day
  LOOP
    part := 'prediction_log_p' || pg_catalog.to_char(day, 'YYYYMMDD');
    CONTINUE WHEN pg_catalog.to_regclass(pg_catalog.format('pgml_kit.%I', part)) IS NOT NULL;
    BEGIN
      -- No row may reach the default partition for this day while its rows move out of it.
      LOCK TABLE pgml_kit.prediction_log_default IN SHARE ROW EXCLUSIVE MODE;
      EXECUTE pg_catalog.format('CREATE TABLE pgml_kit.%I (LIKE pgml_kit.prediction_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
      EXECUTE pg_catalog.format('INSERT INTO pgml_kit.%I SELECT * FROM pgml_kit.prediction_log_default WHERE at >= $1 AND at < $2', part)
        USING (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC');
      GET DIAGNOSTICS n = ROW_COUNT;
      DELETE FROM pgml_kit.prediction_log_default WHERE at >= (day::timestamp AT TIME ZONE 'UTC') AND at < ((day + 1)::timestamp AT TIME ZONE 'UTC');
      EXECUTE pg_catalog.format('ALTER TABLE pgml_kit.prediction_log ATTACH PARTITION pgml_kit.%I FOR VALUES FROM (%L) TO (%L)', part,
        (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
      moved := moved + n;
      created := created + 1;
    EXCEPTION WHEN lock_not_available THEN
      skipped := skipped + 1;
    END;
  END LOOP;
  -- A day's partition expires when its last instant is older than the longest retention.
  SELECT coalesce(pg_catalog.array_agg(c.relname::text ORDER BY c.relname), '{}') INTO expired
  FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
  WHERE i.inhparent = 'pgml_kit.prediction_log'::pg_catalog.regclass AND c.relname ~ '^prediction_log_p[0-9]{8}$'
    AND pg_catalog.to_date(pg_catalog.substr(c.relname, 17), 'YYYYMMDD') + 1 <= today - keep;
  PERFORM pg_catalog.set_config('lock_timeout', previous_timeout, true);
  RETURN NEXT;
END
$pgml_kit$;
REVOKE ALL ON FUNCTION pgml_kit.maintain_prediction_log(integer, interval) FROM PUBLIC;
COMMENT ON FUNCTION pgml_kit.maintain_prediction_log(integer, interval) IS 'pgml-kit serving: adds the prediction log''s partitions for the coming days, moves earlier days'' rows out of the default partition, deletes rows past retention; returns the partitions to drop.';

-- Routes: who sets them is session_user, when is the clock; the challenger must be a live alias
-- other than champion. Not SECURITY DEFINER: each check runs with the rights of the role that writes.
CREATE OR REPLACE FUNCTION pgml_kit.route_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgml_kit$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.project IS DISTINCT FROM OLD.project THEN
    RAISE EXCEPTION 'pgml-kit: a route keeps its project' USING ERRCODE = '42501';
  END IF;
  IF EXISTS (SELECT 1 FROM pgml_kit.model_aliases AS a JOIN pgml_kit.model_versions AS v ON v.project = a.project AND v.version = a.version
             WHERE a.project = NEW.project AND a.alias = NEW.alias AND v.archived_at IS NOT NULL) THEN
    RAISE EXCEPTION 'pgml-kit: alias % of project % names an archived version', pg_catalog.quote_literal(NEW.alias), pg_catalog.quote_literal(NEW.project) USING ERRCODE = '23514';
  END IF;
  IF NEW.mode = 'shadow' THEN
    NEW.share := 1;
  END IF;
  NEW.set_by := session_user;
  NEW.set_at := pg_catalog.clock_timestamp();
  RETURN NEW;
END
$pgml_kit$;
REVOKE ALL ON FUNCTION pgml_kit.route_guard() FROM PUBLIC;

-- As in version 6, with the routes' events (route_set with mode and share, route_removed).
CREATE OR REPLACE FUNCTION pgml_kit.registry_record() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $pgml_kit$
DECLARE
  kind text;
BEGIN
  -- Attached by its owner to anything else (anyone else may not execute it), it refuses to run.
  IF TG_RELID IS DISTINCT FROM 'pgml_kit.model_versions'::pg_catalog.regclass AND TG_RELID IS DISTINCT FROM 'pgml_kit.model_aliases'::pg_catalog.regclass
     AND TG_RELID IS DISTINCT FROM 'pgml_kit.model_routes'::pg_catalog.regclass THEN
    RAISE EXCEPTION 'pgml-kit: % is the trigger function of pgml_kit.model_versions, model_aliases and model_routes, not of %', 'pgml_kit.registry_record()', pg_catalog.format('%s.%s', TG_TABLE_SCHEMA, TG_TABLE_NAME) USING ERRCODE = '42501';
  END IF;
  IF TG_TABLE_NAME = 'model_routes' THEN
    -- An update that changes nothing moves nothing, and is no event.
    IF TG_OP = 'UPDATE' AND (NEW.alias, NEW.mode, NEW.share) IS NOT DISTINCT FROM (OLD.alias, OLD.mode, OLD.share) THEN
      RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
      INSERT INTO pgml_kit.model_events (project, event, alias, reason, detail)
      VALUES (OLD.project, 'route_removed', OLD.alias, NULLIF(pg_catalog.current_setting('pgml_kit.reason', true), ''), pg_catalog.jsonb_build_object('mode', OLD.mode, 'share', OLD.share));
    ELSE
      INSERT INTO pgml_kit.model_events (project, event, alias, reason, detail)
      VALUES (NEW.project, 'route_set', NEW.alias, NULLIF(pg_catalog.current_setting('pgml_kit.reason', true), ''),
        pg_catalog.jsonb_build_object('mode', NEW.mode, 'share', NEW.share)
          OPERATOR(pg_catalog.||) CASE WHEN TG_OP = 'UPDATE' THEN pg_catalog.jsonb_build_object('before', pg_catalog.jsonb_build_object('alias', OLD.alias, 'mode', OLD.mode, 'share', OLD.share)) ELSE '{}'::jsonb END);
    END IF;
    RETURN NULL;
  END IF;
  IF TG_TABLE_NAME = 'model_versions' THEN
      IF TG_OP = 'INSERT' THEN
        INSERT INTO pgml_kit.model_events (project, version, event, detail) VALUES (NEW.project, NEW.version, 'registered', pg_catalog.jsonb_build_object('model_id', NEW.model_id));
      ELSE
        IF OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL THEN
          INSERT INTO pgml_kit.model_events (project, version, event, reason) VALUES (NEW.project, NEW.version, 'archived', NEW.archive_reason);
        END IF;
        IF NEW.description IS DISTINCT FROM OLD.description THEN
          INSERT INTO pgml_kit.model_events (project, version, event, detail) VALUES (NEW.project, NEW.version, 'described', pg_catalog.jsonb_build_object('description', NEW.description));
        END IF;
        IF NEW.tags IS DISTINCT FROM OLD.tags THEN
          INSERT INTO pgml_kit.model_events (project, version, event, detail) VALUES (NEW.project, NEW.version, 'tagged', pg_catalog.jsonb_build_object('tags', NEW.tags, 'before', OLD.tags));
        END IF;
      END IF;
    RETURN NULL;
  END IF;
  kind := NULLIF(pg_catalog.current_setting('pgml_kit.alias_event', true), '');
  IF kind IS NOT NULL AND kind NOT IN ('alias_set', 'alias_removed', 'deployed') OR (kind = 'deployed' AND (CASE WHEN TG_OP = 'DELETE' THEN OLD.alias ELSE NEW.alias END) <> 'champion') THEN
    RAISE EXCEPTION 'pgml-kit: an alias change is recorded as alias_set, alias_removed or (champion) deployed, not %', pg_catalog.quote_literal(kind) USING ERRCODE = '22023';
  END IF;
  IF kind IS NULL AND TG_OP <> 'DELETE' AND NEW.alias = 'champion' THEN
    kind := 'deployed';
  END IF;
  INSERT INTO pgml_kit.model_events (project, version, event, alias, from_version, reason, detail)
  VALUES (
    CASE WHEN TG_OP = 'DELETE' THEN OLD.project ELSE NEW.project END,
    CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.version END,
    coalesce(kind, CASE WHEN TG_OP = 'DELETE' THEN 'alias_removed' ELSE 'alias_set' END),
    CASE WHEN TG_OP = 'DELETE' THEN OLD.alias ELSE NEW.alias END,
    CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.version END,
    NULLIF(pg_catalog.current_setting('pgml_kit.reason', true), ''),
    coalesce(NULLIF(pg_catalog.current_setting('pgml_kit.detail', true), '')::jsonb, '{}'::jsonb));
  RETURN NULL;
END
$pgml_kit$;
REVOKE ALL ON FUNCTION pgml_kit.registry_record() FROM PUBLIC;
DROP TRIGGER IF EXISTS route_guard ON pgml_kit.model_routes;
CREATE TRIGGER route_guard BEFORE INSERT OR UPDATE OR DELETE ON pgml_kit.model_routes FOR EACH ROW EXECUTE FUNCTION pgml_kit.route_guard();
DROP TRIGGER IF EXISTS registry_record ON pgml_kit.model_routes;
CREATE TRIGGER registry_record AFTER INSERT OR UPDATE OR DELETE ON pgml_kit.model_routes FOR EACH ROW EXECUTE FUNCTION pgml_kit.registry_record();

-- Embedding drift (`pgml-kit monitor` for embedding columns with `monitor` in the config): the
-- baseline a column is compared with — a sample's size, centroid, spread (mean squared distance to
-- the centroid), effective dimensions, and each sampled row's distance to its nearest neighbour.
CREATE TABLE IF NOT EXISTS pgml_kit.embedding_baselines (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_schema name NOT NULL,
  table_name name NOT NULL,
  column_name name NOT NULL,
  captured_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  captured_by name NOT NULL DEFAULT session_user,
  row_count bigint NOT NULL,
  baseline jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS embedding_baselines_column_idx ON pgml_kit.embedding_baselines (table_schema, table_name, column_name, id);
COMMENT ON TABLE pgml_kit.embedding_baselines IS 'pgml-kit monitor: the baselines embedding columns are compared with (centroid, spread, nearest-neighbour distances of a sample); the latest per column is used.';

-- Today's and the coming week's partitions of the log.
SELECT created, moved, deleted, skipped FROM pgml_kit.maintain_prediction_log();
