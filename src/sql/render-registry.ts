import { quoteIdent } from './quote.js'

/**
 * The statements of the model registry (runtime version 6, sql/runtime/6.up.sql): versions per
 * project, aliases, events. Values are bind parameters throughout.
 */

/** Read from the catalogs, so that a role without USAGE on pgml_kit learns it exists (and then that it may not write it). */
export const REGISTRY_EXISTS = `SELECT pg_catalog.count(*) = 2 AS ok FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'pgml_kit' AND c.relname IN ('model_versions', 'model_events')`

/**
 * Whether this role has `privilege` on a registry relation, read from the catalogs by oid: a role
 * without USAGE on pgml_kit gets false, not the error a name lookup would raise.
 */
function renderRegistryPrivilege(relation: string, privilege: 'SELECT' | 'INSERT'): string {
  return `SELECT coalesce((SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE') AND pg_catalog.has_any_column_privilege(c.oid, '${privilege}')
  FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = 'pgml_kit' AND c.relname = '${relation}'), false) AS ok`
}

/** $1 project: serialises registry changes of one project (numbering, alias moves) until the transaction ends. */
export const LOCK_REGISTRY_PROJECT = `SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pgml_kit.model_versions'), pg_catalog.hashtext($1))`

/**
 * $1 project: gives each of its pgml models without a version the next version numbers, in the
 * order pgml trained them (model id), each with a `registered` event → the versions registered.
 */
export const REGISTER_MISSING_VERSIONS = `WITH missing AS (
  SELECT m.id FROM pgml.models AS m JOIN pgml.projects AS p ON p.id = m.project_id
  WHERE p.name = $1 AND NOT EXISTS (SELECT 1 FROM pgml_kit.model_versions AS v WHERE v.model_id = m.id)
), numbered AS (
  SELECT missing.id, (SELECT coalesce(pg_catalog.max(v.version), 0) FROM pgml_kit.model_versions AS v WHERE v.project = $1)
    + (pg_catalog.row_number() OVER (ORDER BY missing.id))::integer AS version
  FROM missing
)
INSERT INTO pgml_kit.model_versions (project, version, model_id) SELECT $1, numbered.version, numbered.id FROM numbered
RETURNING version`

/** Whether this role may read pgml's models and projects (to register them). */
export const CAN_READ_PGML_MODELS = `SELECT coalesce((SELECT pg_catalog.bool_and(pg_catalog.has_schema_privilege(n.oid, 'USAGE') AND pg_catalog.has_table_privilege(c.oid, 'SELECT')) AND pg_catalog.count(*) = 2
  FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = 'pgml' AND c.relname IN ('models', 'projects')), false) AS ok`

/** $1 model id: pgml serves this model for its project. */
export const DEPLOY_MODEL = `SELECT * FROM pgml.deploy($1::bigint)`

/** $1 project, $2 strategy (best_score, most_recent, rollback), and with `algorithm` $3 the algorithm it picks among. */
export function renderDeployByStrategy(algorithm: boolean): string {
  return algorithm ? `SELECT * FROM pgml.deploy($1, $2::pgml.strategy, $3::pgml.algorithm)` : `SELECT * FROM pgml.deploy($1, $2::pgml.strategy)`
}

/** $1 project → the model pgml serves for it now (its latest deployment), or no row. */
export const DEPLOYED_MODEL = `SELECT d.model_id::text AS model_id FROM pgml.deployments AS d JOIN pgml.projects AS p ON p.id = d.project_id
WHERE p.name = $1 ORDER BY d.id DESC LIMIT 1`

/** $1 project, $2 model id → its version and whether it is archived. */
export const VERSION_OF_MODEL = `SELECT v.version, v.archived_at IS NOT NULL AS archived FROM pgml_kit.model_versions AS v WHERE v.project = $1 AND v.model_id = $2`

/** $1 project, $2 model ids → their versions, in order. */
export const VERSIONS_OF_MODELS = `SELECT v.version FROM pgml_kit.model_versions AS v WHERE v.project = $1 AND v.model_id = ANY ($2::bigint[]) ORDER BY v.version`

/** $1 project, $2 version → the version's model id and whether it is archived. */
export const READ_VERSION = `SELECT v.model_id::text AS model_id, v.archived_at IS NOT NULL AS archived, v.tags, v.description FROM pgml_kit.model_versions AS v
WHERE v.project = $1 AND v.version = $2 FOR UPDATE`

