import type { ChunkedColumnNode, EmbeddingColumnNode, FeatureViewNode, PredictionLogNode, FullTextNode, TrainingSetNode, VectorIndexNode } from '../model/ir.js'
import { renderCreateFeatureSchema, renderCreateFeatureView, renderCreateTrainingSet, renderDropFeatureSchema, renderDropFeatureView, renderDropTrainingSet, renderDowngradeFeatureView, renderUpgradeFeatureView } from '../sql/render-features.js'
import { renderAddFullTextColumn, renderCreateGinIndexConcurrently, renderDropFullTextColumn } from '../sql/render-full-text.js'
import { columnLabel } from '../model/ir.js'
import { runtimeInstallSql, runtimeUninstallSql } from '../runtime/assets.js'
import { renderRemovePredictionLog, renderSetPredictionLog } from '../sql/render-serving.js'
import { renderCreateVectorExtension, renderDropVectorExtension, renderEnsurePgml, renderKeepPgml } from '../sql/render-extension.js'
import { renderAddEmbeddingColumn, renderDropEmbeddingColumn } from '../sql/render-embedding-column.js'
import { renderCreateEmbedFunction, renderCreateEmbedTrigger, renderDropEmbedFunction, renderDropEmbedTrigger } from '../sql/render-trigger.js'
import { renderRecordQueryModel, renderRegisterEmbeddingColumn, renderUnregisterEmbeddingColumn, renderUpdateEmbeddingMode, renderUpdateEmbeddingSource, renderUpdateQuerySettings } from '../sql/render-catalog.js'
import { rebuildIndexName, renderBuildSettings, renderCreateIndexConcurrently, renderDropIndexConcurrently, renderDropInvalidLeftover, renderRenameIndex, renderVerifyIndex, type BuildColumn } from '../sql/render-index.js'
import { renderCreateEnqueueFunction, renderCreateEnqueueTriggers, renderDeleteJobs, renderDropEnqueueFunction, renderDropEnqueueTriggers, renderRefusePendingJobs } from '../sql/render-queue.js'
import { PGML, defineOperation, type Operation } from './operation.js'
import type { GrantAtom } from './grants.js'
import { renderGrants, renderRevokes } from '../sql/render-grants.js'
import { renderPreflight, type PreflightChecks } from '../sql/render-preflight.js'
import { renderRenameEmbeddingColumn, renderRenameTable, reverseTableMove, type TableMove } from '../sql/render-rename.js'
import { renderRefuseUnfilled, renderSwitch, renderSwitchFilledCheck, type SwitchSide } from '../sql/render-rollout.js'
import { quoteIdent } from '../sql/quote.js'
import {
  chunkStoreOf, renderCreateChunkEnqueueFunction, renderCreateChunkEnqueueTriggers, renderCreateChunkTable, renderCreateChunkView, renderDeleteChunkJobs,
  renderDropChunkEnqueueFunction, renderDropChunkEnqueueTriggers, renderDropChunkTable, renderDropChunkView, renderEnqueueEveryRow,
  renderChunkSwitch, renderCommentChunkTable, renderLockSourceForChunks, renderPrepareLiveChunks, renderRefuseChunksUnfilled, type ChunkSwitchSide,
} from '../sql/render-chunks.js'
import { embeddingPath, featureViewPath, fullTextPath, indexesPath, trainingSetPath } from '../model/config-path.js'

/** Operation factories: one per kind, each building its up and its down from the same nodes. */

export function preflight(checks: PreflightChecks): Operation {
  const what = [
    ...checks.roles.map((r) => `role ${r.role} exists`),
    ...[...checks.added, ...checks.resourced].map((c) => `${c.schema}.${c.table}: source columns are text${checks.added.includes(c) ? ', key is its primary key' : ''}`),
    ...[...checks.fullText, ...checks.fullTextChanged].map((n) => `${n.schema}.${n.table}: full-text source columns are text`),
  ]
  return defineOperation({
    kind: 'preflight', summary: `check the database before changing anything: ${what.join('; ')}`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: [renderPreflight(checks)],
    down: ['-- (the checks before the up migration have nothing to undo)'],
    notes: [],
  })
}

function describeGrants(atoms: readonly GrantAtom[]): string {
  const byRole = new Map<string, Set<string>>()
  for (const atom of atoms) byRole.set(`${atom.role} (${atom.purpose})`, (byRole.get(`${atom.role} (${atom.purpose})`) ?? new Set()).add(atom.on.kind === 'schema' ? `schema ${atom.on.schema}` : `${atom.on.schema}.${atom.on.table}`))
  return [...byRole].map(([role, objects]) => `${role} on ${[...objects].join(', ')}`).join('; ')
}

export function grantPrivileges(atoms: readonly GrantAtom[]): Operation {
  return defineOperation({
    kind: 'grant-privileges', origin: 'roles', summary: `grant ${describeGrants(atoms)}`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: renderGrants(atoms), down: renderRevokes(atoms),
    notes: ['down revokes exactly these privileges (a privilege you also granted by hand is revoked with them)'],
  })
}

export function revokePrivileges(atoms: readonly GrantAtom[]): Operation {
  const grant = grantPrivileges(atoms)
  return defineOperation({
    kind: 'revoke-privileges', origin: 'roles', summary: `revoke ${describeGrants(atoms)}`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: grant.down, down: grant.up, notes: [],
  })
}

export function createVectorExtension(): Operation {
  return defineOperation({
    kind: 'create-vector-extension', summary: 'create extension vector (pgvector) if missing',
    transactional: true, safety: 'privileged', requiresPgml: PGML.none,
    up: [renderCreateVectorExtension()],
    down: [renderDropVectorExtension()],
    notes: [
      'pgvector is not a trusted extension: creating it needs a superuser (or your provider\'s equivalent role). Where it is installed already, this step does nothing and needs nothing',
      'down drops pgvector only if this step created it and nothing uses it any more',
    ],
  })
}

