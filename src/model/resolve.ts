import { resolve as resolvePath } from 'node:path'
import { ConfigError, type ConfigIssue } from '../errors.js'
import { configSchema, type EmbeddingConfig, type IndexConfig, type PgmlKitConfig } from '../config/schema.js'
import { resolveFeatureViews, resolveModels, resolveTrainingSets } from './resolve-features.js'
import { deriveIdentifier, ownedIdentifier } from './identifiers.js'
import {
  RUNTIME_VERSION, deepFreeze, objectKey, triggerFunctionName,
  type ChunkedColumnNode, type DesiredState, type EmbedderSettings, type EmbeddingColumnNode, type FullTextNode, type IndexBuildSettings, type TrainingSetNode, type MigrationSettings, type ResolvedModel, type VectorIndexNode, type VectorType,
} from './ir.js'
import { MODEL_PRESETS } from './presets.js'

/** pgvector's limits on indexable dimensions, per type. */
export const INDEXABLE_DIMENSIONS: Readonly<Record<VectorType, number>> = { vector: 2000, halfvec: 4000 }

export const DISTANCE_SUFFIX = { l2: 'l2', inner_product: 'ip', cosine: 'cosine', l1: 'l1' } as const
export const DEFAULT_SEPARATOR = '\n\n'

/** A model the config declares (not schema: `pgml-kit train` acts on it). */
export interface ModelNode {
  readonly project: string
  readonly task: 'regression' | 'classification'
  /** The training set it trains on, when `relation` names one. */
  readonly trainingSet: TrainingSetNode | null
  /** The relation pgml.train reads, as PostgreSQL would name it (`schema.name`, quoted where needed). */
  readonly relationName: string
  readonly target: string
  readonly algorithm: string | null
  readonly hyperparams: Readonly<Record<string, unknown>> | null
  readonly search: 'grid' | 'random' | null
  readonly searchParams: Readonly<Record<string, unknown>> | null
  readonly searchArgs: Readonly<Record<string, unknown>> | null
  readonly testSize: number | null
  readonly testSampling: 'random' | 'first' | 'last' | 'stratified' | null
  readonly preprocess: Readonly<Record<string, unknown>> | null
  /** The deployment gate (config `deploy`): `min` only for higher-is-better metrics, `max` only for lower-is-better ones. */
  readonly gate: { readonly metric: string; readonly min: number | null; readonly max: number | null; readonly margin: number | null } | null
  /** `pgml-kit monitor`: the relation whose rows are compared with the training baseline (null: the training relation, quoted otherwise), and the alarm thresholds (config `monitor`, with defaults). */
  readonly monitor: { readonly relation: string | null; readonly psi: number; readonly alpha: number }
  /** Config `serving`: null when predictions go straight to pgml.predict; `log` null when nothing is logged; `labels.relation` quoted. */
  readonly serving: {
    readonly log: { readonly sample: number; readonly retentionDays: number } | null
    readonly labels: { readonly relation: string; readonly key: string; readonly label: string } | null
  } | null
}

/** An embedding column watched for drift: its sample (size, and the column that orders rows newest first, or null for a hash sample) and alarm level. */
export interface EmbeddingMonitorNode {
  readonly column: EmbeddingColumnNode
  readonly recent: string | null
  readonly rows: number
  readonly alpha: number
}

/** An embedding column the config says was renamed (`renamedFrom`): a planning hint, not state. */
export interface ColumnRename {
  readonly schema: string
  readonly table: string
  readonly from: string
  readonly to: string
  /** Where the config says so, for errors. */
  readonly path: string
}

/**
 * A table the config says was renamed (`tables.<to>.renamedFrom`), within its schema: a planning
 * hint, not state. Column renames of the same table name it by its new name.
 */
export interface TableRename {
  readonly schema: string
  readonly from: string
  readonly to: string
  /** Where the config says so, for errors. */
  readonly path: string
}

