import type { FeatureViewNode, RelationNode, TrainingSetNode } from '../model/ir.js'
import { deriveIdentifier, dollarQuote, quoteIdent, quoteLiteral, quoteQualified } from './quote.js'
import { squawkIgnore } from './squawk.js'

const NEW_TABLE = 'the table was created empty by the statement above, in this transaction: nothing to scan or wait for'
const OWN_TABLE_DROP = 'a feature table pgml-kit created: dropped only by a down, or by a change generate writes only with --allow-destructive'

/**
 * The SQL of feature views and training sets. A feature view has an offline table (every row ever
 * materialised, append-only, unique per entity, event time and created time), an online table
 * (the latest row per entity) and a `materialize_<view>()` function that copies the source's new
 * rows into both. A training set is a view joining label rows point-in-time to the offline tables.
 */

/** The lineage table of a feature schema: which data and feature code produced each trained model. */
export const LINEAGE_TABLE = 'pgml_kit_model_lineage'

export function renderRelation(relation: RelationNode): string {
  return relation.kind === 'table' ? quoteQualified(relation.schema, relation.table) : `(${relation.sql.trim().replace(/;\s*$/, '')})`
}

export function renderCreateFeatureSchema(schema: string): string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)};`,
    `CREATE TABLE IF NOT EXISTS ${quoteQualified(schema, LINEAGE_TABLE)} (
  model_id bigint PRIMARY KEY,
  project text NOT NULL,
  relation text NOT NULL,
  training_set text,
  definition_sha256 text,
  feature_views jsonb NOT NULL DEFAULT '[]',
  train_sql text NOT NULL,
  trained_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  gate_verdict jsonb,
  gate_overrides jsonb
);`,
    `COMMENT ON TABLE ${quoteQualified(schema, LINEAGE_TABLE)} IS 'pgml-kit: for each model pgml-kit trained, the training set definition (sha256) and each feature view''s definition and materialisation high-water mark at training time.';`,
    // No-ops on the table just created; a table left by an earlier version (IF NOT EXISTS above) gets its columns.
    ...renderUpgradeFeatureSchema(schema),
  ]
}

/** The lineage columns added after the table's first version: nullable, so adding them rewrites nothing. */
const LINEAGE_GATE_COLUMNS = [
  ['gate_verdict', 'pgml-kit: the deployment gate\'s verdict when pgml-kit train judged this model (metric, value, bound, compared model, pass, reason).'],
  ['gate_overrides', 'pgml-kit: each deploy --model --override-gate of this model past a failing gate (when, who, reason, the verdict overridden).'],
] as const

function lineageColumnComments(schema: string): string[] {
  return LINEAGE_GATE_COLUMNS.map(([column, comment]) => `COMMENT ON COLUMN ${quoteQualified(schema, LINEAGE_TABLE)}.${quoteIdent(column)} IS ${quoteLiteral(comment)};`)
}

/**
 * Brings a feature schema's lineage table created by an earlier pgml-kit up to
 * renderCreateFeatureSchema's: idempotent (`ADD COLUMN IF NOT EXISTS`), for a generated migration
 * to run before anything records gate verdicts. Until it runs, train and deploy record no verdicts
 * or overrides there and say so.
 */
export function renderUpgradeFeatureSchema(schema: string): string[] {
  return [
    ...LINEAGE_GATE_COLUMNS.map(([column]) => `ALTER TABLE ${quoteQualified(schema, LINEAGE_TABLE)} ADD COLUMN IF NOT EXISTS ${quoteIdent(column)} jsonb;`),
    ...lineageColumnComments(schema),
  ]
}

/** The lineage columns train and deploy need for gate verdicts and overrides (see renderUpgradeFeatureSchema). */
export const LINEAGE_GATE_COLUMN_NAMES: readonly string[] = LINEAGE_GATE_COLUMNS.map(([column]) => column)

export function renderDropFeatureSchema(schema: string): string[] {
  return [`${squawkIgnore(['ban-drop-table'], OWN_TABLE_DROP)}DROP TABLE IF EXISTS ${quoteQualified(schema, RUNS_TABLE)};`, `${squawkIgnore(['ban-drop-table'], OWN_TABLE_DROP)}DROP TABLE IF EXISTS ${quoteQualified(schema, LINEAGE_TABLE)};`, `DROP SCHEMA IF EXISTS ${quoteIdent(schema)};`]
}

/** The column that marked how far materialisation got in views from before change capture (their down). */
export function highWaterColumn(view: FeatureViewNode): string {
  return view.createdTimestamp ?? view.timestamp
}

/** Per feature schema: each view's last materialisation (when, full or not, what it changed), for status and lag. */
export const RUNS_TABLE = 'pgml_kit_feature_runs'

export function renderCreateRunsTable(schema: string): string {
  return `CREATE TABLE IF NOT EXISTS ${quoteQualified(schema, RUNS_TABLE)} (
  view_name text PRIMARY KEY,
  last_run_at timestamptz NOT NULL,
  last_full_run_at timestamptz,
  runs bigint NOT NULL,
  full_refresh boolean NOT NULL,
  offline_inserted bigint NOT NULL,
  offline_deleted bigint NOT NULL,
  online_upserted bigint NOT NULL,
  online_deleted bigint NOT NULL,
  entities bigint NOT NULL
);`
}

function keyColumns(view: FeatureViewNode): string[] {
  return [...view.entities, view.timestamp, ...(view.createdTimestamp ? [view.createdTimestamp] : [])]
}

function sourceColumns(view: FeatureViewNode, alias: string): string {
  return [
    ...keyColumns(view).map((c) => `${alias}.${quoteIdent(c)}`),
    ...view.features.map((f) => `${alias}.${quoteIdent(f.name)}::${f.type} AS ${quoteIdent(f.name)}`),
  ].join(', ')
}

/** Every column of the view's tables that comes from the source, in order. */
function storedColumns(view: FeatureViewNode): string[] {
  return [...keyColumns(view), ...view.features.map((f) => f.name)]
}

const list = (alias: string, columns: readonly string[]) => columns.map((c) => `${alias}.${quoteIdent(c)}`).join(', ')

/** A change log row's text keys as a row of the offline table's type (input functions turn the text back into the entity's types). */
function typedKeys(view: FeatureViewNode, alias: string): string {
  return `pg_catalog.jsonb_populate_record(NULL::${quoteQualified(view.schema, view.offlineTable)}, pg_catalog.jsonb_build_object(${view.entities.map((e) => `${quoteLiteral(e)}, ${alias}.${quoteIdent(e)}`).join(', ')}))`
}

/** `(a.e1, a.e2) IN (SELECT k.e1, k.e2 FROM <keys> k)` */
function entityIn(view: FeatureViewNode, alias: string, keys: string): string {
  return `(${list(alias, view.entities)}) IN (SELECT ${list('k', view.entities)} FROM ${keys} AS k)`
}

/**
 * Which row of an entity is its newest: latest event time, then latest created time (NULL last),
 * then the feature values' text, so that ties resolve the same way everywhere (materialisation,
 * `features check`, serving as of a time and the training join).
 */
export function newestFirst(view: FeatureViewNode, alias: string): string {
  return [
    `${alias}.${quoteIdent(view.timestamp)} DESC`,
    ...(view.createdTimestamp ? [`${alias}.${quoteIdent(view.createdTimestamp)} DESC NULLS LAST`] : []),
    `ROW(${list(alias, view.features.map((f) => f.name))})::text DESC`,
  ].join(', ')
}

/** The newest row per entity of `from` (aliased `x`) whose event time has come: the online store's definition. */
function latestRows(view: FeatureViewNode, from: string, where: string | null): string {
  return `SELECT DISTINCT ON (${list('x', view.entities)}) ${list('x', storedColumns(view))} FROM ${from} AS x
    WHERE x.${quoteIdent(view.timestamp)} <= pg_catalog.now()${where ? ` AND ${where}` : ''}
    ORDER BY ${list('x', view.entities)}, ${newestFirst(view, 'x')}`
}

/** Upserts `pgml_kit_latest` into the online table, writing only rows that differ. */
function onlineUpsert(view: FeatureViewNode): string {
  const online = quoteQualified(view.schema, view.onlineTable)
  const columns = storedColumns(view)
  const values = columns.filter((c) => !view.entities.includes(c))
  return `INSERT INTO ${online} AS o (${columns.map(quoteIdent).join(', ')}, updated_at) SELECT ${list('l', columns)}, pg_catalog.now() FROM pgml_kit_latest AS l
              ON CONFLICT (${view.entities.map(quoteIdent).join(', ')}) DO UPDATE SET ${[...values, 'updated_at'].map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ')}
              WHERE ROW(${list('o', values)})::text IS DISTINCT FROM ROW(${list('EXCLUDED', values)})::text
              RETURNING 1`
}

/**
 * One statement that makes the offline table equal to the source and the online table equal to
 * its definition, for the entities in `pgml_kit_keys` (scope 'changed': claimed from the change
 * log in this same statement, so exactly the changes this snapshot sees) or for all (scope 'all').
 * The offline side is compared row by row (a fingerprint of each row's text, duplicates paired by
 * number): only rows that differ are deleted or inserted. Returns [offline inserted, offline
 * deleted, online upserted, online deleted, entities].
 */
function syncStatement(view: FeatureViewNode, scope: 'changed' | 'all'): string {
  const offline = quoteQualified(view.schema, view.offlineTable)
  const online = quoteQualified(view.schema, view.onlineTable)
  const columns = storedColumns(view)
  const notNull = view.entities.map((e) => `s.${quoteIdent(e)} IS NOT NULL`).join(' AND ')
  const fingerprint = (alias: string) => `pg_catalog.md5(ROW(${list(alias, columns)})::text)`
  const keys: string[] = scope === 'changed'
    ? [
        `pgml_kit_claimed AS (DELETE FROM ${quoteQualified(view.schema, view.changesTable!)} AS c WHERE NOT c.pgml_kit_full RETURNING ${list('c', view.entities)})`,
        // The log holds keys as text; the offline table's row type turns them back into the entity's types.
        `pgml_kit_keys AS (SELECT DISTINCT ${view.entities.map((e) => `(x.r).${quoteIdent(e)}`).join(', ')} FROM (SELECT ${typedKeys(view, 'c')} AS r FROM pgml_kit_claimed AS c) AS x)`,
      ]
    : []
  const inKeys = (alias: string) => (scope === 'changed' ? entityIn(view, alias, 'pgml_kit_keys') : null)
  const ctes = [
    ...keys,
    `pgml_kit_src AS (SELECT ${sourceColumns(view, 's')} FROM ${renderRelation(view.source)} AS s WHERE ${scope === 'changed' ? entityIn(view, 's', 'pgml_kit_keys') : notNull})`,
    `pgml_kit_s AS (SELECT f.*, pg_catalog.row_number() OVER (PARTITION BY f.pgml_kit_fp) AS pgml_kit_n
               FROM (SELECT x.*, ${fingerprint('x')} AS pgml_kit_fp FROM pgml_kit_src AS x) AS f)`,
    `pgml_kit_o AS (SELECT f.pgml_kit_rid, f.pgml_kit_fp, pg_catalog.row_number() OVER (PARTITION BY f.pgml_kit_fp) AS pgml_kit_n
               FROM (SELECT o.ctid AS pgml_kit_rid, ${fingerprint('o')} AS pgml_kit_fp FROM ${offline} AS o${inKeys('o') ? ` WHERE ${inKeys('o')}` : ''}) AS f)`,
    `pgml_kit_del AS (DELETE FROM ${offline} AS o WHERE o.ctid IN (SELECT d.pgml_kit_rid FROM pgml_kit_o AS d
               WHERE NOT EXISTS (SELECT 1 FROM pgml_kit_s AS a WHERE a.pgml_kit_fp = d.pgml_kit_fp AND a.pgml_kit_n = d.pgml_kit_n)) RETURNING 1)`,
    `pgml_kit_ins AS (INSERT INTO ${offline} (${columns.map(quoteIdent).join(', ')}) SELECT ${list('a', columns)} FROM pgml_kit_s AS a
               WHERE NOT EXISTS (SELECT 1 FROM pgml_kit_o AS d WHERE d.pgml_kit_fp = a.pgml_kit_fp AND d.pgml_kit_n = a.pgml_kit_n) RETURNING 1)`,
    `pgml_kit_latest AS (${latestRows(view, 'pgml_kit_src', null)})`,
    `pgml_kit_up AS (${onlineUpsert(view)})`,
    `pgml_kit_gone AS (DELETE FROM ${online} AS o WHERE ${inKeys('o') ? `${inKeys('o')} AND ` : ''}NOT EXISTS (SELECT 1 FROM pgml_kit_latest AS l WHERE ${view.entities.map((e) => `l.${quoteIdent(e)} = o.${quoteIdent(e)}`).join(' AND ')}) RETURNING 1)`,
  ]
  const entities = scope === 'changed' ? 'SELECT pg_catalog.count(*) FROM pgml_kit_keys' : `SELECT pg_catalog.count(*) FROM (SELECT DISTINCT ${list('x', view.entities)} FROM pgml_kit_src AS x) AS e`
  return `WITH ${ctes.join(',\n       ')}
  SELECT ARRAY[(SELECT pg_catalog.count(*) FROM pgml_kit_ins), (SELECT pg_catalog.count(*) FROM pgml_kit_del), (SELECT pg_catalog.count(*) FROM pgml_kit_up), (SELECT pg_catalog.count(*) FROM pgml_kit_gone), (${entities})]`
}

/** Online rows of entities whose newer event time came since the last run (rows materialised while still in the future). */
function arrivedStatement(view: FeatureViewNode): string {
  const offline = quoteQualified(view.schema, view.offlineTable)
  const ts = quoteIdent(view.timestamp)
  return `WITH pgml_kit_keys AS (SELECT DISTINCT ${list('o', view.entities)} FROM ${offline} AS o WHERE o.${ts} > pgml_kit_last AND o.${ts} <= pg_catalog.now()),
       pgml_kit_latest AS (${latestRows(view, offline, entityIn(view, 'x', 'pgml_kit_keys'))}),
       pgml_kit_up AS (${onlineUpsert(view)})
  SELECT pg_catalog.count(*) FROM pgml_kit_up`
}

function materializeBody(view: FeatureViewNode): string {
  const runs = quoteQualified(view.schema, RUNS_TABLE)
  const name = quoteLiteral(view.name)
  const trigger = view.changeCapture === 'trigger'
  const changes = trigger ? quoteQualified(view.schema, view.changesTable!) : ''
  return `
#variable_conflict use_column
DECLARE
  pgml_kit_all boolean := $1 OR ${trigger ? 'false' : 'true'};
  pgml_kit_last timestamptz;
  pgml_kit_counts bigint[];
  pgml_kit_arrived bigint;
BEGIN
  -- One materialisation of this view at a time (the key names schema and view apart: "a.b"."c" is not "a"."b.c").
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(${quoteLiteral(`pgml-kit materialize ${JSON.stringify([view.schema, view.name])}`)}, 0));
  SELECT r.last_run_at INTO pgml_kit_last FROM ${runs} AS r WHERE r.view_name = ${name};
