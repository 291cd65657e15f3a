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
SELECT 'train:' || l.model_id::text, 'feature_view', f.value ->> 'name',
       pg_catalog.jsonb_build_object('definition_sha256', f.value -> 'definitionSha256', 'high_water_mark', f.value -> 'highWaterMark'),
       'model', l.project || '@v' || v.version::text, l.model_id, l.trained_at, l.trained_by
FROM pgml_kit.model_lineage AS l LEFT JOIN pgml_kit.model_versions AS v ON v.model_id = l.model_id
CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(l.feature_views) AS f(value);
COMMENT ON VIEW pgml_kit.lineage_edges IS 'pgml-kit model registry: lineage as edges input artifact -> execution (a training run) -> output artifact (a model version).';

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
  IF alias_name ~ '^v[0-9]{1,9}$' THEN
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