/** The last embedding column is gone: pgvector goes too, if pgml-kit created it and nothing uses it. */
export function releaseVectorExtension(): Operation {
  const create = createVectorExtension()
  return defineOperation({
    kind: 'release-vector-extension', summary: 'drop extension vector if pgml-kit created it and nothing uses it any more',
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: create.down, down: create.up, notes: [],
  })
}

export function ensurePgml(): Operation {
  return defineOperation({
    kind: 'ensure-pgml', summary: 'make sure pgml.embed exists (extension pgml, else pgml_compat)',
    transactional: true, safety: 'privileged', requiresPgml: { up: true, down: false },
    up: [renderEnsurePgml()],
    down: [renderKeepPgml()],
    notes: [
      'where pgml.embed is missing this runs CREATE EXTENSION pgml CASCADE (or pgml_compat CASCADE, which installs the untrusted language plpython3u): superuser only. Where pgml.embed exists it does nothing and needs nothing',
      'down leaves pgml installed: it owns trained models',
    ],
  })
}

/** The last embedding column is gone: the runtime schema goes too, if no other project uses it. */
export function releaseRuntime(version: number): Operation {
  const install = installRuntime(0, version)
  return defineOperation({
    kind: 'release-runtime', summary: 'remove the pgml_kit runtime schema if no pgml-kit project in the database uses it any more',
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: install.down, down: install.up, notes: [],
  })
}

/**
 * Brings the shared runtime schema from version `from` (0: none) to `to`; each version's script is
 * idempotent. `columns` are the ones already registered: an upgrade past version 5 records their
 * pooling and distance, which the query builders and workers read from the catalog.
 */
export function installRuntime(from: number, to: number, columns: readonly EmbeddingColumnNode[] = []): Operation {
  const versions = Array.from({ length: to - from }, (_, i) => from + 1 + i)
  const record = from > 0 && from < 5 && to >= 5 ? columns.map(renderRecordQueryModel) : []
  return defineOperation({
    kind: 'install-runtime',
    summary: from === 0 ? `install the pgml_kit runtime schema (version ${to}), or keep a newer one` : `upgrade the pgml_kit runtime schema to version ${to}`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: [...versions.map(runtimeInstallSql), ...record],
    down: from === 0
      ? [runtimeUninstallSql()]
      : ['-- The runtime schema keeps its newer version: it is shared with every pgml-kit project in this database.'],
    notes: from === 0 ? ['shared by every pgml-kit project in the database; down removes it only when nothing uses it any more'] : [],
  })
}

function describeColumn(column: EmbeddingColumnNode): string {
  return `${columnLabel(column)} ${column.vectorType}(${column.model.dimensions}) from ${column.sourceColumns.join(', ')} with ${column.model.id}, mode ${column.mode}`
}

export function addEmbeddingColumn(column: EmbeddingColumnNode): Operation {
  const generated = column.mode === 'generated'
  return defineOperation({
    kind: 'add-embedding-column', origin: embeddingPath(column), summary: `add embedding column ${describeColumn(column)}`,
    transactional: true,
    safety: generated ? 'rewrites-or-locks' : 'needs-backfill',
    requiresPgml: { up: generated, down: false },
    up: [renderAddEmbeddingColumn(column)],
    down: [renderDropEmbeddingColumn(column)],
    notes: generated
      ? [`rewrites ${column.schema}.${column.table} under an ACCESS EXCLUSIVE lock, calling pgml.embed once per existing row`]
      : column.mode === 'trigger'
        ? ['existing rows keep NULL until they are backfilled (UPDATE of a source column, e.g. SET <source> = <source>, fills it)']
        : column.mode === 'queue'
          ? [`existing rows keep NULL until they are embedded: \`pgml-kit backfill ${column.table}.${column.column}\` writes them directly (or a write to a row queues it)`]
          : ['existing rows keep NULL until the application writes their vectors'],
  })
}

export function dropEmbeddingColumn(column: EmbeddingColumnNode): Operation {
  const add = addEmbeddingColumn(column)
  return defineOperation({
    kind: 'drop-embedding-column', origin: embeddingPath(column), summary: `drop embedding column ${describeColumn(column)}`,
    transactional: true, safety: 'destructive', requiresPgml: { up: add.requiresPgml.down, down: add.requiresPgml.up },
    up: add.down, down: add.up,
    notes: [`the stored vectors are deleted; down re-adds the column ${column.mode === 'generated' ? 'and recomputes every vector' : 'empty (a backfill refills it)'}`],
  })
}

export function createEmbedTrigger(column: EmbeddingColumnNode): Operation {
  return defineOperation({
    kind: 'create-embed-trigger', origin: embeddingPath(column),
    summary: `embed ${columnLabel(column)} on INSERT and on UPDATE OF ${column.sourceColumns.join(', ')} (trigger calls pgml.embed)`,
    transactional: true, safety: 'slows-writes', requiresPgml: { up: true, down: false },
    up: [renderCreateEmbedFunction(column), renderCreateEmbedTrigger(column)],
    down: [renderDropEmbedTrigger(column), renderDropEmbedFunction(column)],
    notes: [`every INSERT, and every UPDATE that changes a source column, of ${column.schema}.${column.table} runs the model inside the writing transaction: each such write takes as long as one embedding (milliseconds on a CPU, per row) and holds its row locks meanwhile. Bulk loads slow down by orders of magnitude; "queue" mode moves the model out of the write`],
  })
}

export function dropEmbedTrigger(column: EmbeddingColumnNode): Operation {
  const create = createEmbedTrigger(column)
  return defineOperation({
    kind: 'drop-embed-trigger', origin: embeddingPath(column), summary: `stop embedding ${columnLabel(column)} on write (drop trigger)`,
    transactional: true, safety: 'safe', requiresPgml: { up: false, down: true },
    up: create.down, down: create.up, notes: [],
  })
}

