import { z } from 'zod'

/**
 * The shape of `pgml-kit.config.ts`. Structural rules live here; rules that need to look at
 * several fields at once (limits that depend on the vector type, duplicates) live in `validate.ts`.
 */

const identifier = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => Buffer.byteLength(s, 'utf8') <= 63, 'is longer than PostgreSQL\'s 63-byte identifier limit')
  .refine((s) => !s.includes('\0'), 'must not contain a NUL character')

const duration = z
  .string()
  .regex(/^\d+\s*(ms|s|min|h)?$/, 'must be a PostgreSQL duration such as "5s", "500ms", "10min" or "0" (no limit)')

export const distanceSchema = z.enum(['l2', 'inner_product', 'cosine', 'l1'], {
  error: 'must be one of "l2", "inner_product", "cosine", "l1"',
})

const auto = z.literal('auto')

const size = z.string().regex(/^\d+\s*(kB|MB|GB|TB)$/, 'must be a PostgreSQL memory size such as "512MB" or "2GB"')

/**
 * Settings for the session that builds the index. `'auto'`: size `maintenance_work_mem` from the
 * table's rows when the build runs (never below the server's setting, never above `memoryLimit`),
 * and ask for parallel workers on large tables.
 */
const buildSchema = z.union([auto, z.strictObject({
  memory: z.union([auto, size]).optional(),
  /** Upper bound for `memory: 'auto'` (default 1GB). */
  memoryLimit: size.optional(),
  parallelWorkers: z.union([auto, z.number().int('must be an integer').min(0, 'must be at least 0').max(64, 'must be at most 64')]).optional(),
})], { error: 'must be "auto" or { memory?, memoryLimit?, parallelWorkers? }' })

const hnswIndexSchema = z.strictObject({
  method: z.literal('hnsw'),
  distance: distanceSchema,
  name: identifier.optional(),
  m: z.union([auto, z.number().int('must be an integer').min(2, 'must be at least 2').max(100, 'must be at most 100 (pgvector\'s limit)')], { error: 'must be "auto" or an integer from 2 to 100' }).optional(),
  efConstruction: z.union([auto, z.number().int('must be an integer').min(4, 'must be at least 4').max(1000, 'must be at most 1000 (pgvector\'s limit)')], { error: 'must be "auto" or an integer from 4 to 1000' }).optional(),
  /** `hnsw.ef_search` the query builders use by default (`pgml-kit index check --write` sets it). */
  efSearch: z.number().int('must be an integer').min(1, 'must be at least 1').max(1000, 'must be at most 1000 (pgvector\'s limit)').optional(),
  build: buildSchema.optional(),
})

const ivfflatIndexSchema = z.strictObject({
  method: z.literal('ivfflat'),
  distance: distanceSchema,
  name: identifier.optional(),
  lists: z.union([auto, z.number().int('must be an integer').min(1, 'must be at least 1').max(32768, 'must be at most 32768 (pgvector\'s limit)')], { error: 'must be "auto" or an integer from 1 to 32768' }).optional(),
  /** `ivfflat.probes` the query builders use by default (`pgml-kit index check --write` sets it). */
  probes: z.number().int('must be an integer').min(1, 'must be at least 1').max(32768, 'must be at most 32768').optional(),
  build: buildSchema.optional(),
})

export const indexSchema = z.discriminatedUnion('method', [hnswIndexSchema, ivfflatIndexSchema], {
  error: 'needs method "hnsw" or "ivfflat"',
})

const modelObjectSchema = z.strictObject({
  id: z.string().min(1, 'must not be empty'),
  revision: z.string().min(1).optional(),
  dimensions: z.number().int('must be an integer').min(1, 'must be at least 1').max(16000, 'must be at most 16000 (pgvector\'s limit for vector and halfvec)').optional(),
  documentPrefix: z.string().optional(),
  queryPrefix: z.string().optional(),
  normalize: z.boolean().optional(),
  pooling: z.enum(['mean', 'cls'], { error: 'must be "mean" or "cls"' }).optional(),
})