${trigger ? `  -- A full refresh when asked, on the first run (no run recorded: the view is new, or upgraded from before change capture)
  -- and after a TRUNCATE of the source (the change log's marker row).
  IF NOT pgml_kit_all THEN
    pgml_kit_all := pgml_kit_last IS NULL OR EXISTS (SELECT 1 FROM ${changes} AS c WHERE c.pgml_kit_full);
  END IF;
` : `  -- The source is a query: no change log, every run compares all of it.
`}  IF pgml_kit_all THEN
${trigger ? `    -- Everything logged so far is covered by the comparison below, which reads a later snapshot.
    DELETE FROM ${changes};
` : ''}    ${syncStatement(view, 'all').replace(/\n/g, '\n    ')}
    INTO pgml_kit_counts;
${trigger ? `  ELSE
    ${syncStatement(view, 'changed').replace(/\n/g, '\n    ')}
    INTO pgml_kit_counts;
    IF pgml_kit_last IS NOT NULL THEN
      ${arrivedStatement(view).replace(/\n/g, '\n      ')}
      INTO pgml_kit_arrived;
      pgml_kit_counts[3] := pgml_kit_counts[3] + pgml_kit_arrived;
    END IF;
` : ''}  END IF;
  INSERT INTO ${runs} AS r (view_name, last_run_at, last_full_run_at, runs, full_refresh, offline_inserted, offline_deleted, online_upserted, online_deleted, entities)
  VALUES (${name}, pg_catalog.now(), CASE WHEN pgml_kit_all THEN pg_catalog.now() END, 1, pgml_kit_all, pgml_kit_counts[1], pgml_kit_counts[2], pgml_kit_counts[3], pgml_kit_counts[4], pgml_kit_counts[5])
  ON CONFLICT (view_name) DO UPDATE SET last_run_at = EXCLUDED.last_run_at, last_full_run_at = coalesce(EXCLUDED.last_full_run_at, r.last_full_run_at), runs = r.runs + 1,
    full_refresh = EXCLUDED.full_refresh, offline_inserted = EXCLUDED.offline_inserted, offline_deleted = EXCLUDED.offline_deleted,
    online_upserted = EXCLUDED.online_upserted, online_deleted = EXCLUDED.online_deleted, entities = EXCLUDED.entities;
  RETURN QUERY SELECT pgml_kit_counts[1], pgml_kit_counts[2], pgml_kit_counts[3], pgml_kit_counts[4], pgml_kit_counts[5], pgml_kit_all;