export interface ResolvedConfig {
  /** Embedding columns declared as renamed from another name. */
  readonly renames: readonly ColumnRename[]
  /** Tables declared as renamed from another name. */
  readonly tableRenames: readonly TableRename[]
  /** Models to train with `pgml-kit train`, by project. */
  readonly models: readonly ModelNode[]
  /** Embedding columns `pgml-kit monitor` watches for drift (config `monitor`). */
  readonly embeddingMonitors: readonly EmbeddingMonitorNode[]
  readonly state: DesiredState
  readonly migrations: MigrationSettings
  /** Embedder settings; `modelsDir` is as written in the config (relative to it). */
  readonly embedder: { readonly modelsDir: string | null; readonly allowRemoteModels: boolean; readonly batchSize: number }
}

/** Embedder settings with a relative `modelsDir` made absolute against `baseDir` (the config's directory). */
export function embedderSettingsAt(settings: ResolvedConfig['embedder'], baseDir: string): EmbedderSettings {
  return { ...settings, modelsDir: settings.modelsDir === null ? null : resolvePath(baseDir, settings.modelsDir) }
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`
    else out += out === '' ? String(part) : `.${String(part)}`
  }
  return out
}

interface RawIssue {
  readonly code: string
  readonly path: readonly PropertyKey[]
  readonly message: string
  readonly issues?: readonly RawIssue[]
  readonly errors?: readonly (readonly RawIssue[])[]
}

/**
 * Turns zod's issues into one line per problem. A union ("a model id or an object") reports the
 * problems of the branch that got furthest into the value, so `model.pooling: must be ...` is
 * said instead of a generic "must be a string or an object".
 */
function flattenIssues(issues: readonly RawIssue[], prefix: readonly PropertyKey[]): ConfigIssue[] {
  const out: ConfigIssue[] = []
  for (const issue of issues) {
    const path = [...prefix, ...issue.path]
    if (issue.code === 'invalid_union' && issue.errors && issue.errors.length > 0) {
      const depth = (branch: readonly RawIssue[]) => Math.max(...branch.map((i) => i.path.length + (i.code === 'invalid_type' && i.path.length === 0 ? -1 : 0)))
      const best = [...issue.errors].sort((a, b) => depth(b) - depth(a))[0]
      if (best && depth(best) > 0) {
        out.push(...flattenIssues(best, path))
        continue
      }
    }
    if (issue.code === 'invalid_key' && issue.issues?.[0]) {
      out.push({ path: formatPath(path), message: `name ${issue.issues[0].message}` })
      continue
    }
    out.push({ path: formatPath(path), message: issue.message })
  }
  return out
}

/**
 * Validates a config and resolves it into the frozen desired state. Throws a `ConfigError` listing
 * every problem found, each with its config path.
 *
 * @example
 * const { state } = resolveConfig(config)
 * state.embeddingColumns[0].model.dimensions // 384
 */
export function resolveConfig(input: unknown, source = 'pgml-kit.config.ts'): ResolvedConfig {
  const parsed = configSchema.safeParse(input)
  if (!parsed.success) throw new ConfigError(flattenIssues(parsed.error.issues, []), source)
  const config: PgmlKitConfig = parsed.data
  const issues: ConfigIssue[] = []
  const columns: EmbeddingColumnNode[] = []
  const chunkedColumns: ChunkedColumnNode[] = []
  const embeddingMonitors: EmbeddingMonitorNode[] = []
  const indexes: VectorIndexNode[] = []
  const indexNames = new Map<string, string>()
  const fullText: FullTextNode[] = []
  const renames: ColumnRename[] = []
  const tableRenames: TableRename[] = []
  const declaredTables = new Set(Object.entries(config.tables).map(([table, t]) => objectKey(t.schema ?? 'public', table)))

  for (const [table, tableConfig] of Object.entries(config.tables)) {
    const tablePath = `tables.${table}`
    if (table.includes('.')) {
      issues.push({ path: tablePath, message: `table names are given without a schema; write tables: { ${JSON.stringify(table.split('.').pop())}: { schema: ${JSON.stringify(table.split('.')[0])}, ... } }` })
      continue
    }
    const schema = tableConfig.schema ?? 'public'
    if (tableConfig.renamedFrom !== undefined) {
      const from = tableConfig.renamedFrom
      const path = `${tablePath}.renamedFrom`
      if (from === table) issues.push({ path, message: 'names the table itself; remove renamedFrom' })
      else if (declaredTables.has(objectKey(schema, from))) issues.push({ path, message: `${schema}.${from} is still declared in tables; a renamed table's old name must be gone from the config` })
      else {
        const other = tableRenames.find((r) => r.schema === schema && r.from === from)
        if (other) issues.push({ path, message: `${other.path.slice(0, -'.renamedFrom'.length)} is already renamed from ${schema}.${from}; one table can take its place, not two` })
        else tableRenames.push({ schema, from, to: table, path })
      }
    }
    const keyColumns = tableConfig.primaryKey === undefined ? ['id'] : typeof tableConfig.primaryKey === 'string' ? [tableConfig.primaryKey] : [...tableConfig.primaryKey]
    if (new Set(keyColumns).size !== keyColumns.length) issues.push({ path: `${tablePath}.primaryKey`, message: 'lists a column twice' })
    if (tableConfig.fullText) {
      const ft = tableConfig.fullText
      const column = ft.column ?? 'search_tsv'
      const sources = (typeof ft.source === 'string' ? [ft.source] : ft.source).map((s) => (typeof s === 'string' ? { column: s, weight: null } : { column: s.column, weight: s.weight }))
      const seen = new Set<string>()
      for (const [i, source] of sources.entries()) {
        if (seen.has(source.column)) issues.push({ path: `${tablePath}.fullText.source[${i}]`, message: `column "${source.column}" is listed twice` })
        seen.add(source.column)
      }
      if (column in tableConfig.embeddings || sources.some((s) => s.column === column)) issues.push({ path: `${tablePath}.fullText.column`, message: `"${column}" is already used by the table's config; choose another column name` })
      const indexName = deriveIdentifier([table, column, 'gin', 'idx'])
      const qualified = objectKey(schema, indexName)
      if (indexNames.has(qualified)) issues.push({ path: `${tablePath}.fullText`, message: `index name "${indexName}" is already used by ${indexNames.get(qualified)}` })
      indexNames.set(qualified, `${tablePath}.fullText`)
      fullText.push({ schema, table, column, language: ft.language ?? 'english', sources, indexName })
    }
    for (const [column, embedding] of Object.entries(tableConfig.embeddings)) {
      const path = `${tablePath}.embeddings.${column}`
      if (keyColumns.includes(column)) issues.push({ path, message: `"${column}" is the table's primary key and cannot be an embedding column` })
      if (embedding.chunking) {
        const chunked = resolveChunked(schema, table, column, keyColumns, embedding, path, issues, indexNames)
        if (chunked) chunkedColumns.push(chunked)
        continue
      }
      const node = resolveEmbedding(schema, table, column, keyColumns, embedding, path, issues)
      if (node) columns.push(node)
      if (node && embedding.monitor) embeddingMonitors.push({ column: node, recent: embedding.monitor.recent ?? null, rows: embedding.monitor.rows ?? 500, alpha: embedding.monitor.alpha ?? 0.01 })
      if (embedding.renamedFrom !== undefined) {
        const from = embedding.renamedFrom
        if (from === column) issues.push({ path: `${path}.renamedFrom`, message: 'names the column itself; remove renamedFrom' })
        else if (from in tableConfig.embeddings) issues.push({ path: `${path}.renamedFrom`, message: `"${from}" is still declared as an embedding column of ${table}; a renamed column's old name must be gone from the config` })
        else if (renames.some((r) => r.schema === schema && r.table === table && r.from === from)) issues.push({ path: `${path}.renamedFrom`, message: `another column of ${table} is already renamed from "${from}"` })
        else renames.push({ schema, table, from, to: column, path: `${path}.renamedFrom` })
      }
      // Indexes are checked even when the column has problems, so every mistake is reported at once.
      for (const [i, indexConfig] of (embedding.indexes ?? []).entries()) {
        const index = resolveIndex({ schema, table, column }, indexConfig, `${path}.indexes[${i}]`, issues)
        if (!index) continue
        const qualified = objectKey(schema, index.name)
        const previous = indexNames.get(qualified)
        if (previous !== undefined) {
          issues.push({
            path: `${path}.indexes[${i}]`,
            message: `index name "${index.name}" is already used by ${previous}; give one of them a distinct "name"`,
          })
          continue
        }
        indexNames.set(qualified, `${path}.indexes[${i}]`)
        indexes.push(index)
      }
    }
  }
  const featureSchema = config.features?.schema ?? 'features'
  const featureViews = resolveFeatureViews(config, featureSchema, issues)
  const trainingSets = resolveTrainingSets(config, featureSchema, featureViews, issues)
  const models = resolveModels(config, trainingSets, issues)
  if (issues.length > 0) throw new ConfigError(issues, source)

  const byKey = (a: { schema: string; table: string; column: string }, b: typeof a) =>
    a.schema.localeCompare(b.schema) || a.table.localeCompare(b.table) || a.column.localeCompare(b.column)
  columns.sort(byKey)
  chunkedColumns.sort(byKey)
  // Two chunked columns, or a chunked column and another object of the config, cannot share a table or view name.
  const taken = new Map<string, string>()
  for (const c of chunkedColumns) {
    for (const name of [c.chunkTable, c.view]) {
      const key = objectKey(c.schema, name)
      const other = taken.get(key) ?? (declaredTables.has(key) ? `tables.${name}` : undefined)
      if (other !== undefined) issues.push({ path: `tables.${c.table}.embeddings.${c.column}.chunking.table`, message: `${c.schema}.${name} is already used by ${other}; give the chunk table another name` })
      taken.set(key, `tables.${c.table}.embeddings.${c.column}`)
    }
  }
  if (issues.length > 0) throw new ConfigError(issues, source)
  indexes.sort((a, b) => byKey(a, b) || a.name.localeCompare(b.name))

  const m = config.migrations ?? {}
  const e = config.embedder ?? {}
  return deepFreeze({
    embedder: { modelsDir: e.modelsDir ?? null, allowRemoteModels: e.allowRemoteModels ?? true, batchSize: e.batchSize ?? 32 },
    state: {
      formatVersion: 1,
      runtimeVersion: columns.length > 0 || chunkedColumns.length > 0 || Object.keys(config.models ?? {}).length > 0 ? RUNTIME_VERSION : 0,
      embeddingColumns: columns,
      ...(chunkedColumns.length > 0 ? { chunkedColumns } : {}),
      indexes,
      fullText: fullText.sort((a, b) => a.schema.localeCompare(b.schema) || a.table.localeCompare(b.table)),
      roles: {
        app: roleNames(config.roles?.app), worker: roleNames(config.roles?.worker),
        ...(roleNames(config.roles?.trainer).length > 0 ? { trainer: roleNames(config.roles?.trainer) } : {}),
      },
      featureViews,
      trainingSets,
      ...(Object.keys(config.models ?? {}).length > 0 ? { models: Object.keys(config.models ?? {}).sort() } : {}),
      ...(models.some((m) => m.serving?.log) ? { predictionLogs: models.filter((m) => m.serving?.log).map((m) => ({ project: m.project, ...m.serving!.log! })).sort((a, b) => a.project.localeCompare(b.project)) } : {}),
    },
    models,
    embeddingMonitors,
    renames,
    tableRenames,
    migrations: {
      dir: m.dir ?? 'migrations',
      table: m.table ?? 'pgmigrations',
      schema: m.schema ?? 'public',
      lockTimeout: m.lockTimeout ?? '5s',
      statementTimeout: m.statementTimeout ?? '5min',
      indexStatementTimeout: m.indexStatementTimeout ?? '0',
      indexLockTimeout: m.indexLockTimeout ?? '0',
    },
  })
}