/** $1 project, $2 alias → the version it names (locked until the transaction ends), or no row. */
export const READ_ALIAS = `SELECT a.version FROM pgml_kit.model_aliases AS a WHERE a.project = $1 AND a.alias = $2 FOR UPDATE`

/** $1 project, $2 version → the aliases that name it. */
export const ALIASES_OF_VERSION = `SELECT a.alias FROM pgml_kit.model_aliases AS a WHERE a.project = $1 AND a.version = $2 ORDER BY a.alias`

/** $1 project, $2 alias, $3 version: points the alias at the version. */
export const SET_ALIAS = `INSERT INTO pgml_kit.model_aliases AS a (project, alias, version) VALUES ($1, $2, $3)
ON CONFLICT (project, alias) DO UPDATE SET version = EXCLUDED.version`

/**
 * $1 event kind (alias_set, deployed, alias_removed; '' for the default), $2 reason, $3 detail (jsonb
 * text): what the next alias change of this transaction records (the registry's trigger writes the
 * event; see sql/runtime/6.up.sql).
 */
export const SET_ALIAS_EVENT = `SELECT pg_catalog.set_config('pgml_kit.alias_event', $1, true), pg_catalog.set_config('pgml_kit.reason', $2, true), pg_catalog.set_config('pgml_kit.detail', $3, true)`

/** $1 project, $2 alias. */
export const REMOVE_ALIAS = `DELETE FROM pgml_kit.model_aliases WHERE project = $1 AND alias = $2`

/** $1 project, $2 version, $3 reason. */
export const ARCHIVE_VERSION = `UPDATE pgml_kit.model_versions SET archived_at = pg_catalog.now(), archive_reason = $3
WHERE project = $1 AND version = $2 AND archived_at IS NULL`

/** $1 project, $2 version, $3 description, $4 tags (jsonb text). */
export const DESCRIBE_VERSION = `UPDATE pgml_kit.model_versions SET description = $3, tags = $4::jsonb WHERE project = $1 AND version = $2`

/**
 * $1 project → every version with what pgml knows of its model (NULL when pgml no longer has it),
 * its aliases, and whether pgml serves it now.
 */
export const LIST_VERSIONS = `SELECT v.version, v.model_id::text AS model_id, m.algorithm::text AS algorithm, m.status::text AS status, m.metrics, m.created_at,
  v.description, v.tags, v.registered_at, v.registered_by::text AS registered_by, v.archived_at, v.archived_by::text AS archived_by, v.archive_reason,
  coalesce((SELECT pg_catalog.array_agg(a.alias ORDER BY a.alias) FROM pgml_kit.model_aliases AS a WHERE a.project = v.project AND a.version = v.version), '{}') AS aliases,
  coalesce(v.model_id = (SELECT d.model_id FROM pgml.deployments AS d JOIN pgml.projects AS p ON p.id = d.project_id WHERE p.name = v.project ORDER BY d.id DESC LIMIT 1), false) AS deployed
FROM pgml_kit.model_versions AS v LEFT JOIN pgml.models AS m ON m.id = v.model_id
WHERE v.project = $1 ORDER BY v.version`

/** $1 project → its events, oldest first. */
export const LIST_EVENTS = `SELECT e.id::text AS id, e.version, e.event, e.alias, e.from_version, e.actor::text AS actor, e.at, e.reason, e.detail
FROM pgml_kit.model_events AS e WHERE e.project = $1 ORDER BY e.id`

/** $1 reference (project@alias, project@v3) → the model id it names; errors for unknown or archived ones. */
export const RESOLVE_REFERENCE = `SELECT pgml_kit.model_id($1)::text AS model_id`

/** $1 relation (as pgml.train names it) → whether this role may read it (so its rows can be digested). */
export const CAN_READ_RELATION = `SELECT coalesce(pg_catalog.has_table_privilege(pg_catalog.to_regclass($1), 'SELECT'), false) AS ok`

/**
 * The rows of `relation` (a name as pgml.train is given it, quoted by the resolver) in the current
 * snapshot: how many, and a sha256 over their md5s sorted — the same rows give the same digest
 * whatever order a scan returns them in.
 */
export function renderRowsDigest(relation: string): string {
  return `SELECT pg_catalog.count(*)::text AS row_count,
  pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(coalesce(pg_catalog.string_agg(r.h, '' ORDER BY r.h), ''), 'UTF8')), 'hex') AS rows_sha256
FROM (SELECT pg_catalog.md5(t::text) AS h FROM ${relation} AS t) AS r`
}

