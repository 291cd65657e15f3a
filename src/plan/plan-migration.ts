import { PlanError } from '../errors.js'
import { RUNTIME_VERSION, columnKey, columnLabel, deepFreeze, needsPgml, objectKey, type DesiredState, type EmbeddingColumnNode, type FeatureViewNode, type FullTextNode, type VectorIndexNode } from '../model/ir.js'
import type { Operation } from './operation.js'
import { sameIndex, sameSource, vectorsCarryOver } from './compare.js'
import { applySwitches, stageRollouts, type ColumnSwitch, type RolloutOptions, type RolloutStage } from './rollout.js'
import { applyChunkSwitches, stageChunkRollouts, type ChunkSwitch } from './rollout-chunks.js'
import * as ops from './operations.js'
import { grantsFor, grantsMissingFrom } from './grants.js'
import { isEmptyPreflight, type PreflightChecks } from '../sql/render-preflight.js'
import { rolePath } from '../model/config-path.js'
import { sizingNotes, type Sizing } from '../indexes/sizing.js'
import type { ColumnRename, TableRename } from '../model/resolve.js'
import { applyTableRenames } from './rename-tables.js'
import { hasVectors, planChunkedColumns } from './plan-chunks.js'

/**
 * A plan in three phases, which become migration files in this order: concurrent index drops
 * (each its own non-transactional file), one transactional file for everything else, then
 * concurrent index builds (each its own file).
 */
export interface Plan {
  readonly before: readonly Operation[]
  readonly main: readonly Operation[]
  readonly after: readonly Operation[]
  /** Indexes the config declares that this plan does not build yet (IVFFlat on a column with no vectors). */
  readonly deferred: readonly DeferredIndex[]
  /** Staged model changes: the stage this plan takes each to, or what its next stage waits for. */
  readonly stages: readonly RolloutStage[]
  /** What the plan needs of the live database (its files check it first; `generate` can check it against a database before writing). */
  readonly checks: PreflightChecks
}

export interface DeferredIndex {
  readonly index: VectorIndexNode
  readonly reason: string
}

export interface PlanOptions {
  /** Embedding columns the config declares as renamed (`renamedFrom`). */
  readonly renames?: readonly ColumnRename[]
  /** Tables the config declares as renamed (`tables.<table>.renamedFrom`). */
  readonly tableRenames?: readonly TableRename[]
  /** Sizes of the tables in the database the plan was made against (advice notes, IVFFlat deferral). */
  readonly sizing?: Sizing
  /** Columns that trade places before anything else (the switch of a staged model change; see rollout.ts). */
  readonly switches?: readonly ColumnSwitch[]
  /** Chunk tables that trade places (the switch of a staged chunking change; see rollout-chunks.ts). */
  readonly chunkSwitches?: readonly ChunkSwitch[]
}

export function planOperations(plan: Plan): readonly Operation[] {
  return [...plan.before, ...plan.main, ...plan.after]
}

/** True when the plan writes nothing (indexes it defers are not written). */
export function isEmptyPlan(plan: Plan): boolean {
  return plan.before.length + plan.main.length + plan.after.length === 0
}

function refuseModelChange(previous: EmbeddingColumnNode, next: EmbeddingColumnNode, renamed: boolean): never {
  const key = columnLabel(next)
  const was = `${previous.model.id} ${previous.vectorType}(${previous.model.dimensions})`
  const now = `${next.model.id} ${next.vectorType}(${next.model.dimensions})`
  const where = `tables.${next.table}.embeddings.${next.column}.model`
  if (renamed) {
    throw new PlanError('MODEL_CHANGE_UNSUPPORTED',
      `${key} is renamed and its model changes (${was} → ${now}) in the same change: pgml-kit stages a model change with a shadow column, which a rename in the same migration would confuse`,
      { where, hint: 'generate the rename first (keeping the model), then change the model in a change of its own' })
  }
  throw new PlanError('MODEL_CHANGE_UNSUPPORTED', `planMigration does not recompute ${key}'s vectors in place (${was} → ${now})`, {
    where, hint: 'plan it with planChange, which stages a model change (generate and plan do)',
  })
}

/**
 * Diffs the state recorded by the last `generate` with the desired one into ordered operations.
 * Pure and deterministic: the same two states always give the same plan.
 *
 * @example
 * const plan = planMigration(EMPTY_STATE, resolveConfig(config).state)
 */
