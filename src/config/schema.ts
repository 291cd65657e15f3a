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
})

export const configSchema = z.strictObject({
  migrations: migrationsSchema.optional(),
  roles: rolesSchema.optional(),
  embedder: embedderSchema.optional(),
  tables: z.record(identifier, tableSchema),
})

export type Distance = z.infer<typeof distanceSchema>
export type IndexConfig = z.infer<typeof indexSchema>
export type HnswIndexConfig = z.infer<typeof hnswIndexSchema>
export type IvfflatIndexConfig = z.infer<typeof ivfflatIndexSchema>
export type IndexBuildConfig = z.infer<typeof buildSchema>
export type ModelConfig = z.infer<typeof modelSchema>
export type EmbeddingMode = (typeof embeddingModes)[number]
export type EmbeddingConfig = z.infer<typeof embeddingSchema>
export type TableConfig = z.infer<typeof tableSchema>
export type FullTextConfig = z.infer<typeof fullTextSchema>
export type MigrationsConfig = z.infer<typeof migrationsSchema>
export type EmbedderConfig = z.infer<typeof embedderSchema>
export type RolesConfig = z.infer<typeof rolesSchema>
/** The object `pgml-kit.config.ts` exports (usually through `defineConfig`). */
export type PgmlKitConfig = z.infer<typeof configSchema>