END
`
}

function renderMaterializeFunction(view: FeatureViewNode): string {
  const how = view.changeCapture === 'trigger'
    ? `the entities the change log names (every insert, update and delete of the source, whatever its timestamps and however long its transaction ran)`
    : `the whole source (a query: nothing records its changes)`
  return `-- Makes the offline table equal to the source and the online table its newest row per entity whose event time has come, for
-- ${how}; with refresh_all, for everything, and the counts say what differed. Writes only rows that differ; idempotent.
CREATE FUNCTION ${quoteQualified(view.schema, view.materializeFunction)}(refresh_all boolean DEFAULT false)
RETURNS TABLE (offline_inserted bigint, offline_deleted bigint, online_upserted bigint, online_deleted bigint, entities bigint, full_refresh boolean)
LANGUAGE plpgsql
${pinnedSettings()}
AS ${dollarQuote(materializeBody(view))};`
}

function triggerName(view: FeatureViewNode, event: 'insert' | 'update' | 'delete' | 'truncate'): string {
  return deriveIdentifier(['pgml_kit_capture', view.name, event])
}

/**
 * The change capture of a table source: a SECURITY DEFINER trigger function (owned by the role that
 * runs migrations, search_path pinned, EXECUTE revoked from PUBLIC so no other role can attach it)
 * that logs the entity keys of each statement's changed rows, in the writer's transaction; an
 * UPDATE logs only entities whose rows changed. It reads keys and compares row text: nothing in the
 * rows is executed.
 */
/**
 * Settings every function of a feature view runs with, so that text forms of values (the change
 * log's keys, row fingerprints) and `timestamp without time zone` comparisons (read as UTC) do not
 * depend on the session that writes or materialises: exact floats, ISO dates, UTC.
 */
export const PINNED_SETTINGS = [['extra_float_digits', '1'], ['DateStyle', 'ISO, MDY'], ['IntervalStyle', 'postgres'], ['TimeZone', 'UTC']] as const

function pinnedSettings(): string {
  return ['SET search_path = pg_catalog, pg_temp', ...PINNED_SETTINGS.map(([name, value]) => `SET ${name} = ${quoteLiteral(value)}`)].join('\n')
}

/**
 * The capture function's body. It runs as the role that migrates (SECURITY DEFINER), on rows of
 * a table another role may own, whose column types that role may change: so it touches values only
 * through output functions (`format('%s', …)` and a row's text, which never go through casts,
 * domain checks or operators a role can define) and writes only text. The log's keys are turned
 * back into the entity's types by materialisation, which runs with its caller's rights.
 */
export function captureFunctionBody(view: FeatureViewNode): string {
  if (view.source.kind !== 'table') throw new TypeError('a query source has no change capture')
  const changes = quoteQualified(view.schema, view.changesTable!)
  const entities = view.entities.map(quoteIdent).join(', ')
  const keys = (alias: string) => view.entities.map((e) => `pg_catalog.format('%s', ${alias}.${quoteIdent(e)})`).join(', ')
  const known = (alias: string) => view.entities.map((e) => `${alias}.${quoteIdent(e)} IS NOT NULL`).join(' AND ')
  // UPDATE: only rows whose text changed (any column: naming the view's columns here would make a
  // dropped or renamed source column break every UPDATE of the table, not just materialisation).
  const changed = (a: string, b: string) => `SELECT ${keys(a)}, ${a}::text FROM ${a === 'n' ? 'pgml_kit_new' : 'pgml_kit_old'} AS ${a} WHERE ${known(a)}
      EXCEPT ALL SELECT ${keys(b)}, ${b}::text FROM ${b === 'n' ? 'pgml_kit_new' : 'pgml_kit_old'} AS ${b} WHERE ${known(b)}`
  return `
