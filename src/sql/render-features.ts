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
  trained_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);`,
    `COMMENT ON TABLE ${quoteQualified(schema, LINEAGE_TABLE)} IS 'pgml-kit: for each model pgml-kit trained, the training set definition (sha256) and each feature view''s definition and materialisation high-water mark at training time.';`,
  ]
}

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

/** How `renderPredictOnline` reads the features: the online table as of now, or the offline table as of a given time. */
export interface PredictOnlineRead {
  /** `now`: the online table, never a row dated after now(); `asOf`: the offline table as of the last parameter (timestamptz). */
  readonly at: 'now' | 'asOf'
  /** Features (`view.feature`) the model imputes itself (its `preprocess`): their NULLs go to pgml.predict. */
  readonly imputed: ReadonlySet<string>
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
    const latest = read.at === 'now' ? '' : `\n    ORDER BY ${ts} DESC${view.createdTimestamp ? `, o.${quoteIdent(view.createdTimestamp)} DESC NULLS LAST` : ''} LIMIT 1`
    return `LEFT JOIN LATERAL (SELECT ${features.join(', ')} FROM ${quoteQualified(view.schema, source)} AS o
    WHERE ${where}${latest}) AS ${aliasOf.get(name)} ON true`
  })
  const value = (f: TrainingSetNode['features'][number]) => `${aliasOf.get(f.view)}.${quoteIdent(f.feature)}`
  const segments = set.features.map((f) => {
    const type = views.find((v) => v.name === f.view)?.features.find((x) => x.name === f.feature)?.type ?? ''
    return /^(?:vector|halfvec)\b/i.test(type) ? `${value(f)}::real[]` : `ARRAY[${value(f)}::real]`
  })
  const predict = `pgml.predict($1::text, (${segments.join(' OPERATOR(pg_catalog.||) ')})::real[])`
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
