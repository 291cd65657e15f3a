-- pgml_kit runtime schema, version 6: the model registry. Each model pgml trained for a project
-- gets a version number of that project (1, 2, 3, in the order pgml trained them), a description
-- and tags; aliases (`champion`, `challenger`, ...) name a version, and applications predict with
-- `pgml.predict(pgml_kit.model_id('churn@challenger'), features)`. Every registration, deployment,
-- alias move, description, tag and archive is an event: who (session_user), when, why, and the
-- version it moved from. Written by `pgml-kit train`, `deploy` and `models` (the roles in
-- `roles.trainer` are granted that); read by applications (`roles.app`).
UPDATE pgml_kit.runtime_version SET version = 6, installed_at = pg_catalog.now() WHERE version < 6;

CREATE TABLE IF NOT EXISTS pgml_kit.model_versions (
  project text NOT NULL,
  -- squawk-ignore prefer-bigint-over-int -- a version number of one project
  version integer NOT NULL CHECK (version > 0),
  model_id bigint NOT NULL UNIQUE,
  description text,
  tags jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(tags) = 'object'),
  registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  registered_by name NOT NULL DEFAULT session_user,
  archived_at timestamptz,
  archived_by name,
  archive_reason text,
  PRIMARY KEY (project, version)
);
COMMENT ON TABLE pgml_kit.model_versions IS 'pgml-kit model registry: each model pgml trained for a project, numbered per project (1, 2, 3) in training order, with its description, tags and whether it is archived (never served again).';

CREATE TABLE IF NOT EXISTS pgml_kit.model_aliases (
  project text NOT NULL,
  alias text NOT NULL CHECK (alias ~ '^[a-z][a-z0-9_-]{0,62}$' AND alias !~ '^v[0-9]+$'),
  -- squawk-ignore prefer-bigint-over-int -- a version number of one project
  version integer NOT NULL,
  set_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  set_by name NOT NULL DEFAULT session_user,
  PRIMARY KEY (project, alias),
  FOREIGN KEY (project, version) REFERENCES pgml_kit.model_versions (project, version)
);
COMMENT ON TABLE pgml_kit.model_aliases IS 'pgml-kit model registry: the version each alias of a project names (champion: the version pgml-kit deployed last). Moved in one transaction with its event.';

CREATE TABLE IF NOT EXISTS pgml_kit.model_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project text NOT NULL,
  -- squawk-ignore prefer-bigint-over-int -- a version number of one project
  version integer,
  event text NOT NULL CHECK (event IN ('registered', 'deployed', 'alias_set', 'alias_removed', 'described', 'tagged', 'archived')),
  alias text,
  -- squawk-ignore prefer-bigint-over-int -- a version number of one project
  from_version integer,
  actor name NOT NULL DEFAULT session_user,
  at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  reason text,
  detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS model_events_project_idx ON pgml_kit.model_events (project, id);
COMMENT ON TABLE pgml_kit.model_events IS 'pgml-kit model registry: every registration, deployment, alias move, description, tag and archive, with who (session_user), when, why and the version it moved from. Append-only.';