export function replaceEmbedTrigger(previous: EmbeddingColumnNode, next: EmbeddingColumnNode): Operation {
  return defineOperation({
    kind: 'replace-embed-trigger', origin: embeddingPath(next),
    summary: `embed ${columnLabel(next)} from ${next.sourceColumns.join(', ')} (was ${previous.sourceColumns.join(', ')})`,
    transactional: true, safety: 'needs-backfill', requiresPgml: PGML.both,
    up: [renderDropEmbedTrigger(previous), renderCreateEmbedFunction(next), renderCreateEmbedTrigger(next)],
    down: [renderDropEmbedTrigger(next), renderCreateEmbedFunction(previous), renderCreateEmbedTrigger(previous)],
    notes: ['vectors already stored were computed from the old source; re-embed existing rows to bring them up to date'],
  })
}

export function registerEmbeddingColumn(column: EmbeddingColumnNode): Operation {
  return defineOperation({
    kind: 'register-embedding-column', origin: embeddingPath(column), summary: `record ${columnLabel(column)} in pgml_kit.embedding_columns`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: [renderRegisterEmbeddingColumn(column)],
    down: [renderUnregisterEmbeddingColumn(column)],
    notes: [],
  })
}

export function unregisterEmbeddingColumn(column: EmbeddingColumnNode): Operation {
  const register = registerEmbeddingColumn(column)
  return defineOperation({
    kind: 'unregister-embedding-column', origin: embeddingPath(column), summary: `remove ${columnLabel(column)} from pgml_kit.embedding_columns`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: register.down, down: register.up, notes: [],
  })
}

export function updateEmbeddingSource(previous: EmbeddingColumnNode, next: EmbeddingColumnNode): Operation {
  const app = next.mode === 'app'
  return defineOperation({
    kind: 'update-embedding-source', origin: embeddingPath(next), summary: `record the new source of ${columnLabel(next)} in pgml_kit.embedding_columns`,
    transactional: true, safety: app ? 'needs-backfill' : 'safe', requiresPgml: PGML.none,
    up: [renderUpdateEmbeddingSource(next)],
    down: [renderUpdateEmbeddingSource(previous)],
    notes: app
      ? [`mode "app": every stored vector of ${columnLabel(next)} was computed from ${previous.sourceColumns.join(', ')} and is stale until the application writes it again from ${next.sourceColumns.join(', ')} (\`pgml-kit parity\` shows how far they are apart)`]
      : [],
  })
}

/** Statements that clear an INVALID leftover of a failed build of `name`, with a comment for the reader. */
function clearLeftover(schema: string, name: string): string[] {
  const [first, ...rest] = renderDropInvalidLeftover(schema, name)
  return [`-- A build that failed earlier leaves an INVALID index of this name: it is moved aside and dropped.\n-- A valid one (a build that finished before a later step failed) is kept, and the build below skips it.\n${first}`, ...rest]
}

function describeIndex(index: VectorIndexNode): string {
  const params = Object.entries(index.params).map(([k, v]) => `${k}=${v}${index.auto.includes(k) ? ' (auto)' : ''}`).join(', ')
  return `${index.method} index ${index.schema}.${index.name} on ${index.table}.${index.column} (${index.distance}${params ? `; ${params}` : ''})`
}

/** What the planner knows of the data an index is built on (from `--database-url`), and the advice from it. */
export interface IndexContext {
  readonly column: BuildColumn
  /** Notes on sizing: the advice for the table's rows, or why there is none. */
  readonly notes?: readonly string[]
}

function buildStatements(index: VectorIndexNode, column: BuildColumn, name = index.name): { up: string[]; reset: string[] } {
  const { set, reset } = renderBuildSettings(index, column)
  return { up: [...set, renderCreateIndexConcurrently(index, column.vectorType, name)], reset }
}

export function createVectorIndex(index: VectorIndexNode, context: IndexContext): Operation {
  const build = buildStatements(index, context.column)
  return defineOperation({
    kind: 'create-vector-index', origin: indexesPath(index), summary: `build ${describeIndex(index)} concurrently`, index: `${index.schema}.${index.name}`,
    transactional: false, safety: 'safe', requiresPgml: PGML.none,
    up: [...clearLeftover(index.schema, index.name), ...build.up, ...build.reset, renderVerifyIndex(index, context.column.vectorType)],
    down: [renderDropIndexConcurrently(index.schema, index.name)],
    notes: [
      ...(index.method === 'ivfflat' ? ['IVFFlat learns its lists from the rows present at build time: build it after the data is loaded'] : []),
      ...(context.notes ?? []),
    ],
  })
}

export function dropVectorIndex(index: VectorIndexNode, context: IndexContext): Operation {
  const create = createVectorIndex(index, { column: context.column })
  return defineOperation({
    kind: 'drop-vector-index', origin: indexesPath(index), summary: `drop ${describeIndex(index)} concurrently`, index: `${index.schema}.${index.name}`,
    transactional: false, safety: 'safe', requiresPgml: PGML.none,
    up: create.down, down: create.up, notes: ['vector search on this column falls back to a sequential scan until another index exists'],
  })
}

/**
 * Builds the replacement under a temporary name first, so searches keep an index throughout. Safe
 * to run again after a failure at any step: a replacement that was built is kept (only an INVALID
 * one is rebuilt), and a swap that stopped between the drop and the rename is finished.
 */