function roleNames(roles: string | readonly string[] | undefined): string[] {
  const list = roles === undefined ? [] : typeof roles === 'string' ? [roles] : [...roles]
  return [...new Set(list)].sort()
}

function resolveModel(model: EmbeddingConfig['model'], path: string, issues: ConfigIssue[]): ResolvedModel | undefined {
  const spec = typeof model === 'string' ? { id: model } : model
  const preset = MODEL_PRESETS[spec.id]
  const dimensions = spec.dimensions ?? preset?.dimensions
  if (dimensions === undefined) {
    issues.push({
      path: typeof model === 'string' ? path : `${path}.dimensions`,
      message: `model "${spec.id}" is not a known preset, so its dimensions must be given: model: { id: ${JSON.stringify(spec.id)}, dimensions: <n> }. Known presets: ${Object.keys(MODEL_PRESETS).join(', ')}`,
    })
    return undefined
  }
  if (preset && spec.dimensions !== undefined && spec.dimensions !== preset.dimensions) {
    issues.push({
      path: `${path}.dimensions`,
      message: `model "${spec.id}" produces ${preset.dimensions} dimensions, not ${spec.dimensions}`,
    })
    return undefined
  }
  return {
    id: spec.id,
    revision: spec.revision ?? null,
    dimensions,
    documentPrefix: spec.documentPrefix ?? preset?.documentPrefix ?? '',
    queryPrefix: spec.queryPrefix ?? preset?.queryPrefix ?? '',
    normalize: spec.normalize ?? preset?.normalize ?? true,
    pooling: spec.pooling ?? preset?.pooling ?? null,
  }
}