CREATE TABLE IF NOT EXISTS pgml_kit.model_lineage (
  model_id bigint PRIMARY KEY,
  project text NOT NULL,
  relation text NOT NULL,
  row_count bigint,
  rows_sha256 text,
  training_config jsonb NOT NULL,
  feature_views jsonb NOT NULL DEFAULT '[]',
  environment jsonb NOT NULL DEFAULT '{}',
  train_sql text NOT NULL,
  baseline jsonb,
  trained_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  trained_by name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE pgml_kit.model_lineage IS 'pgml-kit model registry: for each model pgml-kit train trained, the rows it trained on (count, and a sha256 over their sorted md5s, read in the snapshot pgml.train read), its config, each feature view''s definition and materialisation mark, and the versions of pgml, its extensions and pgml-kit.';

-- Lineage as a graph: one row per edge artifact -> execution -> artifact. The execution is the
-- training run (pgml-kit train) that made a model; its inputs are the relation's rows (by digest)
-- and each feature view (by definition and high-water mark); its output, the model's version.
CREATE OR REPLACE VIEW pgml_kit.lineage_edges AS
SELECT 'train:' || l.model_id::text AS execution, 'relation'::text AS input_kind,
       l.relation AS input, pg_catalog.jsonb_build_object('rows', l.row_count, 'sha256', l.rows_sha256) AS input_identity,
       'model'::text AS output_kind, l.project || '@v' || v.version::text AS output, l.model_id, l.trained_at, l.trained_by
FROM pgml_kit.model_lineage AS l LEFT JOIN pgml_kit.model_versions AS v ON v.model_id = l.model_id
UNION ALL
SELECT 'train:' || l.model_id::text, 'feature_view', f.value OPERATOR(pg_catalog.->>) 'name'::text,
       pg_catalog.jsonb_build_object('definition_sha256', f.value OPERATOR(pg_catalog.->) 'definitionSha256'::text, 'high_water_mark', f.value OPERATOR(pg_catalog.->) 'highWaterMark'::text),
       'model', l.project || '@v' || v.version::text, l.model_id, l.trained_at, l.trained_by
FROM pgml_kit.model_lineage AS l LEFT JOIN pgml_kit.model_versions AS v ON v.model_id = l.model_id
CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(l.feature_views) AS f(value);
COMMENT ON VIEW pgml_kit.lineage_edges IS 'pgml-kit model registry: lineage as edges input artifact -> execution (a training run) -> output artifact (a model version).';

CREATE TABLE IF NOT EXISTS pgml_kit.monitor_runs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project text NOT NULL,
  -- squawk-ignore prefer-bigint-over-int -- a version number of one project
  version integer,
  model_id bigint NOT NULL,
  at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  run_by name NOT NULL DEFAULT session_user,
  current_rows bigint NOT NULL,
  alarms text[] NOT NULL,
  metrics jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS monitor_runs_project_idx ON pgml_kit.monitor_runs (project, at);
COMMENT ON TABLE pgml_kit.monitor_runs IS 'pgml-kit monitor: each run per deployed project: feature and prediction drift (PSI, KS) against the training baseline, the alarms raised.';

-- What the registry keeps true whoever writes it (roles.trainer are granted writing its tables,
-- column by column: never an id, an actor or a time). Every event is written here, as the
-- consequence of the change it describes — a version registered, described, tagged or archived,
-- an alias set, moved or removed — never inserted on its own; its actor and time are session_user
-- and the clock, and it is never changed or removed. A version names a model of its own project
-- and keeps its number and model; an archived version stays archived, and is archived only with a
-- reason, while no alias names it and pgml does not serve it; an alias keeps its project and name;
-- `champion` names only the version pgml serves; lineage is recorded for models of the project,
-- once. pgml-kit passes the kind (`deployed` for champion), reason and detail of an alias move
-- through the transaction-local settings pgml_kit.alias_event, pgml_kit.reason and pgml_kit.detail.
-- Not SECURITY DEFINER: each check runs with the rights of the role that writes.
CREATE OR REPLACE FUNCTION pgml_kit.registry_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgml_kit$
DECLARE
  kind text;
  served bigint;
BEGIN
  IF TG_TABLE_NAME = 'model_events' THEN
    IF TG_OP <> 'INSERT' THEN
      RAISE EXCEPTION 'pgml-kit: the model registry''s events are never changed or removed' USING ERRCODE = '42501';
    END IF;
    IF pg_catalog.pg_trigger_depth() < 2 OR current_user IS DISTINCT FROM (SELECT c.relowner::pg_catalog.regrole::pg_catalog.name FROM pg_catalog.pg_class AS c WHERE c.oid = TG_RELID) THEN
      RAISE EXCEPTION 'pgml-kit: the model registry writes its events itself, from the change they record' USING ERRCODE = '42501';
    END IF;
    NEW.actor := session_user;
    NEW.at := pg_catalog.clock_timestamp();
    RETURN NEW;
  END IF;

  IF TG_TABLE_NAME IN ('model_lineage', 'monitor_runs') THEN
    IF TG_OP <> 'INSERT' THEN
      RAISE EXCEPTION 'pgml-kit: % rows are never changed or removed', TG_TABLE_NAME USING ERRCODE = '42501';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pgml.models AS m JOIN pgml.projects AS p ON p.id = m.project_id WHERE m.id = NEW.model_id AND p.name = NEW.project) THEN
      RAISE EXCEPTION 'pgml-kit: model % is not a model of project %', NEW.model_id, pg_catalog.quote_literal(NEW.project) USING ERRCODE = '23514';
    END IF;
    IF TG_TABLE_NAME = 'model_lineage' THEN
      NEW.trained_by := session_user;
      NEW.trained_at := pg_catalog.now();
    ELSE
      NEW.run_by := session_user;
      NEW.at := pg_catalog.now();
    END IF;
    RETURN NEW;
  END IF;

  IF TG_TABLE_NAME = 'model_versions' THEN
    IF TG_OP = 'DELETE' THEN
      RAISE EXCEPTION 'pgml-kit: versions of the model registry are never removed (archive them)' USING ERRCODE = '42501';
    ELSIF TG_OP = 'INSERT' THEN
      IF NOT EXISTS (SELECT 1 FROM pgml.models AS m JOIN pgml.projects AS p ON p.id = m.project_id WHERE m.id = NEW.model_id AND p.name = NEW.project) THEN
        RAISE EXCEPTION 'pgml-kit: model % is not a model of project %', NEW.model_id, pg_catalog.quote_literal(NEW.project) USING ERRCODE = '23514';
      END IF;
      NEW.registered_by := session_user;
      NEW.registered_at := pg_catalog.now();
      NEW.archived_at := NULL;
      NEW.archived_by := NULL;
      NEW.archive_reason := NULL;
    ELSE
      IF (NEW.project, NEW.version, NEW.model_id, NEW.registered_at, NEW.registered_by) IS DISTINCT FROM (OLD.project, OLD.version, OLD.model_id, OLD.registered_at, OLD.registered_by) THEN
        RAISE EXCEPTION 'pgml-kit: a registry version keeps its project, number, model and registration' USING ERRCODE = '42501';
      END IF;
      IF OLD.archived_at IS NOT NULL AND (NEW.archived_at, NEW.archived_by, NEW.archive_reason) IS DISTINCT FROM (OLD.archived_at, OLD.archived_by, OLD.archive_reason) THEN
        RAISE EXCEPTION 'pgml-kit: version % of project % is archived and stays archived', OLD.version, pg_catalog.quote_literal(OLD.project) USING ERRCODE = '42501';
      END IF;
      IF OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL THEN
        IF pg_catalog.btrim(coalesce(NEW.archive_reason, '')) = '' THEN
          RAISE EXCEPTION 'pgml-kit: archiving version % of project % needs a reason', NEW.version, pg_catalog.quote_literal(NEW.project) USING ERRCODE = '23514';
        END IF;
        IF EXISTS (SELECT 1 FROM pgml_kit.model_aliases AS a WHERE a.project = NEW.project AND a.version = NEW.version) THEN
          RAISE EXCEPTION 'pgml-kit: version % of project % is named by an alias; move it first', NEW.version, pg_catalog.quote_literal(NEW.project) USING ERRCODE = '23514';
        END IF;
        SELECT d.model_id INTO served FROM pgml.deployments AS d JOIN pgml.projects AS p ON p.id = d.project_id WHERE p.name = NEW.project ORDER BY d.id DESC LIMIT 1;
        IF served = NEW.model_id THEN
          RAISE EXCEPTION 'pgml-kit: version % of project % is the model pgml serves; deploy another first', NEW.version, pg_catalog.quote_literal(NEW.project) USING ERRCODE = '23514';
        END IF;
        NEW.archived_at := pg_catalog.now();
        NEW.archived_by := session_user;
      END IF;
    END IF;
    RETURN NEW;
  END IF;

  -- model_aliases
  IF TG_WHEN = 'BEFORE' THEN
    IF TG_OP = 'DELETE' THEN
      IF OLD.alias = 'champion' AND pg_catalog.current_setting('pgml_kit.alias_event', true) IS DISTINCT FROM 'deployed' THEN
        RAISE EXCEPTION 'pgml-kit: champion is the version pgml serves; it is never removed' USING ERRCODE = '23514';
      END IF;
      RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.project, NEW.alias) IS DISTINCT FROM (OLD.project, OLD.alias) THEN
      RAISE EXCEPTION 'pgml-kit: an alias keeps its project and name (remove it, and set another)' USING ERRCODE = '42501';
    END IF;
    IF EXISTS (SELECT 1 FROM pgml_kit.model_versions AS v WHERE v.project = NEW.project AND v.version = NEW.version AND v.archived_at IS NOT NULL) THEN
      RAISE EXCEPTION 'pgml-kit: version % of project % is archived; no alias may name it', NEW.version, pg_catalog.quote_literal(NEW.project) USING ERRCODE = '23514';
    END IF;
    IF NEW.alias = 'champion' THEN
      SELECT d.model_id INTO served FROM pgml.deployments AS d JOIN pgml.projects AS p ON p.id = d.project_id WHERE p.name = NEW.project ORDER BY d.id DESC LIMIT 1;
      IF served IS DISTINCT FROM (SELECT v.model_id FROM pgml_kit.model_versions AS v WHERE v.project = NEW.project AND v.version = NEW.version) THEN
        RAISE EXCEPTION 'pgml-kit: champion names the version pgml serves for %; deploy version % to make it champion', pg_catalog.quote_literal(NEW.project), NEW.version USING ERRCODE = '23514';
      END IF;
    END IF;
    NEW.set_by := session_user;
    NEW.set_at := pg_catalog.now();
    RETURN NEW;
  END IF;
  RETURN NULL;
