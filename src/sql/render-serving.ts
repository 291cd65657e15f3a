import type { PredictionLogNode } from '../model/ir.js'
import { quoteIdent, quoteLiteral } from './quote.js'

/**
 * The statements of serving through the registry (runtime version 7, sql/runtime/7.up.sql):
 * routes (shadow, canary), the prediction log's settings and maintenance, and what `models compare`
 * and `monitor` read from the log. Values are bind parameters, except in migrations (literals).
 */

/** A project's prediction log turned on or changed (migration, as the owner), and its partitions made. */
export function renderSetPredictionLog(node: PredictionLogNode): string[] {
  return [
    `INSERT INTO pgml_kit.prediction_log_settings (project, sample, retention_days) VALUES (${quoteLiteral(node.project)}, ${node.sample}, ${node.retentionDays})
  ON CONFLICT (project) DO UPDATE SET sample = EXCLUDED.sample, retention_days = EXCLUDED.retention_days;`,
    'SELECT created, moved, deleted, skipped FROM pgml_kit.maintain_prediction_log();',
  ]
}

/** A project's prediction log turned off: nothing more is logged; what was logged is kept until the longest retention. */
export function renderRemovePredictionLog(project: string): string[] {
  return [`DELETE FROM pgml_kit.prediction_log_settings WHERE project = ${quoteLiteral(project)};`]
}

/** $1 days ahead → partitions created, rows moved out of the default partition, rows deleted, days left for the next run (a lock not had in time), partitions past retention (to drop). */
export const MAINTAIN_PREDICTION_LOG = 'SELECT created, moved, deleted, skipped, expired FROM pgml_kit.maintain_prediction_log($1::integer)'

/** The partition of the log a maintenance run named as expired (a name it made: prediction_log_pYYYYMMDD). */
export const EXPIRED_PARTITION = /^prediction_log_p\d{8}$/

/** Drops one expired partition of the log; run in a transaction of its own with a short lock_timeout (it needs the log's lock for a moment). */
export function renderDropLogPartition(name: string): string {
  return `DROP TABLE pgml_kit.${quoteIdent(name)}`
}

/** How long dropping one expired partition may wait for the log's lock: requests that log wait behind it meanwhile. */
export const DROP_PARTITION_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '200ms'"

/** Whether the runtime serves through the registry (version 7: pgml_kit.model_routes exists). */
export const SERVING_EXISTS = `SELECT pg_catalog.count(*) = 2 AS ok FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'pgml_kit' AND c.relname IN ('model_routes', 'prediction_log')`

/** $1 project, $2 alias, $3 mode, $4 share: sets (or changes) the project's route; the registry records route_set. */
export const SET_ROUTE = `INSERT INTO pgml_kit.model_routes (project, alias, mode, share) VALUES ($1, $2, $3, $4)
ON CONFLICT (project) DO UPDATE SET alias = EXCLUDED.alias, mode = EXCLUDED.mode, share = EXCLUDED.share
RETURNING alias, mode, share, set_at, set_by::text AS set_by`

/** $1 project: removes its route (route_removed) → the route it had. */
export const REMOVE_ROUTE = 'DELETE FROM pgml_kit.model_routes WHERE project = $1 RETURNING alias, mode, share'

/** $1 project → its route, with the version the alias names. */
export const READ_ROUTE = `SELECT r.alias, r.mode, r.share, r.set_at, r.set_by::text AS set_by, a.version
FROM pgml_kit.model_routes AS r JOIN pgml_kit.model_aliases AS a ON a.project = r.project AND a.alias = r.alias
WHERE r.project = $1`

/** $1 project, $2 alias → the route that names it (runtime ≥ 7: check SERVING_EXISTS first). */
export const ROUTE_OF_ALIAS = 'SELECT r.alias FROM pgml_kit.model_routes AS r WHERE r.project = $1 AND r.alias = $2'

/** $1 project → its log settings, if on. */
export const READ_LOG_SETTINGS = 'SELECT sample, retention_days FROM pgml_kit.prediction_log_settings WHERE project = $1'