function resolveEmbedding(
  schema: string, table: string, column: string, keyColumns: readonly string[], embedding: EmbeddingConfig, path: string, issues: ConfigIssue[],
): EmbeddingColumnNode | undefined {
  const before = issues.length
  const sourceColumns = typeof embedding.source === 'string' ? [embedding.source] : [...embedding.source]
  const seen = new Set<string>()
  for (const [i, source] of sourceColumns.entries()) {
    if (seen.has(source)) issues.push({ path: `${path}.source[${i}]`, message: `source column "${source}" is listed twice; list each column once` })
    seen.add(source)
    if (source === column) issues.push({ path: `${path}.source[${i}]`, message: `the embedding column "${column}" cannot be its own source` })
  }
  const model = resolveModel(embedding.model, `${path}.model`, issues)
  const vectorType: VectorType = embedding.type ?? 'vector'
  if (model && (embedding.indexes?.length ?? 0) > 0 && model.dimensions > INDEXABLE_DIMENSIONS[vectorType]) {
    const hint = vectorType === 'vector' && model.dimensions <= INDEXABLE_DIMENSIONS.halfvec
      ? `; use type: "halfvec" (indexable up to ${INDEXABLE_DIMENSIONS.halfvec}) or a smaller model`
      : '; use a model with fewer dimensions or remove the index'
    issues.push({
      path: `${path}.indexes`,
      message: `pgvector indexes ${vectorType} columns of at most ${INDEXABLE_DIMENSIONS[vectorType]} dimensions, and model "${model.id}" has ${model.dimensions}${hint}`,
    })
  }
  if (issues.length > before || !model) return undefined
  return {
    schema, table, column, sourceColumns, separator: embedding.separator ?? DEFAULT_SEPARATOR, model, vectorType, mode: embedding.mode,
    keyColumns: [...keyColumns], distance: embedding.indexes?.[0]?.distance ?? 'cosine',
    triggerFunction: triggerFunctionName(embedding.mode, schema, table, column),
    typeGuard: true,
  }
}