END
$pgml_kit$;

-- The events, written as the owner (SECURITY DEFINER, pinned search_path): nobody else may insert
-- into model_events. It runs no code and reads no name from what it records — only the row's
-- values, session_user and pgml-kit's three transaction-local settings, as data.
CREATE OR REPLACE FUNCTION pgml_kit.registry_record() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $pgml_kit$
DECLARE
  kind text;
BEGIN
  -- Attached by its owner to anything else (anyone else may not execute it), it refuses to run.
  IF TG_RELID IS DISTINCT FROM 'pgml_kit.model_versions'::pg_catalog.regclass AND TG_RELID IS DISTINCT FROM 'pgml_kit.model_aliases'::pg_catalog.regclass THEN
    RAISE EXCEPTION 'pgml-kit: % is the trigger function of pgml_kit.model_versions and pgml_kit.model_aliases, not of %', 'pgml_kit.registry_record()', pg_catalog.format('%s.%s', TG_TABLE_SCHEMA, TG_TABLE_NAME) USING ERRCODE = '42501';
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
REVOKE ALL ON FUNCTION pgml_kit.registry_guard() FROM PUBLIC;
DROP TRIGGER IF EXISTS registry_guard ON pgml_kit.model_events;
CREATE TRIGGER registry_guard BEFORE INSERT OR UPDATE OR DELETE ON pgml_kit.model_events FOR EACH ROW EXECUTE FUNCTION pgml_kit.registry_guard();
DROP TRIGGER IF EXISTS registry_guard ON pgml_kit.model_versions;
CREATE TRIGGER registry_guard BEFORE INSERT OR UPDATE OR DELETE ON pgml_kit.model_versions FOR EACH ROW EXECUTE FUNCTION pgml_kit.registry_guard();
DROP TRIGGER IF EXISTS registry_record ON pgml_kit.model_versions;
CREATE TRIGGER registry_record AFTER INSERT OR UPDATE ON pgml_kit.model_versions FOR EACH ROW EXECUTE FUNCTION pgml_kit.registry_record();
DROP TRIGGER IF EXISTS registry_guard ON pgml_kit.model_aliases;
CREATE TRIGGER registry_guard BEFORE INSERT OR UPDATE OR DELETE ON pgml_kit.model_aliases FOR EACH ROW EXECUTE FUNCTION pgml_kit.registry_guard();
DROP TRIGGER IF EXISTS registry_record ON pgml_kit.model_aliases;
CREATE TRIGGER registry_record AFTER INSERT OR UPDATE OR DELETE ON pgml_kit.model_aliases FOR EACH ROW EXECUTE FUNCTION pgml_kit.registry_record();
DROP TRIGGER IF EXISTS registry_guard ON pgml_kit.model_lineage;
CREATE TRIGGER registry_guard BEFORE INSERT OR UPDATE OR DELETE ON pgml_kit.model_lineage FOR EACH ROW EXECUTE FUNCTION pgml_kit.registry_guard();
DROP TRIGGER IF EXISTS registry_guard ON pgml_kit.monitor_runs;
CREATE TRIGGER registry_guard BEFORE INSERT OR UPDATE OR DELETE ON pgml_kit.monitor_runs FOR EACH ROW EXECUTE FUNCTION pgml_kit.registry_guard();