/** What trained a model: the server, pgml and its extensions' versions; `pgml_version` when pgml.version() may be called. */
export const TRAINING_ENVIRONMENT = `SELECT pg_catalog.jsonb_build_object(
  'server_version', pg_catalog.current_setting('server_version'),
  'extensions', (SELECT pg_catalog.jsonb_object_agg(e.extname, e.extversion) FROM pg_catalog.pg_extension AS e WHERE e.extname IN ('pgml', 'pgml_compat', 'vector'))
) AS environment,
coalesce(pg_catalog.has_function_privilege(pg_catalog.to_regprocedure('pgml.version()'), 'EXECUTE'), false) AS has_version`

export const PGML_VERSION = `SELECT pgml.version() AS v`

/** Whether this role may record lineage (roles.trainer, or the owner). */
export const CAN_RECORD_LINEAGE = renderRegistryPrivilege('model_lineage', 'INSERT')

/** $1 model id, $2 project, $3 relation, $4 row count, $5 sha256, $6 config (jsonb), $7 feature views (jsonb), $8 environment (jsonb), $9 train SQL, $10 drift baseline (jsonb). */
export const INSERT_MODEL_LINEAGE = `INSERT INTO pgml_kit.model_lineage (model_id, project, relation, row_count, rows_sha256, training_config, feature_views, environment, train_sql, baseline)
VALUES ($1, $2, $3, $4::bigint, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10::jsonb)`

/** Whether this role may read the registry's lineage. */
export const CAN_READ_LINEAGE = renderRegistryPrivilege('model_lineage', 'SELECT')

/** $1 project → lineage rows of its models, as json. */
export const READ_MODEL_LINEAGE = `SELECT l.model_id::text AS model_id, pg_catalog.to_jsonb(l) AS lineage FROM pgml_kit.model_lineage AS l WHERE l.project = $1`

/** How many rows a drift baseline or a monitor run samples. */
export const DRIFT_SAMPLE_ROWS = 1000

/** $1 relation → its columns in order, and whether each is a number pgml takes as is. */
export const RELATION_COLUMNS = `SELECT a.attname::text AS name,
  a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype, 'pg_catalog.int8'::pg_catalog.regtype,
                 'pg_catalog.float4'::pg_catalog.regtype, 'pg_catalog.float8'::pg_catalog.regtype, 'pg_catalog.numeric'::pg_catalog.regtype) AS is_number
FROM pg_catalog.pg_attribute AS a WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`

/**
 * A deterministic sample of the relation's rows (ordered by the md5 of the whole row, so the same
 * rows give the same sample): `features` as double precision, and with `predict` the prediction of
 * the model $1 on them, its features in the order pgml takes them.
 */
export function renderDriftSample(relation: string, features: readonly string[], options: { readonly predict: boolean }): string {
  const cols = features.map((f, i) => `t.${quoteIdent(f)}::double precision AS c${i}`)
  const prediction = options.predict ? [`pgml.predict($1::bigint, ARRAY[${features.map((f) => `t.${quoteIdent(f)}`).join(', ')}]::real[])::double precision AS p`] : []
  return `SELECT ${[...cols, ...prediction].join(', ')}
FROM (SELECT * FROM ${relation} AS s ORDER BY pg_catalog.md5(s::text) LIMIT ${DRIFT_SAMPLE_ROWS}) AS t`
}

/** $1 model id → its lineage's relation and drift baseline. */
export const READ_BASELINE = `SELECT l.relation, l.baseline FROM pgml_kit.model_lineage AS l WHERE l.model_id = $1`

/** $1 project, $2 version, $3 model id, $4 rows compared, $5 alarms, $6 metrics (jsonb text). */
export const RECORD_MONITOR_RUN = `INSERT INTO pgml_kit.monitor_runs (project, version, model_id, current_rows, alarms, metrics) VALUES ($1, $2, $3, $4, $5::text[], $6::jsonb) RETURNING id::text AS id, at`

/** $1 project → its monitor runs, oldest first. */
export const LIST_MONITOR_RUNS = `SELECT r.id::text AS id, r.version, r.model_id::text AS model_id, r.at, r.run_by::text AS run_by, r.current_rows::int AS current_rows, r.alarms, r.metrics
FROM pgml_kit.monitor_runs AS r WHERE r.project = $1 ORDER BY r.at, r.id`