export const modelSchema = z.union([z.string().min(1, 'must not be empty'), modelObjectSchema], {
  error: 'must be a model id (string) or { id, dimensions, documentPrefix?, queryPrefix?, normalize?, pooling? }',
})

/**
 * Chunked embeddings (issue 29): the column's text is split into chunks, each embedded on its own
 * and stored in a chunk table beside the source table, so a long document is embedded whole and an
 * edit embeds again only the chunks whose text changed. Modes `queue` and `app` (the splitter runs
 * in Node, not in the database).
 */
export const chunkingSchema = z.strictObject({
  /** `recursive` by characters (default), `markdown` by headings then paragraphs, `tokens` by the model's own tokenizer (no chunk exceeds its window). */
  splitter: z.enum(['recursive', 'markdown', 'tokens'], { error: 'must be "recursive", "markdown" or "tokens"' }).optional(),
  /** Largest chunk: characters (recursive, markdown; default 800) or tokens (tokens; default: what the model's window leaves). */
  size: z.number().int('must be a whole number').min(1, 'must be at least 1').max(1_000_000, 'must be at most 1000000').optional(),
  /** How much of the end of one chunk the next repeats, in the same unit (default 0). */
  overlap: z.number().int('must be a whole number').min(0, 'must be at least 0').optional(),
  /** Separators the recursive splitter tries, in order (default paragraph, line, space, character). */
  separators: z.array(z.string()).min(1, 'needs at least one separator').optional(),
  /** What is embedded for each chunk: `{chunk}` is its text, `{column}` another column of the row (e.g. "{title}: {chunk}"). Default "{chunk}". */
  template: z.string().refine((t) => t.includes('{chunk}'), 'must contain {chunk}').optional(),
  /** Paragraphs per content-defined section, on average (default 4; 0: split the whole text at once, as LangChain does). */
  sectionEvery: z.number().int('must be a whole number').min(0, 'must be at least 0').max(1000, 'must be at most 1000').optional(),
  /** The chunk table's name (default `<table>_<column>`), in the table's schema. */
  table: identifier.optional(),
  /** A text search configuration: the chunk table gets a tsvector of each chunk with a GIN index, for hybrid search over chunks. */
  fullText: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.]*$/, 'must be a text search configuration name such as "english" or "simple"').optional(),
})

export const embeddingModes = ['trigger', 'generated', 'queue', 'app'] as const

export const embeddingSchema = z.strictObject({
  source: z.union([identifier, z.array(identifier).min(1, 'needs at least one source column')], {
    error: 'must be a column name or a non-empty list of column names',
  }),
  separator: z.string().optional(),
  model: modelSchema,
  mode: z.enum(embeddingModes, { error: 'must be one of "trigger", "generated", "queue", "app"' }),
  type: z.enum(['vector', 'halfvec'], { error: 'must be "vector" or "halfvec"' }).optional(),
  indexes: z.array(indexSchema).optional(),
  /** Split the text into chunks and embed each (a chunk table instead of a vector column): see chunkingSchema. */
  chunking: chunkingSchema.optional(),
  /**
   * The column's name before a rename: the next migration renames the column (and its indexes,
   * triggers, catalog row and queued jobs) instead of dropping it and embedding every row again.
   * Harmless once applied; remove it whenever you like.
   */
  renamedFrom: identifier.optional(),
  /**
   * `pgml-kit monitor` for this column: a sample of `rows` rows (default 500) — the newest by the
   * `recent` column when given (a timestamp or a growing id), else a fixed hash sample of the
   * table — compared with the baseline the first run keeps (`monitor --baseline` keeps a new one):
   * the shift of the centroid (a test of equal means) and of the nearest-neighbour distances (KS),
   * each alarming below `alpha` (default 0.01, split over the two).
   */
  monitor: z.strictObject({
    recent: identifier.optional(),
    rows: z.number().int('must be a whole number').min(50, 'must be at least 50 rows').max(5000, 'must be at most 5000 rows').optional(),
    alpha: z.number().gt(0, 'must be above 0').lt(1, 'must be below 1').optional(),
  }).optional(),
})