-- The model a reference names: 'project@alias' (an alias of the registry), 'project@v3' (version 3).
-- An archived version is never served: naming it, or an alias of it, is an error. A project name
-- may itself contain '@': the reference is split at its last one.
CREATE OR REPLACE FUNCTION pgml_kit.model_id(reference text) RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $pgml_kit$
DECLARE
  at_sign integer := pg_catalog.length(reference) - pg_catalog.strpos(pg_catalog.reverse(reference), '@') + 1;
  project_name text;
  alias_name text;
  found record;
BEGIN
  IF reference IS NULL THEN
    RETURN NULL;
  END IF;
  IF pg_catalog.strpos(reference, '@') = 0 THEN
    RAISE EXCEPTION 'pgml-kit: % names no version or alias', pg_catalog.quote_literal(reference)
      USING ERRCODE = '22023', HINT = 'write project@alias (e.g. churn@champion) or project@v3; pgml.predict(''project'', ...) serves the deployed model';
  END IF;
  project_name := pg_catalog.left(reference, at_sign - 1);
  alias_name := pg_catalog.substr(reference, at_sign + 1);
  IF alias_name ~ '^v[1-9][0-9]{0,8}$' THEN
    SELECT v.model_id, v.version, v.archived_at INTO found FROM pgml_kit.model_versions AS v
    WHERE v.project = project_name AND v.version = pg_catalog.substr(alias_name, 2)::integer;
  ELSE
    SELECT v.model_id, v.version, v.archived_at INTO found FROM pgml_kit.model_aliases AS a
    JOIN pgml_kit.model_versions AS v ON v.project = a.project AND v.version = a.version
    WHERE a.project = project_name AND a.alias = alias_name;
  END IF;
  IF found.model_id IS NULL THEN
    RAISE EXCEPTION 'pgml-kit: project % has no %', pg_catalog.quote_literal(project_name),
      CASE WHEN alias_name ~ '^v[0-9]+$' THEN 'version ' || pg_catalog.substr(alias_name, 2) ELSE 'alias ' || pg_catalog.quote_literal(alias_name) END
      USING ERRCODE = '22023', HINT = 'pgml-kit models ' || project_name || ' lists its versions and aliases';
  END IF;
  IF found.archived_at IS NOT NULL THEN
    RAISE EXCEPTION 'pgml-kit: version % of project % is archived and is not served', found.version, pg_catalog.quote_literal(project_name)
      USING ERRCODE = '22023', HINT = 'move the alias to a live version: pgml-kit models alias ' || project_name || ' <alias> <version>';
  END IF;
  RETURN found.model_id;
END
$pgml_kit$;
COMMENT ON FUNCTION pgml_kit.model_id(text) IS 'pgml-kit model registry: the pgml model id that project@alias or project@v<version> names (an error for an archived version).';