export function planMigration(recordedState: DesiredState, next: DesiredState, options: PlanOptions = {}): Plan {
  // Switched columns trade places first (their privileges go with them: PostgreSQL keeps a column's
  // ACL with the column), then renamed columns are renamed; everything after diffs that with the config.
  const recorded = applyChunkSwitches(applySwitches(recordedState, options.switches ?? []), options.chunkSwitches ?? [])
  // Renamed tables first: the column renames and the diff see them under their new names.
  const moved = applyTableRenames(recorded, next, options.tableRenames ?? [], options.renames ?? [])
  const renamed = applyRenames(moved.state, next, options.renames ?? [])
  const previous = renamed.state
  const before: Operation[] = []
  const deferred: DeferredIndex[] = []
  const main: Operation[] = []
  const after: Operation[] = []

  const prevColumns = new Map(previous.embeddingColumns.map((c) => [columnKey(c), c]))
  const nextColumns = new Map(next.embeddingColumns.map((c) => [columnKey(c), c]))
  // An index dropped from a renamed column is dropped before the rename: it is found under the old name.
  const recordedColumns = new Map(recorded.embeddingColumns.map((c) => [columnKey(c), c]))
  const contextOf = (index: VectorIndexNode, columns: Map<string, EmbeddingColumnNode>) => {
    const column = columns.get(columnKey(index)) ?? recordedColumns.get(columnKey(index))
    if (!column) throw new Error(`no embedding column for index ${index.name}`)
    return { column: { vectorType: column.vectorType, dimensions: column.model.dimensions }, notes: sizingNotes(index, column, options.sizing) }
  }

  // Columns that are dropped (removed, or a generated column whose expression changes and so has
  // to be re-added); their indexes go with them and come back after, explicitly, so down restores them.
  const recreated = new Set<string>()

  // A renamed table keeps its privileges (PostgreSQL keeps them with the table).
  const prevGrants = grantsFor(moved.state)
  const nextGrants = grantsFor(next)
  const added = grantsMissingFrom(nextGrants, prevGrants)
  const removed = grantsMissingFrom(prevGrants, nextGrants)
  // Privileges go before the objects they are on (revoke first), and come after them (grant last).
  if (removed.length > 0) main.push(ops.revokePrivileges(removed))

  // The runtime schema first: the extension steps record in it what they create.
  if (previous.runtimeVersion < next.runtimeVersion) main.push(ops.installRuntime(previous.runtimeVersion, next.runtimeVersion, previous.embeddingColumns))
  if (!hasVectors(previous) && hasVectors(next)) main.push(ops.createVectorExtension())
  if (!previous.embeddingColumns.some(needsPgml) && next.embeddingColumns.some(needsPgml)) main.push(ops.ensurePgml())
  // Checks that scan a table (is a column filled?) go before every statement of the file that locks
  // writers out (a switch's renames, a DROP INDEX, a dropped trigger or column): a check behind such a
  // lock would stall every write to the table for the length of its scan.
  const fillChecks: Operation[] = []
  for (const s of options.switches ?? []) {
    fillChecks.push(ops.checkSwitchFilled(s.live, s.other))
    main.push(ops.switchEmbeddingColumn(s.live, s.other))
  }
  for (const s of options.chunkSwitches ?? []) {
    fillChecks.push(ops.checkChunksFilled(s.second.from, s.first.from.chunkTable))
    main.push(ops.switchChunkedColumn(s.first, s.second, s.indexes))
  }
  main.push(...renamed.operations)

  const removeColumn = (column: EmbeddingColumnNode) => {
    main.push(ops.unregisterEmbeddingColumn(column))
    if (column.mode === 'trigger') main.push(ops.dropEmbedTrigger(column))
    // The extra column of a staged model change (an abandoned shadow, the previous model's column
    // after the switch): its jobs only kept the vectors that are dropped in sync; under load there
    // always are some, so they are deleted with it instead of blocking the drop.
    if (column.mode === 'queue') main.push(ops.dropQueueTriggers(column, { discardJobs: column.rollout !== undefined }))
    main.push(ops.dropEmbeddingColumn(column))
  }
  const addColumn = (column: EmbeddingColumnNode) => {
    main.push(ops.addEmbeddingColumn(column))
    if (column.mode === 'trigger') main.push(ops.createEmbedTrigger(column))
    if (column.mode === 'queue') main.push(ops.createQueueTriggers(column))
    main.push(ops.registerEmbeddingColumn(column))
  }

  for (const [key, column] of prevColumns) {
    if (nextColumns.has(key)) continue
    // The old model's column of a finished model change: the live one must hold every vector first.
    const live = column.rollout?.role === 'previous' ? nextColumns.get(columnKey({ ...column, column: column.rollout.of })) : undefined
    if (live) fillChecks.push(ops.checkEmbeddingFilled(live, column))
    removeColumn(column)
  }

  for (const [key, column] of nextColumns) {
    const old = prevColumns.get(key)
    if (!old) {
      addColumn(column)
      continue
    }
    if (!vectorsCarryOver(old, column)) {
      // A shadow whose target model changed again: it starts over (stageRollouts decided so).
      if (old.rollout?.role !== 'next') refuseModelChange(old, column, moved.previousNames.has(objectKey(column.schema, column.table)) || (options.renames ?? []).some((r) => r.schema === column.schema && r.table === column.table && r.to === column.column))
      recreated.add(key)
      removeColumn(old)
      addColumn(column)
      continue
    }
    if (column.mode === 'queue' && old.keyColumns.join() !== column.keyColumns.join()) {
      throw new PlanError('KEY_CHANGE_UNSUPPORTED', `changing the primary key of ${columnLabel(column)} (mode "queue") is not supported yet`, {
        where: `tables.${column.table}.primaryKey`, hint: 'add a new embedding column instead',
      })
    }
    // Same model, another way of keeping it in sync: the vectors stay; the triggers change.
    const modeChanged = old.mode !== column.mode
    if (modeChanged) {
      if (old.mode === 'trigger') main.push(ops.dropEmbedTrigger(old))
      if (old.mode === 'queue') main.push(ops.dropQueueTriggers(old))
      if (column.mode === 'trigger') main.push(ops.createEmbedTrigger(column))
      if (column.mode === 'queue') main.push(ops.createQueueTriggers(column))
      main.push(ops.updateEmbeddingMode(old, column))
    }
    if (old.model.queryPrefix !== column.model.queryPrefix || old.distance !== column.distance) main.push(ops.updateQuerySettings(old, column))
    if (sameSource(old, column)) {
      // Generated before the type guard: the function is replaced in place (a new source below re-creates it anyway).
      if (!modeChanged && (column.mode === 'trigger' || column.mode === 'queue') && old.typeGuard !== column.typeGuard) main.push(ops.guardTriggerFunction(old, column))
      continue
    }
    // A mode change created its triggers from the new source already.
    if (!modeChanged && column.mode === 'generated') {
      recreated.add(key)
      main.push(ops.dropEmbeddingColumn(old), ops.addEmbeddingColumn(column))
    } else if (!modeChanged && column.mode === 'trigger') {
      main.push(ops.replaceEmbedTrigger(old, column))
    } else if (!modeChanged && column.mode === 'queue') {
      main.push(ops.replaceQueueTriggers(old, column))
    }
    main.push(ops.updateEmbeddingSource(old, column))
  }

  const prevIndexes = new Map(previous.indexes.map((i) => [objectKey(i.schema, i.name), i]))
  const nextIndexes = new Map(next.indexes.map((i) => [objectKey(i.schema, i.name), i]))
  for (const [key, index] of prevIndexes) {
    const wanted = nextIndexes.get(key)
    const columnGoes = !nextColumns.has(columnKey(index)) || recreated.has(columnKey(index))
    if (!wanted || columnGoes || (wanted && !sameIndex(index, wanted) && columnKey(wanted) !== columnKey(index))) {
      before.push(ops.dropVectorIndex(index, { column: contextOf(index, prevColumns).column }))
    }
  }
  for (const [key, index] of nextIndexes) {
    const old = prevIndexes.get(key)
    const context = contextOf(index, nextColumns)
    if (!old || recreated.has(columnKey(index)) || columnKey(old) !== columnKey(index)) {
      const waiting = ivfflatWaitsForData(index, nextColumns.get(columnKey(index))!, !prevColumns.has(columnKey(index)) || recreated.has(columnKey(index)), options.sizing)
      if (waiting) deferred.push({ index, reason: waiting })
      else after.push(ops.createVectorIndex(index, context))
    } else if (!sameIndex(old, index)) after.push(ops.rebuildVectorIndex(old, index, context))
  }

  // The last embedding column went: what the first one brought in goes too (each only if unused).
  planChunkedColumns(previous, next, { before, main, after }, new Set(moved.previousNames.keys()))
  if (hasVectors(previous) && !hasVectors(next)) main.push(ops.releaseVectorExtension())
  // Prediction logs: after the runtime that holds them, before the grants on it, and before the runtime goes.
  const prevLogs = new Map((previous.predictionLogs ?? []).map((l) => [l.project, l]))
  const nextLogs = new Map((next.predictionLogs ?? []).map((l) => [l.project, l]))
  for (const [project, log] of prevLogs) if (!nextLogs.has(project)) main.push(ops.removePredictionLog(log))
  for (const [project, log] of nextLogs) {
    const old = prevLogs.get(project) ?? null
    if (!old || old.sample !== log.sample || old.retentionDays !== log.retentionDays) main.push(ops.setPredictionLog(old, log))
  }
  // The runtime goes when neither embedding columns nor models (the registry) need it. Its down
  // reinstalls the current runtime: re-creating pgvector records itself there.
  if (previous.runtimeVersion > 0 && next.runtimeVersion === 0) main.push(ops.releaseRuntime(RUNTIME_VERSION))


  // Full-text columns: identified by table and column; any change re-adds the generated column.
  const ftKey = (n: FullTextNode) => columnKey(n)
  const prevFullText = new Map((previous.fullText ?? []).map((n) => [ftKey(n), n]))
  const nextFullText = new Map(next.fullText.map((n) => [ftKey(n), n]))
  for (const [key, node] of prevFullText) {
    const wanted = nextFullText.get(key)
    if (wanted && JSON.stringify(wanted) === JSON.stringify(node)) continue
    // The GIN index goes before a table rename (in a file of its own): under the table's old name.
    const renamedTable = moved.previousNames.get(objectKey(node.schema, node.table))
    before.push(ops.dropGinIndex(renamedTable === undefined ? node : { ...node, table: renamedTable.from }))
    main.push(ops.dropFullTextColumn(node))
  }
  for (const [key, node] of nextFullText) {
    const old = prevFullText.get(key)
    if (old && JSON.stringify(old) === JSON.stringify(node)) continue
    main.push(ops.addFullTextColumn(node))
    after.push(ops.createGinIndex(node))
  }

  planFeatures(previous, next, main)


  // Grants last: on objects this plan creates too.
  if (added.length > 0) main.push(ops.grantPrivileges(added))

  // Checks of the live database run before anything else in the file.
  const checks: PreflightChecks = deepFreeze({
    roles: [...new Set(added.map((a) => a.role))].sort().map((role) => ({ role, path: rolePath(next.roles, role) })),
    added: next.embeddingColumns.filter((c) => !prevColumns.has(columnKey(c))),
    resourced: next.embeddingColumns.filter((c) => {
      const old = prevColumns.get(columnKey(c))
      return old !== undefined && !sameSource(old, c)
    }),
    fullText: [...nextFullText].filter(([key]) => !prevFullText.has(key)).map(([, node]) => node),
    fullTextChanged: [...nextFullText].filter(([key, node]) => prevFullText.has(key) && JSON.stringify(prevFullText.get(key)) !== JSON.stringify(node)).map(([, node]) => node),
    ...(moved.previousNames.size > 0 ? { renamedTables: [...moved.previousNames.values()] } : {}),
  })
  main.unshift(...fillChecks)
  if (!isEmptyPreflight(checks)) main.unshift(ops.preflight(checks))
  // Table renames come first of all, so that every check and step after them names the table as
  // the config does (one transaction: a check that fails undoes them).
  main.unshift(...moved.operations)

  return Object.freeze({ before: Object.freeze(before), main: Object.freeze(main), after: Object.freeze(after), deferred: Object.freeze(deferred), stages: Object.freeze([]), checks })
}