const textSearchConfig = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.]*$/, 'must be a text search configuration name such as "english" or "simple"')

export const fullTextSchema = z.strictObject({
  /** The generated tsvector column (default `search_tsv`). */
  column: identifier.optional(),
  /** Text search configuration (default `english`). */
  language: textSearchConfig.optional(),
  /** Columns to index, each optionally with a weight A (highest) to D. */
  source: z.union([identifier, z.array(z.union([identifier, z.strictObject({ column: identifier, weight: z.enum(['A', 'B', 'C', 'D']) })])).min(1, 'needs at least one column')]),
})

export const tableSchema = z.strictObject({
  schema: identifier.optional(),
  /** Columns that identify a row; the `queue` mode records them in its jobs. Default: `id`. */
  primaryKey: z.union([identifier, z.array(identifier).min(1, 'needs at least one column')]).optional(),
  embeddings: z.record(identifier, embeddingSchema),
  /** A generated tsvector column with a GIN index, for full-text and hybrid search. */
  fullText: fullTextSchema.optional(),
  /**
   * The table's name before a rename, in the same schema: the next migration renames the table
   * (and its indexes, trigger functions, catalog rows, queued jobs, dead letters and backfill
   * checkpoints) instead of dropping and re-adding every embedding and full-text column.
   * Harmless once applied; remove it whenever you like.
   */
  renamedFrom: identifier.optional(),
})