BEGIN
  IF TG_TABLE_SCHEMA <> ${quoteLiteral(view.source.schema)} OR TG_TABLE_NAME <> ${quoteLiteral(view.source.table)} THEN
    RAISE EXCEPTION 'pgml-kit: % is the change capture of %, not of %.%', TG_NAME, ${quoteLiteral(`${view.source.schema}.${view.source.table}`)}, TG_TABLE_SCHEMA, TG_TABLE_NAME;
  END IF;
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO ${changes} (pgml_kit_full) VALUES (true);
  ELSIF TG_OP = 'INSERT' THEN
    INSERT INTO ${changes} (${entities}) SELECT DISTINCT ${keys('n')} FROM pgml_kit_new AS n WHERE ${known('n')};
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO ${changes} (${entities}) SELECT DISTINCT ${keys('o')} FROM pgml_kit_old AS o WHERE ${known('o')};
  ELSE
    INSERT INTO ${changes} (${entities})
    SELECT DISTINCT ${list('d', view.entities)} FROM (
      (${changed('n', 'o')})
      UNION ALL
      (${changed('o', 'n')})
    ) AS d (${[...view.entities.map(quoteIdent), 'pgml_kit_row'].join(', ')});
  END IF;
  RETURN NULL;
END
`
}

/**
 * The change capture of a table source: a SECURITY DEFINER trigger function (owned by the role that
 * runs migrations, search_path and settings pinned, EXECUTE revoked from PUBLIC so no other role can
 * attach it) that logs, as text, the entity keys of each statement's changed rows, in the writer's
 * transaction. Refused at migrate time for a source that is not a plain table without children:
 * statement triggers on a view or on a partitioned or inherited table's parent miss writes.
 */
function renderCapture(view: FeatureViewNode): string[] {
  if (view.source.kind !== 'table') return []
  const changes = quoteQualified(view.schema, view.changesTable!)
  const fn = quoteQualified(view.schema, view.captureFunction!)
  const sourceName = `${view.source.schema}.${view.source.table}`
  const regclass = `${quoteLiteral(quoteQualified(view.source.schema, view.source.table))}::pg_catalog.regclass`
  const refuse = `
DECLARE
  kind "char";
BEGIN
  SELECT c.relkind INTO kind FROM pg_catalog.pg_class AS c WHERE c.oid = ${regclass};
  IF kind <> 'r' OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits AS i WHERE i.inhparent = ${regclass}) THEN
    RAISE EXCEPTION USING
      MESSAGE = pg_catalog.format('pgml-kit: features.views.%s.source: %s is %s; change capture needs a plain table without partitions or inheritance children (triggers there do not see every write)', ${quoteLiteral(view.name)}, ${quoteLiteral(sourceName)},
        CASE kind WHEN 'v' THEN 'a view' WHEN 'm' THEN 'a materialized view' WHEN 'p' THEN 'a partitioned table' WHEN 'f' THEN 'a foreign table' WHEN 'r' THEN 'a table with inheritance children' ELSE 'not a table' END),
      HINT = pg_catalog.format('declare the source as a query, { sql: ''SELECT … FROM %s'' }: every materialisation then compares the whole query', ${quoteLiteral(quoteQualified(view.source.schema, view.source.table))});
  END IF;
END
`
  return [
    `-- Change capture needs a plain table: refused here, before anything is created, for a view or a partitioned or inherited table.
DO ${dollarQuote(refuse)};`,
    `-- Change log: the entity keys (as text) of every committed change of the source, for the next materialisation to re-read.
CREATE TABLE ${changes} (
  ${[...view.entities.map((e) => `${quoteIdent(e)} text`), 'pgml_kit_full boolean NOT NULL DEFAULT false', 'pgml_kit_captured_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()'].join(',\n  ')}
);`,
    renderCaptureFunction(view, false),
    `REVOKE EXECUTE ON FUNCTION ${fn}() FROM PUBLIC;`,
    ...captureTriggers(view).map((t) => t.create),
  ]
}

/** The capture function's CREATE (OR REPLACE, for the fix `status --drift` prints). */
export function renderCaptureFunction(view: FeatureViewNode, orReplace: boolean): string {
  return `CREATE ${orReplace ? 'OR REPLACE ' : ''}FUNCTION ${quoteQualified(view.schema, view.captureFunction!)}()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