export function rebuildVectorIndex(previous: VectorIndexNode, next: VectorIndexNode, context: IndexContext): Operation {
  const swap = (from: VectorIndexNode, to: VectorIndexNode): string[] => {
    const temporary = rebuildIndexName(to)
    const build = buildStatements(to, context.column, temporary)
    return [
      ...clearLeftover(to.schema, temporary),
      ...build.up,
      ...build.reset,
      renderDropIndexConcurrently(from.schema, from.name),
      renderRenameIndex(to.schema, temporary, to.name),
      renderVerifyIndex(to, context.column.vectorType),
    ]
  }
  return defineOperation({
    kind: 'rebuild-vector-index', origin: indexesPath(next), summary: `rebuild ${describeIndex(next)} (was ${describeIndex(previous)})`, index: `${next.schema}.${next.name}`,
    transactional: false, safety: 'safe', requiresPgml: PGML.none,
    up: swap(previous, next), down: swap(next, previous),
    notes: ['the new index is built beside the old one and swapped in; both exist briefly (disk space)', ...(context.notes ?? [])],
  })
}

export function createQueueTriggers(column: EmbeddingColumnNode): Operation {
  return defineOperation({
    kind: 'create-queue-triggers', origin: embeddingPath(column),
    summary: `queue ${columnLabel(column)} for a worker on INSERT, on UPDATE OF ${column.sourceColumns.join(', ')}, and dequeue on DELETE`,
    transactional: true, safety: 'slows-writes', requiresPgml: PGML.none,
    up: [renderCreateEnqueueFunction(column), ...renderCreateEnqueueTriggers(column)],
    down: [...renderDropEnqueueTriggers(column), renderDropEnqueueFunction(column), renderDeleteJobs(column)],
    notes: [
      `every INSERT, DELETE, and UPDATE that changes a source column, of ${column.schema}.${column.table} also writes one row of pgml_kit.embedding_jobs (an upsert) in the same transaction`,
      `existing rows are not queued: run \`pgml-kit backfill ${column.table}.${column.column}\` (or let writes queue them)`,
    ],
  })
}

/**
 * Stops queueing the column. Refused at migrate time while its jobs are queued, unless they are
 * worthless (`discardJobs`: the extra copy of a staged model change — an abandoned shadow, or the
 * previous model's column after the switch).
 */
export function dropQueueTriggers(column: EmbeddingColumnNode, options: { discardJobs?: boolean } = {}): Operation {
  const create = createQueueTriggers(column)
  return defineOperation({
    kind: 'drop-queue-triggers', origin: embeddingPath(column),
    summary: `stop queueing ${columnLabel(column)} (drop triggers; ${options.discardJobs ? 'its queued jobs are deleted' : 'refused while jobs are queued'})`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: [...(options.discardJobs ? [] : [renderRefusePendingJobs(column)]), ...create.down], down: create.up,
    notes: [options.discardJobs
      ? 'the column is the extra copy of a staged model change: its queued jobs only kept the vectors that are dropped in sync, and are deleted with it'
      : 'migrate refuses (and changes nothing) while jobs of this column are still queued'],
  })
}

/**
 * A trigger or queue function generated before the type guard, replaced in place with one that has
 * it (same name, same triggers, same privileges): it refuses values of types another role owns
 * before touching them. Down puts the previous body back.
 */
export function guardTriggerFunction(previous: EmbeddingColumnNode, next: EmbeddingColumnNode): Operation {
  const create = next.mode === 'trigger' ? renderCreateEmbedFunction : renderCreateEnqueueFunction
  return defineOperation({
    kind: 'guard-trigger-function', origin: embeddingPath(next),
    summary: `replace the ${next.mode} function of ${columnLabel(next)}: it refuses source and key values of types owned by a role that is neither a superuser nor its owner (that role's casts and checks never run with the migrating role's rights)`,
    transactional: true, safety: 'safe', requiresPgml: next.mode === 'trigger' ? PGML.both : PGML.none,
    up: [create(next)], down: [create(previous)],
    notes: ['security fix: the table\'s owner, if another role, could otherwise run its own cast or domain check as the role that migrates'],
  })
}

export function replaceQueueTriggers(previous: EmbeddingColumnNode, next: EmbeddingColumnNode): Operation {
  return defineOperation({
    kind: 'replace-queue-triggers', origin: embeddingPath(next),
    summary: `queue ${columnLabel(next)} on changes to ${next.sourceColumns.join(', ')} (was ${previous.sourceColumns.join(', ')})`,
    transactional: true, safety: 'needs-backfill', requiresPgml: PGML.none,
    up: [...renderDropEnqueueTriggers(previous), renderCreateEnqueueFunction(next), ...renderCreateEnqueueTriggers(next)],
    down: [...renderDropEnqueueTriggers(next), renderCreateEnqueueFunction(previous), ...renderCreateEnqueueTriggers(previous)],
    notes: [`vectors already stored were computed from the old source: \`pgml-kit backfill ${next.table}.${next.column} --all\` re-embeds them`],
  })
}

function describeFullText(node: FullTextNode): string {
  return `${node.schema}.${node.table}.${node.column} tsvector (${node.language}) from ${node.sources.map((s) => (s.weight ? `${s.column}:${s.weight}` : s.column)).join(', ')}`
}

export function addFullTextColumn(node: FullTextNode): Operation {
  return defineOperation({
    kind: 'add-full-text-column', origin: fullTextPath(node), summary: `add full-text column ${describeFullText(node)}`,
    transactional: true, safety: 'rewrites-or-locks', requiresPgml: PGML.none,
    up: [renderAddFullTextColumn(node)],
    down: [renderDropFullTextColumn(node)],
    notes: [`a generated column: rewrites ${node.schema}.${node.table} under an ACCESS EXCLUSIVE lock`],
  })
}

export function dropFullTextColumn(node: FullTextNode): Operation {
  const add = addFullTextColumn(node)
  return defineOperation({
    kind: 'drop-full-text-column', origin: fullTextPath(node), summary: `drop full-text column ${describeFullText(node)}`,
    transactional: true, safety: 'destructive', requiresPgml: PGML.none,
    up: add.down, down: add.up, notes: ['down re-adds it (the table is rewritten again)'],
  })
}

