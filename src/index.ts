/**
 * pgml-kit's public API: what an application or a script may rely on. Everything else under src/
 * is internal (the CLI uses it; the package exports only this entry point).
 */

// Declaring embeddings, indexes and roles.
export { defineConfig } from './config/define-config.js'
export type {
  PgmlKitConfig, EmbeddingConfig, EmbeddingMode, IndexConfig, HnswIndexConfig, IvfflatIndexConfig, ModelConfig, Distance,
  MigrationsConfig, TableConfig, RolesConfig, EmbedderConfig, FullTextConfig,
} from './config/schema.js'
export { loadConfig, type LoadedConfig } from './config/load.js'
export { MODEL_PRESETS, type ModelPreset } from './model/presets.js'

// Migrations.
export { init } from './init.js'
export { generate, checkGenerated, planFromConfig, type GenerateResult, type CheckResult, type PlanResult } from './migrations/generate.js'
export type { Operation, OperationKind, SafetyClass } from './plan/operation.js'
export { migrate, type MigrateOptions, type MigrateResult } from './migrations/run.js'
export { readStatus, type Status, type CatalogEntry, type MissingPrivilege } from './status.js'
export { readIndexHealth, repairIndexes, repairSteps, type IndexHealth, type RepairResult, type RepairStep } from './indexes/health.js'
export { checkIndex, defaultQueryCount, readLastChecks, recallBound, recommendSetting, type IndexCheckOptions, type IndexCheckResult, type IndexCheckRow, type LastCheck } from './indexes/check.js'
export { adviseBuild, adviseHnsw, adviseIvfflat, type BuildAdvice, type HnswAdvice, type IvfflatAdvice } from './indexes/advice.js'
export { readSizing, sizeAutoParameters, type Sizing, type TableSizing } from './indexes/sizing.js'
export { openTarget, type Target, type TargetOptions, type Connector } from './db/target.js'
export { keepEmbeddedServed, type KeepServedOptions, type ServedState, type ServedChange } from './db/keep-served.js'
export type { Capabilities, PgmlKind } from './db/capabilities.js'

// Embedding: the local model, the queue worker, backfill, app-mode writes, parity.
export type { Embedder } from './embed/embedder.js'
export { toVectorLiteral } from './embed/embedder.js'
export { LocalEmbedder, type LocalEmbedderOptions } from './embed/local-embedder.js'
export { runWorker, type WorkerOptions, type WorkerTotals, type QueueOutlook } from './worker/run-worker.js'
export type { BatchResult } from './worker/process-batch.js'
export { backfill, type BackfillOptions, type BackfillResult, type BackfillProgress } from './worker/backfill.js'
export { readColumnWithCopies } from './db/live-catalog.js'
export { columnsToBackfill } from './worker/backfill-columns.js'
export type { RolloutStage, RolloutStageKind } from './plan/rollout.js'
export { readQueueStats, retryDeadLetters, type QueueStats } from './worker/queue.js'
export { createEmbeddingWriter, type EmbeddingWriter, type EmbeddingWriterOptions, type InsertRow, type ConfiguredTable, type SourceColumnOf } from './app/embedding-writer.js'
export { checkParity, type ParityOptions, type ParityReport, type ParityRow } from './parity/check-parity.js'
export { installPgmlCompat, type InstallResult } from './extension/install.js'

// Search and predictions from application code.
export { createKit, type Kit, type KitOptions, type SearchOptions, type HybridSearchOptions, type EmbeddingColumnRef, type HybridColumnRef, type SearchSelection, type OnlinePrediction, type PredictOnlineOptions, type PredictOptions, type PreparedSearch, type ChunkedColumnRef, type ChunkSearchOptions, type HybridChunkSearchOptions, type ChunkHit, type DocumentHit } from './query/create-kit.js'
// Chunked documents: backfill of rows written around the writer (the worker and the writer sync the rest).
export { backfillChunks, type ChunkBackfillResult } from './chunking/backfill.js'
export type { IndexSettings, FilterStrategy } from './query/query-vector.js'
export { registerVectorTypes } from './query/vector-types.js'

// Training, deployment and the model registry (what `pgml-kit train`, `deploy`, `materialize` and `models` run).
export {
  train, deploy, listModels, materialize, trainSql,
  type TrainOptions, type TrainResult, type DeployChoice, type DeployOptions, type DeployResult, type ModelRow, type MaterializeResult, type GateRecord, type LineageRow,
} from './features/ml.js'
export {
  CHAMPION, listVersions, modelHistory, setAlias, removeAlias, archiveVersion, describeVersion, syncVersions, registryInstalled, parseModelReference,
  type ModelVersion, type RegistryEvent, type RegistryEventKind, type ModelReference,
} from './features/registry.js'
export { monitorModels, monitorHistory, psi, ks, type MonitorReport, type MonitorRun, type DriftMetric, type DriftBaseline } from './features/monitor.js'
export { setRoute, removeRoute, readRoute, compareModels, maintainPredictionLog, servingInstalled, type ModelRoute, type RouteMode, type ModelComparison, type ArmReport } from './features/serving.js'
export { monitorEmbeddings, summarise as summariseEmbeddings, compareWithBaseline as compareEmbeddingsWithBaseline, type EmbeddingDriftReport, type EmbeddingSummary } from './features/embedding-drift.js'
export { renderDriftChart } from './features/monitor-chart.js'

// Errors: every one pgml-kit raises for a user mistake or an unusable target has a stable `code`.
export { PgmlKitError, ConfigError, PlanError, TargetError, MigrationError, type ConfigIssue } from './errors.js'