/** node-pg-migrate writes these names into its SQL between quotes without escaping them. */
const runnerIdentifier = identifier.refine((s) => !/["'\\\u0000-\u001f]/.test(s), 'must not contain quotes, backslashes or control characters (node-pg-migrate writes this name into its SQL unescaped)')

export const migrationsSchema = z.strictObject({
  dir: z.string().min(1).optional(),
  table: runnerIdentifier.optional(),
  schema: runnerIdentifier.optional(),
  lockTimeout: duration.optional(),
  statementTimeout: duration.optional(),
  indexStatementTimeout: duration.optional(),
  /** lock_timeout for concurrent index builds and drops, which wait for every older transaction (default '0': wait). */
  indexLockTimeout: duration.optional(),
})

export const embedderSchema = z.strictObject({
  /** Directory holding local model folders (`<dir>/<model id>/onnx/model.onnx`, ...), relative to the config. */
  modelsDir: z.string().min(1).optional(),
  /** Let transformers.js download models it cannot find locally (default true; tests set false). */
  allowRemoteModels: z.boolean().optional(),
  /** Texts per model call (default 32). */
  batchSize: z.number().int().min(1).max(4096).optional(),
})

const roleList = z.union([identifier, z.array(identifier)], { error: 'must be a role name or a list of role names' })

export const rolesSchema = z.strictObject({
  /**
   * Roles the application connects as. Writes need nothing from pgml-kit (its trigger functions
   * are SECURITY DEFINER); these roles are granted what search and predictions use in the
   * database: USAGE on schema pgml (when the config uses it) and read access to the pgml_kit catalog.
   */
  app: roleList.optional(),
  /** Roles that run `pgml-kit worker`, `backfill` and `queue retry`: granted exactly what those do. */
  worker: roleList.optional(),
  /**
   * Roles that run `pgml-kit train`, `deploy` and `models` (alias, archive, describe): granted
   * reading and writing the model registry in schema pgml_kit. Training itself needs pgml's own
   * grant (with pgml_compat: GRANT pgml_trainer TO <role>).
   */
  trainer: roleList.optional(),
})

/** A column type written into generated SQL as is: a type name, optionally with a modifier, e.g. `double precision`, `numeric(10,2)`, `vector(128)`. */
const sqlType = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*( [A-Za-z_][A-Za-z0-9_]*)*(\(\d+(, ?\d+)?\))?(\[\])?$/, 'must be a PostgreSQL type such as "double precision", "integer", "numeric(10,2)" or "vector(128)"')

const interval = z.string().regex(/^\d+(\.\d+)?\s*(seconds?|minutes?|hours?|days?|weeks?|months?|years?)$/, 'must be an interval such as "30 days", "12 hours" or "1 year"')

const relationSchema = z.union([
  z.strictObject({ table: identifier, schema: identifier.optional() }),
  z.strictObject({ sql: z.string().min(1, 'must not be empty') }),
], { error: 'must be { table, schema? } or { sql }' })

/**
 * A feature view (Feast's model): features of an entity computed from a source, each row stamped
 * with when the values held (`timestamp`) and, optionally, when they were recorded (`createdTimestamp`).
 */
export const featureViewSchema = z.strictObject({
  /** Columns that identify the entity in the source (join keys). */
  entities: z.union([identifier, z.array(identifier).min(1, 'needs at least one column')]),
  source: relationSchema,
  /** When the feature values held (the event time). */
  timestamp: identifier,
  /** When the row was recorded; breaks ties between rows of the same event time, and is the materialisation's high-water mark when given. */
  createdTimestamp: identifier.optional(),
  /** How long a feature row stays valid after its event time (default: forever). */
  ttl: interval.optional(),
  /** Source column → type it is stored as. */
  features: z.record(identifier, sqlType).refine((f) => Object.keys(f).length > 0, 'needs at least one feature'),
})

/** A training set: label rows with their time, joined point-in-time to feature views. */
export const trainingSetSchema = z.strictObject({
  labels: relationSchema,
  /** Columns of the label rows that match each feature view's entities, in order. */
  entities: z.union([identifier, z.array(identifier).min(1, 'needs at least one column')]),
  /** When the label was observed: features are taken as they were at this time. */
  timestamp: identifier,
  /** The label column (the model's target). */
  label: identifier,
  /** Features as `<view>.<feature>`, in the order the model sees them. */
  features: z.array(z.string().regex(/^[^.]+\.[^.]+$/, 'must be "<feature view>.<feature>"')).min(1, 'needs at least one feature'),
})

const jsonObject = z.record(z.string(), z.unknown())

/** A model trained in the database with pgml.train. */
export const modelTrainingSchema = z.strictObject({
  task: z.enum(['regression', 'classification'], { error: 'must be "regression" or "classification"' }),
  /** A training set of this config, or a table or view (`schema.name` or `name`). */
  relation: z.string().min(1),
  /** The target column (default: the training set's label). */
  target: identifier.optional(),
  algorithm: z.string().regex(/^[a-z_0-9]+$/, 'must be a pgml algorithm name such as "linear", "xgboost" or "random_forest"').optional(),
  hyperparams: jsonObject.optional(),
  search: z.enum(['grid', 'random']).optional(),
  searchParams: jsonObject.optional(),
  searchArgs: jsonObject.optional(),
  testSize: z.number().gt(0, 'must be above 0').lt(1, 'must be below 1').optional(),
  testSampling: z.enum(['random', 'first', 'last', 'stratified']).optional(),
  preprocess: jsonObject.optional(),
  /**
   * The deployment gate: deploy a newly trained model (and let `deploy --model` deploy one) only if
   * `metric` is at least `min` (higher-is-better metrics: r2, f1, accuracy, ...) or at most `max`
   * (lower-is-better: mean_squared_error, mean_absolute_error, log_loss), and beats the deployed
   * model's by `margin`.
   */
  /**
   * `pgml-kit monitor`: the rows to compare with the training baseline — `relation`, a table or
   * view with the model's feature columns (e.g. a view of the last week's rows; default: the
   * training relation as it is now) — and when to raise an alarm: a feature's or the predictions'
   * PSI of at least `psi` (default 0.2), or a KS test rejecting "same distribution" at level
   * `alpha` (default 0.01, split over the tests).
   */
  monitor: z.strictObject({
    relation: z.string().regex(/^[^.]+(\.[^.]+)?$/, 'must be a table or view, "schema.name" or "name"').optional(),
    psi: z.number().gt(0, 'must be above 0').optional(),
    alpha: z.number().gt(0, 'must be above 0').lt(1, 'must be below 1').optional(),
  }).optional(),
  /**
   * Serving through the registry: `kit.predict` and `predictOnline` call pgml_kit.predict, which
   * follows the project's route (a challenger alias in shadow or as a canary, set with
   * `pgml-kit models route`) and, with `log`, logs a `sample` of the requests (default 1: all)
   * for `retentionDays` (default 30) — the prediction log `models compare` and `monitor` read.
   * `labels`: where the true outcomes arrive (a table or view, its entity-key column, its label
   * column), for `models compare` to score each arm on the labelled requests.
   */
  serving: z.strictObject({
    log: z.strictObject({
      sample: z.number().gt(0, 'must be above 0').max(1, 'must be at most 1').optional(),
      retentionDays: z.number().int('must be a whole number of days').min(1, 'must be at least 1 day').max(3650, 'must be at most 3650 days').optional(),
    }).optional(),
    labels: z.strictObject({
      relation: z.string().regex(/^[^.]+(\.[^.]+)?$/, 'must be a table or view, "schema.name" or "name"'),
      key: identifier,
      label: identifier,
    }).optional(),
  }).optional(),
  deploy: z.strictObject({
    metric: z.string().regex(/^[a-z_0-9]+$/, 'must be a metric name such as "r2", "f1", "accuracy" or "mean_squared_error"'),
    min: z.number().optional(),
    max: z.number().optional(),
    margin: z.number().min(0).optional(),
  }).optional(),
})

export const configSchema = z.strictObject({
  migrations: migrationsSchema.optional(),
  roles: rolesSchema.optional(),
  embedder: embedderSchema.optional(),
  tables: z.record(identifier, tableSchema),
  /** Feature views, their training sets, and the schema their tables and views go in (default `features`). */
  features: z.strictObject({
    schema: identifier.optional(),
    views: z.record(identifier, featureViewSchema).optional(),
    trainingSets: z.record(identifier, trainingSetSchema).optional(),
  }).optional(),
  /** Models trained in the database, by pgml project name. */
  models: z.record(z.string().min(1).regex(/^[^@]*$/, 'must not contain "@": project@alias and project@v3 name versions in the model registry'), modelTrainingSchema).optional(),
})

export type Distance = z.infer<typeof distanceSchema>
export type IndexConfig = z.infer<typeof indexSchema>
export type HnswIndexConfig = z.infer<typeof hnswIndexSchema>
export type IvfflatIndexConfig = z.infer<typeof ivfflatIndexSchema>
export type IndexBuildConfig = z.infer<typeof buildSchema>
export type ModelConfig = z.infer<typeof modelSchema>
export type EmbeddingMode = (typeof embeddingModes)[number]
export type EmbeddingConfig = z.infer<typeof embeddingSchema>
export type ChunkingConfig = z.infer<typeof chunkingSchema>
export type TableConfig = z.infer<typeof tableSchema>
export type FullTextConfig = z.infer<typeof fullTextSchema>
export type MigrationsConfig = z.infer<typeof migrationsSchema>
export type EmbedderConfig = z.infer<typeof embedderSchema>
export type RolesConfig = z.infer<typeof rolesSchema>
export type FeatureViewConfig = z.infer<typeof featureViewSchema>
export type TrainingSetConfig = z.infer<typeof trainingSetSchema>
export type ModelTrainingConfig = z.infer<typeof modelTrainingSchema>
/** The object `pgml-kit.config.ts` exports (usually through `defineConfig`). */
export type PgmlKitConfig = z.infer<typeof configSchema>
