import type { FeatureViewNode, RelationNode, TrainingSetNode } from '../model/ir.js'
import { dollarQuote, quoteIdent, quoteLiteral, quoteQualified } from './quote.js'
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
  return [`${squawkIgnore(['ban-drop-table'], OWN_TABLE_DROP)}DROP TABLE IF EXISTS ${quoteQualified(schema, LINEAGE_TABLE)};`, `DROP SCHEMA IF EXISTS ${quoteIdent(schema)};`]
}

/** The column that marks how far materialisation got: the created time when there is one, else the event time. */
export function highWaterColumn(view: FeatureViewNode): string {
  return view.createdTimestamp ?? view.timestamp
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

export function renderCreateFeatureView(view: FeatureViewNode): string[] {
  const offline = quoteQualified(view.schema, view.offlineTable)
  const online = quoteQualified(view.schema, view.onlineTable)
  const keys = keyColumns(view).map(quoteIdent).join(', ')
  const entities = view.entities.map(quoteIdent).join(', ')
  const columns = [...keyColumns(view), ...view.features.map((f) => f.name)].map(quoteIdent)
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
  -- One materialisation of this view at a time (the key names schema and view apart: "a.b"."c" is not "a"."b.c").
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
  return [
    `-- Offline store: every materialised row (append-only); its columns take their types from the source.
CREATE TABLE ${offline} AS
  SELECT ${sourceColumns(view, 's')}, pg_catalog.now() AS materialized_at FROM ${renderRelation(view.source)} AS s WITH NO DATA;`,
    `${squawkIgnore(['adding-not-nullable-field', 'constraint-missing-not-valid', 'disallowed-unique-constraint'], NEW_TABLE)}ALTER TABLE ${offline} ALTER COLUMN materialized_at SET DEFAULT pg_catalog.now(), ALTER COLUMN materialized_at SET NOT NULL, ADD UNIQUE NULLS NOT DISTINCT (${keys});`,
    `-- Online store: the latest row per entity, for serving.
CREATE TABLE ${online} AS
  SELECT ${sourceColumns(view, 's')}, pg_catalog.now() AS updated_at FROM ${renderRelation(view.source)} AS s WITH NO DATA;`,
    `${squawkIgnore(['adding-serial-primary-key-field', 'constraint-missing-not-valid'], NEW_TABLE)}ALTER TABLE ${online} ADD PRIMARY KEY (${entities});`,
    `-- Copies the source's rows since the high-water mark (${highWaterColumn(view)}) into the offline store, and each entity's newest into the online
-- store unless the online row is newer. Incremental and idempotent: rows at the mark are read again and skipped.
CREATE FUNCTION ${quoteQualified(view.schema, view.materializeFunction)}() RETURNS TABLE (inserted bigint, updated bigint, high_water_mark text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS ${dollarQuote(body)};`,
  ]
}

export function renderDropFeatureView(view: FeatureViewNode): string[] {
  return [
    `DROP FUNCTION IF EXISTS ${quoteQualified(view.schema, view.materializeFunction)}();`,
    `${squawkIgnore(['ban-drop-table'], OWN_TABLE_DROP)}DROP TABLE IF EXISTS ${quoteQualified(view.schema, view.onlineTable)};`,
    `${squawkIgnore(['ban-drop-table'], OWN_TABLE_DROP)}DROP TABLE IF EXISTS ${quoteQualified(view.schema, view.offlineTable)};`,
  ]
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
    const order = `o.${ts} DESC${view.createdTimestamp ? `, o.${quoteIdent(view.createdTimestamp)} DESC NULLS LAST` : ''}`
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

/**
 * One statement that predicts for an entity from the online store: each feature of the training
 * set, in its order, read from its view's online table (NULL when the entity has no row, or its row
 * is older than the view's TTL), passed to pgml.predict. `$1` is the project, `$2`… the entity's
 * key values in the training set's `entities` order.
 */
export function renderPredictOnline(set: TrainingSetNode, views: readonly FeatureViewNode[]): string {
  const segments = set.features.map((f) => {
    const view = views.find((v) => v.name === f.view)!
    const type = view.features.find((x) => x.name === f.feature)?.type ?? ''
    const where = view.entities.map((e, i) => `o.${quoteIdent(e)} = $${i + 2}`).join(' AND ')
    const ttl = view.ttl ? ` AND o.${quoteIdent(view.timestamp)} >= pg_catalog.now() - ${quoteLiteral(view.ttl)}::interval` : ''
    const read = (expression: string) => `(SELECT ${expression} FROM ${quoteQualified(view.schema, view.onlineTable)} AS o WHERE ${where}${ttl})`
    const dims = /^(?:vector|halfvec)\((\d+)\)/i.exec(type)?.[1]
    if (dims) return `coalesce(${read(`o.${quoteIdent(f.feature)}::real[]`)}, pg_catalog.array_fill(NULL::real, ARRAY[${Number(dims)}]))`
    return `ARRAY[${read(`o.${quoteIdent(f.feature)}::real`)}]`
  })
  return `SELECT pgml.predict($1::text, (${segments.join(' OPERATOR(pg_catalog.||) ')})::real[]) AS p`
}