export interface ChangeOptions extends Omit<PlanOptions, 'switches' | 'chunkSwitches'>, Partial<Omit<RolloutOptions, 'sizing' | 'renames'>> {}

/**
 * The plan from the recorded state to the config's: staged model changes decided first (which
 * stage each goes to now: stageRollouts), then the diff. Returns the state to record as well.
 *
 * @example
 * const { plan, desired } = planChange(snapshot.state, resolveConfig(config).state, { switch: 'when-filled' })
 */
export function planChange(recorded: DesiredState, config: DesiredState, options: ChangeOptions = {}): { plan: Plan; desired: DesiredState } {
  const staged = stageRollouts(recorded, config, {
    switch: options.switch ?? 'when-filled', dropPrevious: options.dropPrevious ?? false,
    ...(options.sizing ? { sizing: options.sizing } : {}), ...(options.renames ? { renames: options.renames } : {}),
  })
  const chunks = stageChunkRollouts(recorded, config, {
    switch: options.switch ?? 'when-filled', dropPrevious: options.dropPrevious ?? false, ...(options.sizing ? { sizing: options.sizing } : {}),
  })
  const desired: DesiredState = config.chunkedColumns === undefined && chunks.chunkedColumns.length === 0 ? staged.desired : { ...staged.desired, chunkedColumns: chunks.chunkedColumns }
  const plan = planMigration(recorded, desired, { ...options, switches: staged.switches, chunkSwitches: chunks.switches })
  return { plan: Object.freeze({ ...plan, stages: Object.freeze([...staged.stages, ...chunks.stages]) }), desired }
}