/**
 * $1 project, $2 since → per arm and version: requests logged, predictions' mean, errors; and for
 * the shadow's pairs (the same request_id), how often the two agree (classification: the same
 * class; regression: within $3 of each other), their mean absolute difference and correlation.
 */
export const COMPARE_ARMS = `SELECT l.arm, l.version, l.model_id, pg_catalog.count(*)::bigint AS requests,
  pg_catalog.count(l.error)::bigint AS errors, pg_catalog.avg(l.prediction)::float8 AS mean,
  pg_catalog.min(l.at) AS first_at, pg_catalog.max(l.at) AS last_at
FROM pgml_kit.prediction_log AS l WHERE l.project = $1 AND l.at >= $2
GROUP BY l.arm, l.version, l.model_id ORDER BY l.arm, l.version`

export const COMPARE_SHADOW = `SELECT pg_catalog.count(*)::bigint AS pairs,
  pg_catalog.avg(CASE WHEN pg_catalog.abs(c.prediction - s.prediction) <= $3 THEN 1.0 ELSE 0.0 END)::float8 AS agreement,
  pg_catalog.avg(pg_catalog.abs(c.prediction - s.prediction))::float8 AS mean_abs_difference,
  pg_catalog.corr(c.prediction, s.prediction)::float8 AS correlation
FROM pgml_kit.prediction_log AS c
JOIN pgml_kit.prediction_log AS s ON s.request_id = c.request_id AND s.project = c.project AND s.at = c.at AND s.arm = 'shadow'
WHERE c.project = $1 AND c.at >= $2 AND c.arm = 'champion' AND s.prediction IS NOT NULL AND c.prediction IS NOT NULL`

/**
 * The same arms scored on the requests whose outcome `labels` holds (its key column, as text,
 * equal to the logged entity key): classification accuracy, regression RMSE and MAE. $1 project,
 * $2 since. `relation` is quoted by the config's resolution; key and label are identifiers.
 */
export function renderCompareLabelled(relation: string, key: string, label: string): string {
  return `SELECT l.arm, l.version, pg_catalog.count(*)::bigint AS labelled,
  pg_catalog.avg(CASE WHEN l.prediction::float8 = y.label THEN 1.0 ELSE 0.0 END)::float8 AS accuracy,
  pg_catalog.sqrt(pg_catalog.avg((l.prediction::float8 - y.label) ^ 2))::float8 AS rmse,
  pg_catalog.avg(pg_catalog.abs(l.prediction::float8 - y.label))::float8 AS mae
FROM pgml_kit.prediction_log AS l
JOIN (SELECT t.${quoteIdent(key)}::text AS key, t.${quoteIdent(label)}::float8 AS label FROM ${relation} AS t) AS y ON y.key = l.entity_key
WHERE l.project = $1 AND l.at >= $2 AND l.prediction IS NOT NULL AND y.label IS NOT NULL
GROUP BY l.arm, l.version ORDER BY l.arm, l.version`
}

/** $1 project, $2 model id, $3 since, $4 limit → the latest logged predictions of that model as served (champion or canary). */
export const LOGGED_PREDICTIONS = `SELECT l.prediction::float8 AS p FROM pgml_kit.prediction_log AS l
WHERE l.project = $1 AND l.model_id = $2 AND l.at >= $3 AND l.arm IN ('champion', 'canary', 'pinned') AND l.prediction IS NOT NULL
ORDER BY l.at DESC LIMIT $4`

/**
 * $1 relation (qualified, quoted), $2 columns → whether it exists; its owner; whether that owner is
 * trusted by this role (itself, a superuser, a role that inherits this role's rights, or the owner
 * of schema pgml_kit); which of the columns are of a type an untrusted role owns; and what a read of
 * it would run that an untrusted role owns — following views (and materialised views) down through
 * every relation, function, operator and type their rules depend on, since a function in a view
 * runs with the reader's rights whoever owns the outer view, and a table's row-level security
 * policies are its owner's (so an untrusted table anywhere below is refused).
 */