${pinnedSettings()}
AS ${dollarQuote(captureFunctionBody(view))};`
}

/** The change-capture triggers of a table-source view: name and CREATE statement, per event. */
export function captureTriggers(view: FeatureViewNode): { readonly name: string; readonly create: string; readonly drop: string; readonly enable: string }[] {
  if (view.source.kind !== 'table' || !view.captureFunction) return []
  const source = quoteQualified(view.source.schema, view.source.table)
  const fn = quoteQualified(view.schema, view.captureFunction)
  const referencing = { insert: ' REFERENCING NEW TABLE AS pgml_kit_new', update: ' REFERENCING OLD TABLE AS pgml_kit_old NEW TABLE AS pgml_kit_new', delete: ' REFERENCING OLD TABLE AS pgml_kit_old', truncate: '' }
  return (['insert', 'update', 'delete', 'truncate'] as const).map((event) => ({
    name: triggerName(view, event),
    create: `CREATE TRIGGER ${quoteIdent(triggerName(view, event))}\nAFTER ${event.toUpperCase()} ON ${source}${referencing[event]}\nFOR EACH STATEMENT EXECUTE FUNCTION ${fn}();`,
    drop: `DROP TRIGGER ${quoteIdent(triggerName(view, event))} ON ${source};`,
    enable: `ALTER TABLE ${source} ENABLE TRIGGER ${quoteIdent(triggerName(view, event))};`,
  }))
}

/** `SELECT * FROM <view's materialize function>($1::boolean)`: $1 whether to compare the whole source. */
export function renderMaterializeCall(view: FeatureViewNode): string {
  return `SELECT * FROM ${quoteQualified(view.schema, view.materializeFunction)}($1::boolean)`
}

/**
 * How far a feature view was materialised, as a training reads it: one row, one column
 * `high_water_mark` (text, NULL when never materialised) — the time of the last materialisation,
 * whose result is what the training's snapshot sees of the offline table (views with change capture;
 * `withRuns` false: a view generated before it, whose mark is the newest created, else event, time
 * in the offline table).
 */
export function renderFeatureViewMark(view: FeatureViewNode, withRuns = true): string {
  if (!withRuns) return `SELECT pg_catalog.max(${quoteIdent(highWaterColumn(view))})::text AS high_water_mark FROM ${quoteQualified(view.schema, view.offlineTable)}`
  return `SELECT (SELECT r.last_run_at::text FROM ${quoteQualified(view.schema, RUNS_TABLE)} AS r WHERE r.view_name = ${quoteLiteral(view.name)}) AS high_water_mark`
}

/** Sets the settings feature functions pin, for the rest of the transaction ($1 name, $2 value). */
export const SET_LOCAL_SETTING = 'SELECT pg_catalog.set_config($1, $2, true)'

function renderDropCapture(view: FeatureViewNode): string[] {
  if (view.source.kind !== 'table' || !view.changesTable || !view.captureFunction) return []
  const source = quoteQualified(view.source.schema, view.source.table)
  return [
    ...(['truncate', 'delete', 'update', 'insert'] as const).map((event) => `DROP TRIGGER IF EXISTS ${quoteIdent(triggerName(view, event))} ON ${source};`),
    `DROP FUNCTION IF EXISTS ${quoteQualified(view.schema, view.captureFunction)}();`,
    `${squawkIgnore(['ban-drop-table'], OWN_TABLE_DROP)}DROP TABLE IF EXISTS ${quoteQualified(view.schema, view.changesTable)};`,
  ]
}

function renderOfflineIndexes(view: FeatureViewNode, reason: string): string[] {
  const offline = quoteQualified(view.schema, view.offlineTable)
  return [
    `${squawkIgnore(['require-concurrent-index-creation'], reason)}CREATE INDEX ${quoteIdent(deriveIdentifier([view.name, 'offline', 'by_entity']))} ON ${offline} (${[...view.entities, view.timestamp].map(quoteIdent).join(', ')});`,
    `${squawkIgnore(['require-concurrent-index-creation'], reason)}CREATE INDEX ${quoteIdent(deriveIdentifier([view.name, 'offline', 'by_time']))} ON ${offline} (${quoteIdent(view.timestamp)});`,
  ]
}

export function renderCreateFeatureView(view: FeatureViewNode): string[] {
  const offline = quoteQualified(view.schema, view.offlineTable)
  const online = quoteQualified(view.schema, view.onlineTable)
  return [
    `-- Offline store: every source row (with NULL-free entity keys); its columns take their types from the source.
CREATE TABLE ${offline} AS
  SELECT ${sourceColumns(view, 's')}, pg_catalog.now() AS materialized_at FROM ${renderRelation(view.source)} AS s WITH NO DATA;`,
    `${squawkIgnore(['adding-not-nullable-field'], NEW_TABLE)}ALTER TABLE ${offline} ALTER COLUMN materialized_at SET DEFAULT pg_catalog.now(), ALTER COLUMN materialized_at SET NOT NULL;`,
    ...renderOfflineIndexes(view, NEW_TABLE),
    `-- Online store: per entity, the newest row whose event time has come, for serving.
CREATE TABLE ${online} AS
  SELECT ${sourceColumns(view, 's')}, pg_catalog.now() AS updated_at FROM ${renderRelation(view.source)} AS s WITH NO DATA;`,
    `${squawkIgnore(['adding-serial-primary-key-field', 'constraint-missing-not-valid'], NEW_TABLE)}ALTER TABLE ${online} ADD PRIMARY KEY (${view.entities.map(quoteIdent).join(', ')});`,
    renderCreateRunsTable(view.schema),
    ...renderCapture(view),
    renderMaterializeFunction(view),
  ]
}

export function renderDropFeatureView(view: FeatureViewNode): string[] {
  return [
    ...renderDropCapture(view),
    `DROP FUNCTION IF EXISTS ${quoteQualified(view.schema, view.materializeFunction)}(${view.changeCapture ? 'boolean' : ''});`,
    ...(view.changeCapture ? [`DELETE FROM ${quoteQualified(view.schema, RUNS_TABLE)} WHERE view_name = ${quoteLiteral(view.name)};`] : []),
    `${squawkIgnore(['ban-drop-table'], OWN_TABLE_DROP)}DROP TABLE IF EXISTS ${quoteQualified(view.schema, view.onlineTable)};`,
    `${squawkIgnore(['ban-drop-table'], OWN_TABLE_DROP)}DROP TABLE IF EXISTS ${quoteQualified(view.schema, view.offlineTable)};`,
  ]
}