/**
 * The recorded state with the config's renames applied, and the steps that do them. A rename whose
 * old name is gone and new name is recorded was applied already (nothing to do). An index on the
 * column that the config still declares (same method, distance and parameters) moves with it,
 * renamed when its name changed; any other index on it is dropped and built by the usual diff.
 */
function applyRenames(recorded: DesiredState, next: DesiredState, renames: readonly ColumnRename[]): { state: DesiredState; operations: Operation[] } {
  let columns = [...recorded.embeddingColumns]
  let indexes = [...recorded.indexes]
  const operations: Operation[] = []
  for (const rename of renames) {
    const at = (name: string) => columns.find((c) => c.schema === rename.schema && c.table === rename.table && c.column === name)
    const old = at(rename.from)
    const already = at(rename.to)
    if (!old && already) continue
    const where = rename.path
    if (!old) {
      throw new PlanError('RENAME_SOURCE_MISSING', `${rename.schema}.${rename.table}.${rename.to} is declared as renamed from "${rename.from}", but the last generated state has no embedding column "${rename.from}" on ${rename.table}`, {
        where, hint: 'check the old name in the migrations\' snapshot, or remove renamedFrom to add the column as new',
      })
    }
    if (already) {
      throw new PlanError('RENAME_TARGET_EXISTS', `${rename.schema}.${rename.table} already has an embedding column "${rename.to}"; "${rename.from}" cannot be renamed to it`, { where })
    }
    const wanted = next.embeddingColumns.find((c) => c.schema === rename.schema && c.table === rename.table && c.column === rename.to)
    if (!wanted) continue
    // Its trigger function takes the name the new column's would have (same mode; a mode change is the diff's).
    const moved: EmbeddingColumnNode = { ...old, column: rename.to, ...(wanted.mode === old.mode ? { triggerFunction: wanted.triggerFunction } : {}) }
    operations.push(ops.renameEmbeddingColumn(old, moved))
    columns = columns.map((c) => (c === old ? moved : c))
    for (const index of indexes.filter((i) => i.schema === old.schema && i.table === old.table && i.column === old.column)) {
      const candidate = { ...index, column: rename.to }
      const match = next.indexes.find((n) => sameIndex(candidate, n) && (n.name === index.name || !indexes.some((o) => o.schema === n.schema && o.name === n.name)))
      if (!match) continue
      const movedIndex: VectorIndexNode = { ...candidate, name: match.name }
      if (match.name !== index.name) operations.push(ops.renameVectorIndex(index, movedIndex))
      indexes = indexes.map((i) => (i === index ? movedIndex : i))
    }
  }
  return { state: { ...recorded, embeddingColumns: columns, indexes }, operations }
}