/** Chunk table columns a source, template or key column must not be named like (the view shows them side by side). */
const CHUNK_TABLE_COLUMNS = ['chunk_seq', 'chunk', 'content_hash', 'embedding', 'model', 'chunk_tsv']

function resolveChunked(
  schema: string, table: string, column: string, keyColumns: readonly string[], embedding: EmbeddingConfig, path: string, issues: ConfigIssue[],
  indexNames: Map<string, string>,
): ChunkedColumnNode | undefined {
  const before = issues.length
  const c = embedding.chunking!
  if (embedding.mode !== 'queue' && embedding.mode !== 'app') {
    issues.push({ path: `${path}.mode`, message: `a chunked column is kept in sync in mode "queue" (the worker splits and embeds) or "app" (the embedding writer does), not "${embedding.mode}": the splitter runs in Node, not in the database` })
  }
  if (embedding.renamedFrom !== undefined) issues.push({ path: `${path}.renamedFrom`, message: 'a chunked column cannot be renamed yet; add the new one beside it, let it fill, then remove the old one' })
  if (embedding.monitor !== undefined) issues.push({ path: `${path}.monitor`, message: 'monitor is not available for chunked columns yet' })
  const splitter = c.splitter ?? 'recursive'
  const size = c.size ?? (splitter === 'tokens' ? null : 800)
  const overlap = c.overlap ?? 0
  if (size !== null && overlap >= size) issues.push({ path: `${path}.chunking.overlap`, message: `must be smaller than size (${size})` })
  if (c.separators !== undefined && splitter !== 'recursive') issues.push({ path: `${path}.chunking.separators`, message: `only the "recursive" splitter takes separators (this one is "${splitter}")` })
  const template = c.template ?? '{chunk}'
  const templateColumns: string[] = []
  // Placeholders as formatChunk reads them: `{{` and `}}` are literal braces.
  const placeholders = [...template.matchAll(/\{\{|\}\}|\{([^{}]*)\}/g)].filter((m) => m[0] !== '{{' && m[0] !== '}}').map((m) => m[1]!)
  if (!placeholders.includes('chunk')) issues.push({ path: `${path}.chunking.template`, message: 'must contain the placeholder {chunk} (written {{chunk}} it is literal text)' })
  for (const name of placeholders) {
    if (name === 'chunk' || templateColumns.includes(name)) continue
    if (name === '' || Buffer.byteLength(name, 'utf8') > 63 || name.includes('\0')) {
      issues.push({ path: `${path}.chunking.template`, message: `{${name}} is not a column name: write {column} for a column of the row, {chunk} for the chunk, {{ and }} for braces` })
      continue
    }
    templateColumns.push(name)
  }
  const sourceColumns = typeof embedding.source === 'string' ? [embedding.source] : [...embedding.source]
  if (new Set(sourceColumns).size !== sourceColumns.length) issues.push({ path: `${path}.source`, message: 'lists a column twice' })
  for (const name of [...keyColumns, ...sourceColumns, ...templateColumns]) {
    if (CHUNK_TABLE_COLUMNS.includes(name)) issues.push({ path: `${path}.chunking`, message: `column "${name}" of ${table} has the name of a chunk table column (${CHUNK_TABLE_COLUMNS.join(', ')}); the view shows both` })
  }
  const model = resolveModel(embedding.model, `${path}.model`, issues)
  const vectorType: VectorType = embedding.type ?? 'vector'
  if (model && (embedding.indexes?.length ?? 0) > 0 && model.dimensions > INDEXABLE_DIMENSIONS[vectorType]) {
    issues.push({ path: `${path}.indexes`, message: `pgvector indexes ${vectorType} columns of at most ${INDEXABLE_DIMENSIONS[vectorType]} dimensions, and model "${model.id}" has ${model.dimensions}` })
  }
  const chunkTable = c.table ?? deriveIdentifier([table, column])
  const indexes: VectorIndexNode[] = []
  for (const [i, indexConfig] of (embedding.indexes ?? []).entries()) {
    if (indexConfig.method === 'ivfflat') {
      issues.push({ path: `${path}.indexes[${i}].method`, message: 'a chunked column takes HNSW indexes: IVFFlat learns its lists from the rows present when it is built, and a chunk table starts empty' })
      continue
    }
    const index = resolveIndex({ schema, table: chunkTable, column: 'embedding' }, indexConfig.name ? indexConfig : { ...indexConfig, name: deriveIdentifier([chunkTable, indexConfig.method, DISTANCE_SUFFIX[indexConfig.distance], 'idx']) }, `${path}.indexes[${i}]`, issues)
    if (!index) continue
    const qualified = objectKey(schema, index.name)
    const previous = indexNames.get(qualified)
    if (previous !== undefined) {
      issues.push({ path: `${path}.indexes[${i}]`, message: `index name "${index.name}" is already used by ${previous}; give one of them a distinct "name"` })
      continue
    }
    indexNames.set(qualified, `${path}.indexes[${i}]`)
    indexes.push(index)
  }
  if (issues.length > before || !model) return undefined
  const mode = embedding.mode as 'queue' | 'app'
  return {
    schema, table, column, sourceColumns, separator: embedding.separator ?? DEFAULT_SEPARATOR, model, vectorType, mode,
    keyColumns: [...keyColumns], distance: embedding.indexes?.[0]?.distance ?? 'cosine',
    chunking: { splitter, size, overlap, separators: c.separators ? [...c.separators] : null, template, sectionEvery: c.sectionEvery ?? 4 },
    templateColumns, chunkTable, view: deriveIdentifier([chunkTable, 'view']), fullText: c.fullText ?? null,
    indexes: indexes.sort((a, b) => a.name.localeCompare(b.name)),
    triggerFunction: mode === 'queue' ? ownedIdentifier('enqueue_chunks', [schema, table, column]) : null,
  }
}