/**
 * A view from before change capture (`previous` has no changeCapture) to `next`, the same view with
 * it: its old materialize function (which copied only rows past a timestamp high-water mark) goes,
 * the offline table stops being unique per key (it mirrors the source, duplicates included), and
 * the change log, triggers and new function come in. The first materialisation after it compares
 * the whole source, so whatever the old function skipped arrives then.
 */
export function renderUpgradeFeatureView(previous: FeatureViewNode, next: FeatureViewNode): string[] {
  const offline = quoteQualified(next.schema, next.offlineTable)
  const existing = 'only materialisation writes this table (readers go on); it is built once, by this migration'
  return [
    `DROP FUNCTION IF EXISTS ${quoteQualified(previous.schema, previous.materializeFunction)}();`,
    `-- The offline table mirrors the source, duplicates included: drop its unique key (named by PostgreSQL when it was created).
DO ${dollarQuote(`
DECLARE
  c name;
BEGIN
  FOR c IN SELECT conname FROM pg_catalog.pg_constraint WHERE conrelid = ${quoteLiteral(offline)}::regclass AND contype = 'u' LOOP
    EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', ${quoteLiteral(offline)}, c);
  END LOOP;
END
`)};`,
    ...renderOfflineIndexes(next, existing),
    renderCreateRunsTable(next.schema),
    // The lineage table of the same era lacks the gate's columns (idempotent: once per schema is enough, more is harmless).
    ...renderUpgradeFeatureSchema(next.schema),
    ...renderCapture(next),
    renderMaterializeFunction(next),
  ]
}

/** The down of renderUpgradeFeatureView: the old function back (and the unique key, which fails if the source had duplicate keys). */
export function renderDowngradeFeatureView(previous: FeatureViewNode, next: FeatureViewNode): string[] {
  const offline = quoteQualified(next.schema, next.offlineTable)
  return [
    `DROP FUNCTION IF EXISTS ${quoteQualified(next.schema, next.materializeFunction)}(boolean);`,
    ...renderDropCapture(next),
    `DELETE FROM ${quoteQualified(next.schema, RUNS_TABLE)} WHERE view_name = ${quoteLiteral(next.name)};`,
    ...(['by_entity', 'by_time'] as const).map((suffix) => `${squawkIgnore(['require-concurrent-index-deletion'], 'an index of a feature table only materialisation writes; reverting an upgrade')}DROP INDEX IF EXISTS ${quoteQualified(next.schema, deriveIdentifier([next.name, 'offline', suffix]))};`),
    `${squawkIgnore(['constraint-missing-not-valid', 'disallowed-unique-constraint'], 'restores the key the table had before the upgrade')}ALTER TABLE ${offline} ADD UNIQUE NULLS NOT DISTINCT (${keyColumns(next).map(quoteIdent).join(', ')});`,
    renderLegacyMaterializeFunction(previous),
  ]
}

/** The materialize function of views from before change capture, for the upgrade's down only. */
function renderLegacyMaterializeFunction(view: FeatureViewNode): string {
  const offline = quoteQualified(view.schema, view.offlineTable)
  const online = quoteQualified(view.schema, view.onlineTable)
  const entities = view.entities.map(quoteIdent).join(', ')
  const columns = storedColumns(view).map(quoteIdent)
  const order = `${quoteIdent(view.timestamp)} DESC${view.createdTimestamp ? `, ${quoteIdent(view.createdTimestamp)} DESC NULLS LAST` : ''}`
  const newer = view.createdTimestamp
    ? `(o.${quoteIdent(view.timestamp)}, o.${quoteIdent(view.createdTimestamp)}) < (EXCLUDED.${quoteIdent(view.timestamp)}, EXCLUDED.${quoteIdent(view.createdTimestamp)})`
    : `o.${quoteIdent(view.timestamp)} < EXCLUDED.${quoteIdent(view.timestamp)}`
  const mark = quoteIdent(highWaterColumn(view))
  const body = `
#variable_conflict use_column
DECLARE
  n_inserted bigint;
  n_updated bigint;
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(${quoteLiteral(`pgml-kit materialize ${JSON.stringify([view.schema, view.name])}`)}, 0));
  WITH mark AS (SELECT pg_catalog.max(${mark}) AS m FROM ${offline}),
       src AS (SELECT ${sourceColumns(view, 's')} FROM ${renderRelation(view.source)} AS s, mark
               WHERE mark.m IS NULL OR s.${mark} >= mark.m),
       ins AS (INSERT INTO ${offline} AS o (${columns.join(', ')}) SELECT * FROM src ON CONFLICT DO NOTHING RETURNING ${columns.map((c) => `o.${c}`).join(', ')}),
       latest AS (SELECT DISTINCT ON (${entities}) * FROM ins ORDER BY ${entities}, ${order}),
       up AS (INSERT INTO ${online} AS o (${columns.join(', ')}, updated_at) SELECT *, pg_catalog.now() FROM latest
              ON CONFLICT (${entities}) DO UPDATE SET ${[...columns.filter((c) => !view.entities.map(quoteIdent).includes(c)), 'updated_at'].map((c) => `${c} = EXCLUDED.${c}`).join(', ')}
              WHERE ${newer}
              RETURNING 1)
  SELECT (SELECT pg_catalog.count(*) FROM ins), (SELECT pg_catalog.count(*) FROM up) INTO n_inserted, n_updated;
  RETURN QUERY SELECT n_inserted, n_updated, (SELECT pg_catalog.max(${mark})::text FROM ${offline});
END
`
  return `CREATE FUNCTION ${quoteQualified(view.schema, view.materializeFunction)}() RETURNS TABLE (inserted bigint, updated bigint, high_water_mark text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS ${dollarQuote(body)};`
}

/**
 * Training-serving skew: every online row against its definition recomputed from the offline table
 * as of now (the newest row per entity whose event time has come). One row per difference:
 * `missing` (no online row), `extra` (an online row the definition has not), `stale` (an older
 * event than the definition's), `different` (same event, other values — or a row not yet due).
 * `total` counts them all; at most `$1` are returned.
 */