/**
 * IVFFlat learns its lists (k-means centres) from the vectors present when it is built: built on
 * an empty column it has one useless list and pgvector warns of low recall. It waits while the
 * column is new in this plan (and not a generated one, which is filled as it is added) or the
 * database says it holds no vectors. Returns why it waits, or null.
 */
function ivfflatWaitsForData(index: VectorIndexNode, column: EmbeddingColumnNode, columnIsNew: boolean, sizing: Sizing | undefined): string | null {
  if (index.method !== 'ivfflat') return null
  const table = sizing?.tables.get(`${index.schema}.${index.table}`)
  if (columnIsNew && column.mode !== 'generated') {
    return `${columnLabel(column)} is added by this migration and holds no vectors yet; an IVFFlat index built now would learn nothing. After the backfill, run pgml-kit generate again to build it`
  }
  if (table && (table.filled[index.column] ?? 0) === 0 && !(columnIsNew && table.rows > 0)) {
    return `${columnLabel(column)} holds no vectors yet (${sizing!.source}); an IVFFlat index built now would learn nothing. After the backfill, run pgml-kit generate again to build it`
  }
  return null
}

/**
 * Feature views and training sets: training sets that change (or whose views do) are dropped
 * first and created last; a feature view is created or dropped whole — changing one is refused,
 * since its tables hold the materialised history.
 */