export const RELATION_TRUST = `WITH RECURSIVE trusted AS (
  SELECT r.oid FROM pg_catalog.pg_roles AS r
  WHERE r.rolname = current_user OR r.rolsuper OR pg_catalog.pg_has_role(r.oid, current_user, 'USAGE')
     OR r.oid = (SELECT n.nspowner FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'pgml_kit')
), start AS (
  SELECT pg_catalog.to_regclass($1) AS oid
), closure(oid) AS (
  SELECT start.oid FROM start WHERE start.oid IS NOT NULL
  UNION
  SELECT d.refobjid FROM closure
  JOIN pg_catalog.pg_rewrite AS w ON w.ev_class = closure.oid
  JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = w.oid
  WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> closure.oid
), used AS (
  SELECT 'relation ' || c.oid::pg_catalog.regclass::text AS what, c.relowner AS owner FROM closure JOIN pg_catalog.pg_class AS c ON c.oid = closure.oid
  UNION ALL
  SELECT CASE d.refclassid
      WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN 'function ' || d.refobjid::pg_catalog.regprocedure::text
      WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass THEN 'operator ' || d.refobjid::pg_catalog.regoperator::text
      ELSE 'type ' || d.refobjid::pg_catalog.regtype::text END,
    CASE d.refclassid
      WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN (SELECT f.proowner FROM pg_catalog.pg_proc AS f WHERE f.oid = d.refobjid)
      WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass THEN (SELECT o.oprowner FROM pg_catalog.pg_operator AS o WHERE o.oid = d.refobjid)
      ELSE (SELECT t.typowner FROM pg_catalog.pg_type AS t WHERE t.oid = d.refobjid) END
  FROM closure
  JOIN pg_catalog.pg_rewrite AS w ON w.ev_class = closure.oid
  JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = w.oid
  WHERE d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass, 'pg_catalog.pg_operator'::pg_catalog.regclass, 'pg_catalog.pg_type'::pg_catalog.regclass)
)
SELECT c.oid IS NOT NULL AS found, pg_catalog.pg_get_userbyid(c.relowner)::text AS owner,
  c.relowner IN (SELECT trusted.oid FROM trusted) AS trusted,
  ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY ($2::text[])
          AND t.typowner NOT IN (SELECT trusted.oid FROM trusted) ORDER BY a.attnum) AS foreign_types,
  ARRAY(SELECT DISTINCT u.what || ' (owned by ' || pg_catalog.pg_get_userbyid(u.owner)::text || ')' FROM used AS u
        WHERE u.owner NOT IN (SELECT trusted.oid FROM trusted) ORDER BY 1) AS untrusted_uses
FROM start LEFT JOIN pg_catalog.pg_class AS c ON c.oid = start.oid`

/**
 * `status`: per project ($1), the champion's version, how many versions, the route and the log's
 * settings (runtime 7; null before), and the latest monitor run (when, alarms).
 */
export function renderModelsStatus(serving: boolean): string {
  return `SELECT p.project,
  (SELECT a.version FROM pgml_kit.model_aliases AS a WHERE a.project = p.project AND a.alias = 'champion') AS champion,
  (SELECT pg_catalog.count(*)::int FROM pgml_kit.model_versions AS v WHERE v.project = p.project) AS versions,
  ${serving ? `(SELECT pg_catalog.jsonb_build_object('alias', r.alias, 'mode', r.mode, 'share', r.share) FROM pgml_kit.model_routes AS r WHERE r.project = p.project)` : 'NULL::jsonb'} AS route,
  ${serving ? `(SELECT pg_catalog.jsonb_build_object('sample', s.sample, 'retentionDays', s.retention_days) FROM pgml_kit.prediction_log_settings AS s WHERE s.project = p.project)` : 'NULL::jsonb'} AS log,
  (SELECT pg_catalog.jsonb_build_object('at', m.at, 'alarms', m.alarms) FROM pgml_kit.monitor_runs AS m WHERE m.project = p.project ORDER BY m.at DESC, m.id DESC LIMIT 1) AS last_monitor
FROM pg_catalog.unnest($1::text[]) AS p(project) ORDER BY p.project`
}