export function renderOnlineSkew(view: FeatureViewNode): string {
  const columns = storedColumns(view)
  const ts = quoteIdent(view.timestamp)
  const join = view.entities.map((e) => `e.${quoteIdent(e)} = o.${quoteIdent(e)}`).join(' AND ')
  const entity = `pg_catalog.jsonb_build_object(${view.entities.map((e) => `${quoteLiteral(e)}, coalesce(e.${quoteIdent(e)}, o.${quoteIdent(e)})`).join(', ')})`
  return `WITH e AS (SELECT true AS pgml_kit_present, l.* FROM (${latestRows(view, quoteQualified(view.schema, view.offlineTable), null)}) AS l),
     o AS (SELECT true AS pgml_kit_present, ${list('x', columns)} FROM ${quoteQualified(view.schema, view.onlineTable)} AS x),
     d AS (SELECT CASE WHEN o.pgml_kit_present IS NULL THEN 'missing' WHEN e.pgml_kit_present IS NULL THEN 'extra' WHEN o.${ts} < e.${ts} THEN 'stale' ELSE 'different' END AS kind,
                  ${entity} AS entity, o.${ts}::text AS online_event, e.${ts}::text AS expected_event
           FROM e FULL JOIN o ON ${join}
           WHERE o.pgml_kit_present IS NULL OR e.pgml_kit_present IS NULL OR ROW(${list('o', columns)})::text IS DISTINCT FROM ROW(${list('e', columns)})::text)
SELECT d.*, pg_catalog.count(*) OVER () AS total FROM d ORDER BY d.kind, d.entity::text LIMIT $1`
}

/**
 * How far the stores are behind the source: entities with logged, unmaterialised changes (a
 * sample of at most `$1`), how many, the age of the oldest change, whether a full comparison is
 * due (first run, TRUNCATE), rows that came due since the last run; and the last run.
 */
export function renderFeatureLag(view: FeatureViewNode): string {
  const runs = `(SELECT r.last_run_at, r.last_full_run_at, r.runs FROM ${quoteQualified(view.schema, RUNS_TABLE)} AS r WHERE r.view_name = ${quoteLiteral(view.name)})`
  const run = `SELECT l.last_run_at::text AS last_run_at, l.last_full_run_at::text AS last_full_run_at, coalesce(l.runs, 0) AS runs,
       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - l.last_run_at)::float8 AS since_run_seconds`
  if (view.changeCapture !== 'trigger') {
    return `${run}, NULL::bigint AS pending, NULL::float8 AS oldest_seconds, NULL::boolean AS full_pending, NULL::bigint AS due, NULL::jsonb AS sample
FROM (SELECT 1) AS one LEFT JOIN ${runs} AS l ON true`
  }
  const changes = quoteQualified(view.schema, view.changesTable!)
  // The log's text keys, typed as the offline table's entity columns (a number shows as a number).
  const entity = `pg_catalog.jsonb_build_object(${view.entities.map((e) => `${quoteLiteral(e)}, (${typedKeys(view, 'c')}).${quoteIdent(e)}`).join(', ')})`
  const ts = quoteIdent(view.timestamp)
  return `${run},
       (SELECT pg_catalog.count(*) FROM (SELECT DISTINCT ${list('c', view.entities)} FROM ${changes} AS c WHERE NOT c.pgml_kit_full) AS d) AS pending,
       (SELECT pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - pg_catalog.min(c.pgml_kit_captured_at))::float8 FROM ${changes} AS c) AS oldest_seconds,
       (l.last_run_at IS NULL OR EXISTS (SELECT 1 FROM ${changes} AS c WHERE c.pgml_kit_full)) AS full_pending,
       (SELECT pg_catalog.count(*) FROM ${quoteQualified(view.schema, view.offlineTable)} AS o WHERE o.${ts} > l.last_run_at AND o.${ts} <= pg_catalog.now()) AS due,
       (SELECT pg_catalog.jsonb_agg(s.entity) FROM (SELECT DISTINCT ${entity} AS entity FROM ${changes} AS c WHERE NOT c.pgml_kit_full LIMIT $1) AS s) AS sample
FROM (SELECT 1) AS one LEFT JOIN ${runs} AS l ON true`
}

/** A feature as a training set exposes it: vectors as real[] (what pgml.train takes), scalars as stored. */
function trainingColumn(view: FeatureViewNode, feature: string): string {
  const type = view.features.find((f) => f.name === feature)?.type ?? ''
  return /^(vector|halfvec)\b/i.test(type) ? `${quoteIdent(feature)}::real[] AS ${quoteIdent(feature)}` : quoteIdent(feature)
}

/**
 * The point-in-time join: for each label row and feature view, the latest offline row of the same
 * entity whose event time is at or before the label's time (and within the view's TTL), ties broken
 * by the newer created time; no such row gives NULLs.
 */
export function renderCreateTrainingSet(set: TrainingSetNode, views: readonly FeatureViewNode[]): string[] {
  const used = [...new Set(set.features.map((f) => f.view))]
  const lateral = used.map((name, i) => {
    const view = views.find((v) => v.name === name)!
    const alias = `v${i}`
    const ts = quoteIdent(view.timestamp)
    const match = view.entities.map((e, j) => `o.${quoteIdent(e)} = l.${quoteIdent(set.entities[j]!)}`).join(' AND ')
    const ttl = view.ttl ? ` AND o.${ts} >= l.${quoteIdent(set.timestamp)} - ${quoteLiteral(view.ttl)}::interval` : ''
    const order = newestFirst(view, 'o')
    const features = set.features.filter((f) => f.view === name).map((f) => `o.${quoteIdent(f.feature)}`)
    return {
      alias, name,
      sql: `LEFT JOIN LATERAL (SELECT ${[...features, `o.${ts} AS event_timestamp`].join(', ')} FROM ${quoteQualified(view.schema, view.offlineTable)} AS o
    WHERE ${match} AND o.${ts} <= l.${quoteIdent(set.timestamp)}${ttl}
    ORDER BY ${order} LIMIT 1) AS ${alias} ON true`,
    }
  })
  const aliasOf = new Map(lateral.map((l) => [l.name, l.alias]))
  const audit = quoteQualified(set.schema, set.auditView)
  return [
    `-- Point in time: each label row gets each feature as it was at the label's time, never later.
CREATE VIEW ${audit} AS
SELECT ${[
    ...set.entities.map((e) => `l.${quoteIdent(e)}`),
    `l.${quoteIdent(set.timestamp)}`,
    ...set.features.map((f) => `${aliasOf.get(f.view)}.${quoteIdent(f.feature)}`),
    ...lateral.map((l) => `${l.alias}.event_timestamp AS ${quoteIdent(`${l.name}__event_timestamp`)}`),
    `l.${quoteIdent(set.label)}`,
  ].join(',\n       ')}
FROM ${renderRelation(set.labels)} AS l
${lateral.map((l) => l.sql).join('\n')};`,
    `-- What pgml.train reads: the features in the config's order, then the label.
CREATE VIEW ${quoteQualified(set.schema, set.name)} AS
SELECT ${[...set.features.map((f) => trainingColumn(views.find((v) => v.name === f.view)!, f.feature)), quoteIdent(set.label)].join(', ')}
FROM ${audit};`,
  ]
}