function planFeatures(previous: DesiredState, next: DesiredState, main: Operation[]): void {
  const prevViews = new Map((previous.featureViews ?? []).map((v) => [`${v.schema}.${v.name}`, v]))
  const nextViews = new Map(next.featureViews.map((v) => [`${v.schema}.${v.name}`, v]))
  const prevSets = new Map((previous.trainingSets ?? []).map((s) => [`${s.schema}.${s.name}`, s]))
  const nextSets = new Map(next.trainingSets.map((s) => [`${s.schema}.${s.name}`, s]))
  const upgrades: [FeatureViewNode, FeatureViewNode][] = []
  for (const [key, view] of nextViews) {
    const old = prevViews.get(key)
    // Generated before change capture: the same view, upgraded in place.
    // Its source may turn from a table into a query there (a database view given as a table: change capture needs a plain table).
    if (old && old.changeCapture === undefined && JSON.stringify({ ...view, source: old.source, changeCapture: undefined, changesTable: undefined, captureFunction: undefined }) === JSON.stringify(old)) {
      upgrades.push([old, view])
      continue
    }
    if (old && JSON.stringify(old) !== JSON.stringify(view)) {
      throw new PlanError('FEATURE_VIEW_CHANGE_UNSUPPORTED', `changing feature view ${key} is not supported yet: its tables hold the materialised history`, {
        where: `features.views.${view.name}`, hint: 'declare the changed view under a new name (materialise it), move training sets to it, then remove the old one',
      })
    }
  }
  const schemas = (state: DesiredState) => new Set([...(state.featureViews ?? []).map((v) => v.schema), ...(state.trainingSets ?? []).map((s) => s.schema)])
  const prevSchemas = schemas(previous)
  const nextSchemas = schemas(next)
  const changedSet = (key: string) => {
    const old = prevSets.get(key)
    const now = nextSets.get(key)
    return !now || !old || JSON.stringify(old) !== JSON.stringify(now)
  }
  // With models, trainers read the sets' views (see grants.ts); a view made again is granted again.
  const trainers = (state: DesiredState) => ((state.models ?? []).length > 0 ? state.roles.trainer ?? [] : [])
  for (const [key, set] of prevSets) if (changedSet(key)) main.push(ops.dropTrainingSet(set, previous.featureViews, trainers(previous)))
  for (const [key, view] of prevViews) if (!nextViews.has(key)) main.push(ops.dropFeatureView(view))
  for (const schema of [...nextSchemas].sort()) if (!prevSchemas.has(schema)) main.push(ops.createFeatureSchema(schema))
  for (const [key, view] of nextViews) if (!prevViews.has(key)) main.push(ops.createFeatureView(view))
  for (const [previousView, view] of upgrades) main.push(ops.upgradeFeatureView(previousView, view))
  for (const [key, set] of nextSets) if (changedSet(key)) main.push(ops.createTrainingSet(set, next.featureViews, trainers(next)))
  for (const schema of [...prevSchemas].sort()) if (!nextSchemas.has(schema)) main.push(ops.dropFeatureSchema(schema))
}