export function createGinIndex(node: FullTextNode): Operation {
  return defineOperation({
    kind: 'create-gin-index', origin: fullTextPath(node), summary: `build GIN index ${node.schema}.${node.indexName} on ${node.table}.${node.column} concurrently`,
    transactional: false, safety: 'safe', requiresPgml: PGML.none,
    up: [...clearLeftover(node.schema, node.indexName), renderCreateGinIndexConcurrently(node)],
    down: [renderDropIndexConcurrently(node.schema, node.indexName)],
    notes: [],
  })
}

export function dropGinIndex(node: FullTextNode): Operation {
  const create = createGinIndex(node)
  return defineOperation({
    kind: 'drop-gin-index', origin: fullTextPath(node), summary: `drop GIN index ${node.schema}.${node.indexName} concurrently`,
    transactional: false, safety: 'safe', requiresPgml: PGML.none, up: create.down, down: create.up, notes: [],
  })
}

export function createFeatureSchema(schema: string): Operation {
  return defineOperation({
    kind: 'create-feature-schema', origin: 'features', summary: `create schema ${schema} for feature views and training sets, with its model lineage table`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: renderCreateFeatureSchema(schema), down: renderDropFeatureSchema(schema),
    notes: ['down drops the lineage records of trained models, and the schema only if nothing else is in it'],
  })
}

export function dropFeatureSchema(schema: string): Operation {
  const create = createFeatureSchema(schema)
  return defineOperation({
    kind: 'drop-feature-schema', origin: 'features', summary: `drop the model lineage table of ${schema}, and the schema if nothing else is in it`,
    transactional: true, safety: 'destructive', requiresPgml: PGML.none, up: create.down, down: create.up,
    notes: ['the lineage records of trained models are deleted'],
  })
}

export function createFeatureView(view: FeatureViewNode): Operation {
  return defineOperation({
    kind: 'create-feature-view', origin: featureViewPath(view),
    summary: `create feature view ${view.schema}.${view.name} (${view.features.map((f) => f.name).join(', ')} by ${view.entities.join(', ')}): offline and online tables, ${view.materializeFunction}()`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: renderCreateFeatureView(view), down: renderDropFeatureView(view),
    notes: [
      `empty until materialised: \`pgml-kit materialize ${view.name}\` (or SELECT * FROM ${view.schema}.${view.materializeFunction}()) on a schedule`,
      ...(view.changeCapture === 'trigger' ? [`statement triggers on ${view.source.kind === 'table' ? `${view.source.schema}.${view.source.table}` : ''} log the entity keys of every change for it (one extra insert per statement)`] : ['its source is a query: every materialisation compares the whole source']),
    ],
  })
}

/** A feature view generated before change capture, brought to it in place (same tables, new function, change log and triggers). */
export function upgradeFeatureView(previous: FeatureViewNode, view: FeatureViewNode): Operation {
  return defineOperation({
    kind: 'upgrade-feature-view', origin: featureViewPath(view),
    summary: `upgrade feature view ${view.schema}.${view.name} to change capture: ${view.changeCapture === 'trigger' ? 'triggers log every insert, update and delete of its source' : 'every materialisation compares its whole source (a query)'}; offline rows may repeat a key`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: renderUpgradeFeatureView(previous, view), down: renderDowngradeFeatureView(previous, view),
    notes: [`the old materialize copied only rows past a timestamp mark and missed late, updated and deleted rows: the next \`pgml-kit materialize ${view.name}\` compares the whole source and reports what differed`],
  })
}

export function dropFeatureView(view: FeatureViewNode): Operation {
  const create = createFeatureView(view)
  return defineOperation({
    kind: 'drop-feature-view', origin: featureViewPath(view), summary: `drop feature view ${view.schema}.${view.name} and its offline and online tables`,
    transactional: true, safety: 'destructive', requiresPgml: PGML.none, up: create.down, down: create.up,
    notes: ['the materialised history is deleted; down re-creates the tables empty (materialise again to refill them)'],
  })
}

/**
 * `trainers` (roles.trainer) read the set's view to train on it: a view made again (the set changed,
 * or a down puts the old one back) is granted to them again in the step that makes it, since
 * dropping a view drops its privileges.
 */
export function createTrainingSet(set: TrainingSetNode, views: readonly FeatureViewNode[], trainers: readonly string[] = []): Operation {
  const grants = renderGrants(trainers.map((role) => ({ role, on: { kind: 'table', schema: set.schema, table: set.name }, privilege: 'SELECT', column: null, purpose: 'trainer' }) as const))
  return defineOperation({
    kind: 'create-training-set', origin: trainingSetPath(set),
    summary: `create training set ${set.schema}.${set.name}: ${set.label} with ${set.features.map((f) => `${f.view}.${f.feature}`).join(', ')} as of each label's ${set.timestamp}`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: [...renderCreateTrainingSet(set, views), ...grants], down: renderDropTrainingSet(set), notes: [],
  })
}

export function dropTrainingSet(set: TrainingSetNode, views: readonly FeatureViewNode[], trainers: readonly string[] = []): Operation {
  const create = createTrainingSet(set, views, trainers)
  return defineOperation({
    kind: 'drop-training-set', origin: trainingSetPath(set), summary: `drop training set ${set.schema}.${set.name}`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none, up: create.down, down: create.up, notes: [],
  })
}

/**
 * Only the query side changed (the query prefix, or the distance searches use): stored vectors stay
 * valid; the catalog — which the query builders follow — changes in the migration.
 */
export function updateQuerySettings(previous: EmbeddingColumnNode, next: EmbeddingColumnNode): Operation {
  const changes = [
    ...(previous.model.queryPrefix !== next.model.queryPrefix ? [`the query prefix ${JSON.stringify(next.model.queryPrefix)} (was ${JSON.stringify(previous.model.queryPrefix)})`] : []),
    ...(previous.distance !== next.distance ? [`the search distance ${next.distance} (was ${previous.distance})`] : []),
  ]
  return defineOperation({
    kind: 'update-query-settings', origin: embeddingPath(next),
    summary: `record ${changes.join(' and ')} of ${columnLabel(next)} in pgml_kit.embedding_columns`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: [renderUpdateQuerySettings(next)], down: [renderUpdateQuerySettings(previous)],
    notes: ['stored vectors are unchanged (they are documents); the query builders read the catalog, so searches use the new setting from the moment this commits'],
  })
}