function resolveBuild(build: IndexConfig['build']): IndexBuildSettings | null {
  if (build === undefined) return null
  if (build === 'auto') return { memory: 'auto', memoryLimit: DEFAULT_BUILD_MEMORY_LIMIT, parallelWorkers: 'auto' }
  return { memory: build.memory ?? null, memoryLimit: build.memoryLimit ?? DEFAULT_BUILD_MEMORY_LIMIT, parallelWorkers: build.parallelWorkers ?? null }
}

/** The most `build: 'auto'` sets `maintenance_work_mem` to unless the config says otherwise. */
export const DEFAULT_BUILD_MEMORY_LIMIT = '1GB'

function resolveIndex(column: { schema: string; table: string; column: string }, index: IndexConfig, path: string, issues: ConfigIssue[]): VectorIndexNode | undefined {
  const params: Record<string, number> = {}
  const auto: string[] = []
  let search: VectorIndexNode['search']
  if (index.method === 'ivfflat') {
    if (index.distance === 'l1') {
      issues.push({ path: `${path}.distance`, message: 'IVFFlat indexes do not support distance "l1" (pgvector allows "l2", "inner_product", "cosine"); use method "hnsw" for l1' })
      return undefined
    }
    if (index.lists === 'auto') auto.push('lists')
    params.lists = index.lists === 'auto' || index.lists === undefined ? 100 : index.lists
    if (index.probes !== undefined && index.lists !== 'auto' && index.probes > params.lists) {
      issues.push({ path: `${path}.probes`, message: `must be at most lists (${params.lists}): a scan cannot visit more lists than the index has` })
      return undefined
    }
    search = { efSearch: null, probes: index.probes ?? null }
  } else {
    if (index.m === 'auto') auto.push('m')
    if (index.efConstruction === 'auto') auto.push('ef_construction')
    const m = typeof index.m === 'number' ? index.m : 16
    const efConstruction = typeof index.efConstruction === 'number' ? index.efConstruction : 64
    if (efConstruction < 2 * m) {
      issues.push({ path: `${path}.efConstruction`, message: `must be at least 2 × m (${2 * m}) for m = ${m}` })
      return undefined
    }
    params.m = m
    params.ef_construction = efConstruction
    search = { efSearch: index.efSearch ?? null, probes: null }
  }
  const name = index.name ?? deriveIdentifier([column.table, column.column, index.method, DISTANCE_SUFFIX[index.distance], 'idx'])
  return {
    name, schema: column.schema, table: column.table, column: column.column, method: index.method, distance: index.distance, params,
    auto, build: resolveBuild(index.build), search,
  }
}