export function renderDropTrainingSet(set: TrainingSetNode): string[] {
  return [`DROP VIEW IF EXISTS ${quoteQualified(set.schema, set.name)};`, `DROP VIEW IF EXISTS ${quoteQualified(set.schema, set.auditView)};`]
}

/** How `renderPredictOnline` reads the features: the online table as of now, or the offline table as of a given time. */
export interface PredictOnlineRead {
  /** `now`: the online table, never a row dated after now(); `asOf`: the offline table as of the last parameter (timestamptz). */
  readonly at: 'now' | 'asOf'
  /** Features (`view.feature`) the model imputes itself (its `preprocess`): their NULLs go to pgml.predict. */
  readonly imputed: ReadonlySet<string>
  /** `$1` is a registry reference (`project@alias`, `project@v3`): the model pgml_kit.model_id names, not the project's deployed one. */
  readonly byReference?: boolean
  /** Through the registry (config `serving`): pgml_kit.predict($1, features, entity key), the key being the last parameter (text). */
  readonly served?: boolean
}

/** `view.feature`: how the config, and predictOnline's result, name a feature of a training set. */
export function featureRef(feature: { readonly view: string; readonly feature: string }): string {
  return `${feature.view}.${feature.feature}`
}

/**
 * One statement that predicts for an entity: each feature view's row for the entity as of a time
 * `r.at` — `now()` from the online table (at most one row per entity; never one dated after now,
 * nor one older than the TTL), or `$n` from the offline table with exactly the training join's
 * rule (the newest event at or before it and within the TTL, inclusive; ties by the newer created
 * time, NULL created times last). Selects `absent`, one boolean per feature of the training set in
 * its order (no value), and `p`, pgml.predict on the features in that order — NULL, without calling
 * pgml.predict, when a feature the model does not impute has no value. `$1` is the project, `$2`…
 * the entity's key values in the training set's `entities` order, then the time for `asOf`.
 */
export function renderPredictOnline(set: TrainingSetNode, views: readonly FeatureViewNode[], read: PredictOnlineRead): string {
  const used = [...new Set(set.features.map((f) => f.view))]
  const aliasOf = new Map(used.map((name, i) => [name, `v${i}`]))
  const lateral = used.map((name) => {
    const view = views.find((v) => v.name === name)!
    const ts = `o.${quoteIdent(view.timestamp)}`
    const features = [...new Set(set.features.filter((f) => f.view === name).map((f) => f.feature))].map((f) => `o.${quoteIdent(f)}`)
    const where = [
      ...view.entities.map((e, i) => `o.${quoteIdent(e)} = $${i + 2}`),
      `${ts} <= r.at`,
      ...(view.ttl ? [`${ts} >= r.at - ${quoteLiteral(view.ttl)}::interval`] : []),
    ].join(' AND ')
    const source = read.at === 'now' ? view.onlineTable : view.offlineTable
    // The online table has one row per entity (its primary key); the offline table its history.
    const latest = read.at === 'now' ? '' : `\n    ORDER BY ${newestFirst(view, 'o')} LIMIT 1`
    return `LEFT JOIN LATERAL (SELECT ${features.join(', ')} FROM ${quoteQualified(view.schema, source)} AS o
    WHERE ${where}${latest}) AS ${aliasOf.get(name)} ON true`
  })
  const value = (f: TrainingSetNode['features'][number]) => `${aliasOf.get(f.view)}.${quoteIdent(f.feature)}`
  const segments = set.features.map((f) => {
    const type = views.find((v) => v.name === f.view)?.features.find((x) => x.name === f.feature)?.type ?? ''
    return /^(?:vector|halfvec)\b/i.test(type) ? `${value(f)}::real[]` : `ARRAY[${value(f)}::real]`
  })
  const model = read.byReference ? 'pgml_kit.model_id($1::text)' : '$1::text'
  const vector = `(${segments.join(' OPERATOR(pg_catalog.||) ')})::real[]`
  // Served through the registry: the entity key, as text, is the statement's last parameter.
  const predict = read.served
    ? `pgml_kit.predict($1::text, ${vector}, $${set.entities.length + (read.at === 'now' ? 2 : 3)}::text)`
    : `pgml.predict(${model}, ${vector})`
  const required = set.features.filter((f) => !read.imputed.has(featureRef(f))).map((f) => `${value(f)} IS NOT NULL`)
  const at = read.at === 'now' ? 'pg_catalog.now()' : `$${set.entities.length + 2}::timestamptz`
  return `SELECT ${required.length > 0 ? `CASE WHEN ${required.join(' AND ')} THEN ${predict} END` : predict} AS p,
       ARRAY[${set.features.map((f) => `${value(f)} IS NULL`).join(', ')}] AS absent
FROM (SELECT ${at} AS at) AS r
${lateral.join('\n')}`
}

/**
 * Copies a training set into a new table: the entity keys and the label time (so its rows join
 * back to the labels), the features as the training set gives them to pgml.train, then the label.
 */
export function renderCopyTrainingSet(set: TrainingSetNode, views: readonly FeatureViewNode[], target: string): { readonly sql: string; readonly columns: readonly string[] } {
  const features = set.features.map((f) => ({ name: f.feature, sql: trainingColumn(views.find((v) => v.name === f.view)!, f.feature) }))
  const columns = [...set.entities, set.timestamp].map((c) => ({ name: c, sql: quoteIdent(c) }))
  const all = [...columns, ...features, { name: set.label, sql: quoteIdent(set.label) }]
  return {
    sql: `CREATE TABLE ${target} AS SELECT ${all.map((c) => c.sql).join(', ')} FROM ${quoteQualified(set.schema, set.auditView)}`,
    columns: all.map((c) => c.name),
  }
}