/**
 * A mode change that keeps the model: the vectors stay valid, only what keeps them in sync
 * changes (the steps before and after it drop and create the triggers); the catalog says so.
 */
export function updateEmbeddingMode(previous: EmbeddingColumnNode, next: EmbeddingColumnNode): Operation {
  const notes = next.mode === 'app'
    ? [`from now on the application writes ${columnLabel(next)} (createEmbeddingWriter); rows it does not write keep their vectors`]
    : previous.mode === 'app' && next.mode === 'queue'
      ? [`rows written before keep their vectors; \`pgml-kit backfill ${cliColumn(next)}\` fills any the application left empty`]
      : []
  return defineOperation({
    kind: 'update-embedding-mode', origin: embeddingPath(next), summary: `record mode ${next.mode} (was ${previous.mode}) of ${columnLabel(next)} in pgml_kit.embedding_columns; the stored vectors stay (same model)`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: [renderUpdateEmbeddingMode(next)], down: [renderUpdateEmbeddingMode(previous)], notes,
  })
}

/** `t.c` (or `s.t.c` outside public), as the CLI takes a column. */
export function cliColumn(column: EmbeddingColumnNode): string {
  return column.schema === 'public' ? `${column.table}.${column.column}` : columnLabel(column)
}

/** A staged model change's switch: the filled copy becomes the column searches use; the live one keeps the other model under another name. */
export function switchEmbeddingColumn(live: SwitchSide, other: SwitchSide): Operation {
  const command = `pgml-kit backfill ${cliColumn(other.to)}`
  const reverse = (side: SwitchSide): SwitchSide => ({ from: side.to, to: side.from, indexes: side.indexes.map(([a, b]) => [b, a] as const) })
  const model = (c: EmbeddingColumnNode) => `${c.model.id} ${c.vectorType}(${c.model.dimensions})`
  return defineOperation({
    kind: 'switch-embedding-column', origin: `${embeddingPath(live.from)}.model`, table: `${live.from.schema}.${live.from.table}`,
    summary: `switch ${columnLabel(live.from)} to ${model(other.from)} (was ${model(live.from)}): ${quoteIdent(other.from.column)} becomes ${quoteIdent(other.to.column)} and the old vectors stay in ${quoteIdent(live.to.column)}`,
    transactional: true, safety: 'safe',
    requiresPgml: { up: live.to.mode === 'trigger' || other.to.mode === 'trigger', down: live.from.mode === 'trigger' || other.from.mode === 'trigger' },
    // The check that the copy is filled is an operation of its own (checkSwitchFilled), which the plan
    // puts before every statement of the file that locks writers out; going back, it is part of the down.
    up: renderSwitch(live, other, command, { checkFilled: false }),
    down: renderSwitch(reverse(other), reverse(live), `pgml-kit backfill ${cliColumn(other.to)}`),
    notes: [
      `renames in one short transaction (ACCESS EXCLUSIVE on ${live.from.schema}.${live.from.table} for an instant, no rewrite): searches, writes and workers use ${other.from.model.id} from the moment it commits — the query builders, workers and backfill follow the catalog, so application code does not change`,
      `${quoteIdent(live.to.column)} keeps the old model's vectors in sync until a later migration drops it; down switches back`,
    ],
  })
}

/** Before a switch: the copy that becomes the column searches use must hold a vector for every row with text. */
export function checkSwitchFilled(live: SwitchSide, other: SwitchSide): Operation {
  return defineOperation({
    kind: 'check-embedding-filled', origin: `${embeddingPath(live.from)}.model`, table: `${live.from.schema}.${live.from.table}`,
    summary: `check that ${columnLabel(other.from)} has a vector for every row with text before it becomes ${quoteIdent(live.from.column)}`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: [renderSwitchFilledCheck(live, other, `pgml-kit backfill ${cliColumn(other.to)}`)],
    down: ['-- (the check before the switch has nothing to undo)'],
    notes: [`one scan of ${live.from.schema}.${live.from.table}, before any statement of this migration that locks writers out: migrate refuses, changing nothing, while rows with text have no vector and no queued job, or jobs are dead-lettered`],
  })
}

/** Before the previous model's column goes: the live column must hold a vector for every row with text. */
export function checkEmbeddingFilled(live: EmbeddingColumnNode, dropped: EmbeddingColumnNode): Operation {
  return defineOperation({
    kind: 'check-embedding-filled', origin: embeddingPath(live), table: `${live.schema}.${live.table}`, summary: `check that ${columnLabel(live)} has a vector for every row with text before ${quoteIdent(dropped.column)} is dropped`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: [renderRefuseUnfilled(live, `dropping ${dropped.column} would leave those rows with no vector of either model`, `pgml-kit backfill ${cliColumn(live)}`)],
    down: ['-- (the check before the drop has nothing to undo)'],
    notes: [`one scan of ${live.schema}.${live.table}, before any statement of this migration that locks writers out; migrate refuses, changing nothing, while rows with text have no vector and no queued job`],
  })
}

/** `tables.<to>.renamedFrom`: the table and everything pgml-kit keeps about it take the new name; no vector is recomputed. */
export function renameTable(move: TableMove): Operation {
  const modes = move.columns.map(([, to]) => to.mode)
  const kept = [
    ...(move.columns.length > 0 ? [`${move.columns.length} embedding column(s) with their vectors`] : []),
    ...(move.indexes.length > 0 ? ['indexes named after it'] : []),
    ...(modes.some((m) => m === 'trigger' || m === 'queue') ? ['trigger functions'] : []),
    ...(move.columns.length > 0 ? ['catalog rows, queued jobs, dead letters and backfill checkpoints'] : []),
  ]
  return defineOperation({
    kind: 'rename-table', origin: move.path,
    summary: `rename table ${move.schema}.${move.from} to ${quoteIdent(move.to)}${kept.length > 0 ? ` (${kept.join(', ')} go with it)` : ''}`,
    transactional: true, safety: 'safe',
    requiresPgml: { up: modes.includes('trigger'), down: modes.includes('trigger') },
    up: renderRenameTable(move),
    down: renderRenameTable(reverseTableMove(move)),
    notes: [
      `takes ACCESS EXCLUSIVE on ${move.schema}.${move.from} for an instant (a catalog change, no rewrite); its indexes, triggers, full-text column and privileges stay with it`,
      `statements that name "${move.from}" fail from the moment it commits: deploy application code and workers that use the new name with it (the query builders and workers follow the config). A worker still on the old name writes nothing and gives its jobs back; they wait under the new name`,
    ],
  })
}

/** `renamedFrom`: the column and everything that names it take the new name; no vector is recomputed. */
export function renameEmbeddingColumn(from: EmbeddingColumnNode, to: EmbeddingColumnNode): Operation {
  return defineOperation({
    kind: 'rename-embedding-column', origin: `${embeddingPath(to)}.renamedFrom`,
    summary: `rename embedding column ${columnLabel(from)} to ${quoteIdent(to.column)} (its vectors, triggers, catalog row and queued jobs go with it)`,
    transactional: true, safety: 'safe', requiresPgml: { up: to.mode === 'trigger', down: from.mode === 'trigger' },
    up: renderRenameEmbeddingColumn(from, to),
    down: renderRenameEmbeddingColumn(to, from),
    notes: [
      `takes ACCESS EXCLUSIVE on ${from.schema}.${from.table} for an instant (a catalog change, no rewrite)`,
      `statements that name "${from.column}" fail from the moment it commits: deploy application code that reads or writes the column under its new name with it (the query builders follow the config)`,
    ],
  })
}

/** An index on a renamed column whose configured (or derived) name changed with it. */
export function renameVectorIndex(from: VectorIndexNode, to: VectorIndexNode): Operation {
  return defineOperation({
    kind: 'rename-vector-index', origin: indexesPath(to), summary: `rename index ${from.schema}.${from.name} to ${quoteIdent(to.name)}`, index: `${to.schema}.${to.name}`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: [renderRenameIndex(from.schema, from.name, to.name)],
    down: [renderRenameIndex(to.schema, to.name, from.name)],
    notes: [],
  })
}

/** A project's prediction log turned on (`old` null) or changed; down puts back what was there. */
export function setPredictionLog(old: PredictionLogNode | null, node: PredictionLogNode): Operation {
  return defineOperation({
    kind: 'set-prediction-log', origin: `models.${node.project}.serving.log`,
    summary: `${old ? 'change' : 'turn on'} the prediction log of ${node.project}: ${node.sample * 100}% of requests, kept ${node.retentionDays} days`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: renderSetPredictionLog(node),
    down: old ? renderSetPredictionLog(old) : renderRemovePredictionLog(node.project),
    notes: ['pgml_kit.predict logs a sample of requests into pgml_kit.prediction_log, partitioned by day; pgml-kit monitor (or SELECT pgml_kit.maintain_prediction_log()) adds the coming days\' partitions and drops what is past retention'],
  })
}

/** A project's prediction log turned off: nothing more is logged; what was logged ages out with the longest retention. */
export function removePredictionLog(node: PredictionLogNode): Operation {
  const set = setPredictionLog(null, node)
  return defineOperation({
    kind: 'remove-prediction-log', origin: `models.${node.project}.serving.log`,
    summary: `turn off the prediction log of ${node.project}`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: set.down, down: set.up,
    notes: ['rows already logged stay until the longest retention of the log passes'],
  })
}

function describeChunking(node: ChunkedColumnNode): string {
  const c = node.chunking
  const size = c.size === null ? 'the model\'s window' : `${c.size}${c.splitter === 'tokens' ? ' tokens' : ' characters'}`
  return `${c.splitter} splitter, size ${size}, overlap ${c.overlap}${c.template === '{chunk}' ? '' : `, template ${JSON.stringify(c.template)}`}`
}

/**
 * A chunked column: its chunk table (empty, keyed like the table, with the foreign key that
 * deletes and moves chunks with their row), the tsvector of each chunk when asked, the view of
 * chunks beside their rows, and in mode `queue` the triggers that queue every write and a job for
 * every row already there. Its vector indexes are built concurrently after it (createVectorIndex).
 */
export function createChunkedColumn(node: ChunkedColumnNode): Operation {
  const store = chunkStoreOf(node)
  const queue = node.mode === 'queue'
  return defineOperation({
    kind: 'create-chunked-column', origin: embeddingPath(node),
    summary: `create chunk table ${node.schema}.${node.chunkTable} for ${columnLabel(node)} (${node.model.id}, ${describeChunking(node)}; mode ${node.mode}) and view ${node.schema}.${node.view}`,
    transactional: true, safety: queue ? 'slows-writes' : 'needs-backfill', requiresPgml: PGML.none,
    up: [
      ...renderCreateChunkTable(store),
      renderCommentChunkTable(node),
      renderCreateChunkView(node),
      ...(queue ? [renderCreateChunkEnqueueFunction(node), ...renderCreateChunkEnqueueTriggers(node), renderEnqueueEveryRow(node)] : []),
    ],
    down: [
      // The source table first, as an application's DELETE and its cascade to the chunk table take them.
      renderLockSourceForChunks(node),
      ...(queue ? [...renderDropChunkEnqueueTriggers(node), renderDropChunkEnqueueFunction(node), ...renderDeleteChunkJobs(node)] : []),
      renderDropChunkView(node),
      renderDropChunkTable(store),
    ],
    notes: [
      queue
        ? `every INSERT, DELETE, and UPDATE of ${[...new Set([...node.keyColumns, ...node.sourceColumns, ...node.templateColumns])].join(', ')} of ${node.schema}.${node.table} also writes one row of pgml_kit.embedding_jobs; the rows already there are queued by this migration (one job each, written while writes to the table wait): \`pgml-kit worker\` chunks and embeds them`
        : `the application writes chunks through createEmbeddingWriter; rows already there are chunked by \`pgml-kit backfill ${node.table}.${node.column}\``,
      `view ${node.schema}.${node.view} reads with its owner's rights and is granted to no one: grant it where you grant ${node.schema}.${node.table}`,
    ],
  })
}

/** Removes a chunked column: its triggers, jobs, view and chunk table (the chunks' vectors are lost; down queues every row to embed them again). */
export function dropChunkedColumn(node: ChunkedColumnNode): Operation {
  const create = createChunkedColumn(node)
  return defineOperation({
    kind: 'drop-chunked-column', origin: embeddingPath(node),
    summary: `drop chunk table ${node.schema}.${node.chunkTable} of ${columnLabel(node)} and its view${node.mode === 'queue' ? ', triggers and queued jobs' : ''}`,
    transactional: true, safety: 'destructive', requiresPgml: PGML.none,
    up: create.down, down: create.up,
    notes: [`the chunks and their vectors are deleted; down re-creates the table empty${node.mode === 'queue' ? ' and queues every row for the worker' : ' (run pgml-kit backfill to chunk the rows again)'}`],
  })
}

/** `pgml-kit backfill <table>.<column>` for a chunked column (its copies are filled with it). */
function chunkBackfillCommand(node: ChunkedColumnNode): string {
  return `pgml-kit ${node.mode === 'queue' ? 'worker (or pgml-kit backfill' : 'backfill'} ${node.table}.${node.rollout?.of ?? node.column}${node.mode === 'queue' ? ')' : ''}`
}

/** Before a chunked switch: the copy that becomes the chunk table searches read must have chunks for every row with text. */
export function checkChunksFilled(node: ChunkedColumnNode, becomes: string): Operation {
  // `becomes`: the live chunk table's name, which this copy takes.
  return defineOperation({
    kind: 'check-chunks-filled', origin: embeddingPath(node), table: `${node.schema}.${node.table}`,
    summary: `check that ${node.schema}.${node.chunkTable} has chunks for every row with text before it becomes ${quoteIdent(becomes)}`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: [renderRefuseChunksUnfilled(node, becomes, `it would become the chunk table searches read with rows that have no chunks`, chunkBackfillCommand(node))],
    down: ['-- (the check before the switch has nothing to undo)'],
    notes: [`one scan of ${node.schema}.${node.table}, before any statement of this migration that locks writers out: migrate refuses, changing nothing, while rows with text have chunks in ${becomes} and none in ${node.chunkTable} (searches would lose them), have no chunks and no queued job, or jobs are dead-lettered`],
  })
}

/**
 * A staged chunking change's switch: `first` (the live chunked column) takes its copy's suffixed
 * names, `second` (the filled copy) the live ones, in one short transaction. Down switches back,
 * after checking that the column it makes live again is filled.
 */
export function switchChunkedColumn(first: ChunkSwitchSide, second: ChunkSwitchSide, indexes: readonly (readonly [string, string])[]): Operation {
  const back = (side: ChunkSwitchSide): ChunkSwitchSide => ({ from: side.to, to: side.from })
  const undo = indexes.map(([a, b]) => [b, a] as const)
  const live = first.from
  return defineOperation({
    kind: 'switch-chunked-column', origin: embeddingPath(live), table: `${live.schema}.${live.table}`,
    summary: `switch ${columnLabel(live)} to the chunks of ${second.from.schema}.${second.from.chunkTable} (${describeChunking(second.to)}): it becomes ${live.chunkTable}, the current chunks stay in ${first.to.chunkTable}`,
    transactional: true, safety: 'slows-writes', requiresPgml: PGML.none,
    up: renderChunkSwitch(first, second, indexes),
    down: [
      renderRefuseChunksUnfilled(first.to, second.to.chunkTable, `switching back would make it the chunk table searches read with rows that have no chunks`, chunkBackfillCommand(first.to)),
      ...renderChunkSwitch(back(second), back(first), [...undo.slice(first.from.indexes.length), ...undo.slice(0, first.from.indexes.length)]),
    ],
    notes: [
      `renames under ACCESS EXCLUSIVE on both chunk tables${live.mode === 'queue' ? ` and SHARE ROW EXCLUSIVE on ${live.schema}.${live.table} (its triggers are made again for the new names)` : ''}: an instant, no rewrite; searches read the new chunks from the moment it commits`,
      `${first.to.chunkTable} keeps the current chunks in sync until a later pgml-kit generate --allow-destructive drops it; down switches back`,
    ],
  })
}

/**
 * With a staged chunking change's shadow: the live chunk table records the settings its chunks are
 * made with (the worker, backfill and writer keep it with those, not the config's new ones) and its
 * primary key takes the name the switch renames.
 */
export function prepareLiveChunks(live: ChunkedColumnNode): Operation {
  return defineOperation({
    kind: 'prepare-live-chunks', origin: embeddingPath(live), table: `${live.schema}.${live.table}`,
    summary: `record how ${live.schema}.${live.chunkTable}'s chunks are made (${describeChunking(live)}) as its comment, for the staged change beside it`,
    transactional: true, safety: 'safe', requiresPgml: PGML.none,
    up: renderPrepareLiveChunks(live),
    down: ['-- (the comment says how the live chunks are made, which stays true; the primary key keeps its name)'],
    notes: [],
  })
}
