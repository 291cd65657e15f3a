import { PlanError } from '../errors.js'
import { columnKey, columnLabel, triggerFunctionName, type DesiredState, type EmbeddingColumnNode, type RolloutRole, type VectorIndexNode } from '../model/ir.js'
import type { ColumnRename } from '../model/resolve.js'
import type { Sizing } from '../indexes/sizing.js'
import { deriveIdentifier } from '../sql/quote.js'
import type { SwitchSide } from '../sql/render-rollout.js'
import { sameFixedParams, sameIndex, vectorsCarryOver } from './compare.js'
import { cliColumn } from './operations.js'

/**
 * A staged model change. When the config changes what a column's vectors are (model, revision,
 * dimensions, vector type, document prefix, normalisation, pooling — or leaves a generated column),
 * the vectors cannot be altered in place without recomputing every row under a lock. Instead the
 * change goes in stages, each a migration of its own, each reversible until the last:
 *
 * 1. **shadow**: a second column (`<column>__next`) with the new model, kept in sync for new writes
 *    by its own trigger or queue (or by the application, in mode `app`), with its own indexes built
 *    concurrently; `pgml-kit backfill` fills it in committed batches;
 * 2. **switch**, once it is filled: the two columns trade names in one short transaction, with
 *    their triggers, jobs, catalog rows and indexes — the old vectors stay in `<column>__previous`,
 *    kept in sync, so the down switches back exactly;
 * 3. **drop previous**, approved separately (`--allow-destructive`).
 *
 * This module decides, from the recorded state, the config and what the database says, which stage
 * the next migration takes each column to: it returns the state to record and the switches; the
 * planner diffs the rest as usual (the shadow is a new column; the previous column a removed one).
 * Pure: the same inputs give the same result.
 */

export type RolloutName = RolloutRole['role']

/** The extra column's name: `<column>__next` / `<column>__previous`, cut to 63 bytes with a hash when needed. */
export function rolloutColumnName(column: string, role: RolloutName): string {
  return deriveIdentifier([column, role], '__')
}

/** An index of the extra column: the index's own name with the same suffix. */
export function rolloutIndexName(index: string, role: RolloutName): string {
  return deriveIdentifier([index, role], '__')
}

export interface RolloutOptions {
  /**
   * When a switch may be generated: `never` (`generate --check`: a rollout in progress is waiting,
   * not a disagreement), `when-filled` (the database given says the copy is filled), `always`
   * (`generate --switch`: without looking; the migration refuses while it is not filled).
   */
  readonly switch: 'never' | 'when-filled' | 'always'
  /** Drop previous columns (`--allow-destructive`); otherwise they wait. */
  readonly dropPrevious: boolean
  readonly sizing?: Sizing
  readonly renames?: readonly ColumnRename[]
}

export type RolloutStageKind = 'shadow' | 'replace-shadow' | 'abandon' | 'waits-for-switch' | 'switch' | 'keeps-previous' | 'drop-previous'

/** What the plan does to one column's staged change, and what its next stage needs. */
export interface RolloutStage {
  /** The live column, `schema.table.column`. */
  readonly column: string
  readonly stage: RolloutStageKind
  readonly message: string
  /** Nothing is generated for it now: it waits (for a backfill, a database to check, or approval). */
  readonly waiting: boolean
  /** What changes: the model of a column (absent), or how a chunked column's chunks are made. */
  readonly subject?: 'chunking'
}

/** Two columns that trade places: the live one and its filled copy. */
export interface ColumnSwitch {
  readonly live: SwitchSide
  readonly other: SwitchSide
}

export interface StagedState {
  /** The state the migrations bring the database to (what generate records). */
  readonly desired: DesiredState
  readonly switches: readonly ColumnSwitch[]
  readonly stages: readonly RolloutStage[]
}

const pct = (withText: number, missing: number) => `${(Math.floor((1000 * (withText - missing)) / Math.max(1, withText)) / 10).toFixed(1)}%`
const describe = (c: EmbeddingColumnNode) => `${c.model.id}${c.model.revision ? `@${c.model.revision}` : ''} ${c.vectorType}(${c.model.dimensions})`

/**
 * Stages every column's model change. `config` is the config's state (names of existing objects
 * kept, 'auto' index parameters sized); `recorded` what the last generate recorded.
 */
export function stageRollouts(recorded: DesiredState, config: DesiredState, options: RolloutOptions): StagedState {
  const columns: EmbeddingColumnNode[] = []
  const indexes: VectorIndexNode[] = []
  const switches: ColumnSwitch[] = []
  const stages: RolloutStage[] = []
  const at = (c: { schema: string; table: string }, name: string) => recorded.embeddingColumns.find((r) => r.schema === c.schema && r.table === c.table && r.column === name)
  const extraOf = (c: EmbeddingColumnNode, role: RolloutName) => recorded.embeddingColumns.find((r) => r.rollout?.role === role && r.schema === c.schema && r.table === c.table && r.rollout.of === c.column)
  const recordedIndexes = (c: EmbeddingColumnNode) => recorded.indexes.filter((i) => columnKey(i) === columnKey(c))
  const configIndexes = (c: EmbeddingColumnNode) => config.indexes.filter((i) => columnKey(i) === columnKey(c))
  /** The config's indexes of `c`, as the indexes of its copy `copy` (renamed with the role's suffix; 'auto' values kept from a built one). */
  const indexesAs = (c: EmbeddingColumnNode, copy: EmbeddingColumnNode, role: RolloutName): VectorIndexNode[] => configIndexes(c).map((i) => {
    const mapped: VectorIndexNode = { ...i, column: copy.column, name: rolloutIndexName(i.name, role) }
    const built = recorded.indexes.find((r) => r.schema === mapped.schema && r.name === mapped.name && columnKey(r) === columnKey(copy) && sameFixedParams(r, mapped))
    return built && mapped.auto.length > 0 ? { ...mapped, params: { ...mapped.params, ...Object.fromEntries(mapped.auto.map((k) => [k, built.params[k] ?? mapped.params[k]!])) } } : mapped
  })
  const copyOf = (c: EmbeddingColumnNode, role: RolloutName, existing: EmbeddingColumnNode | undefined): EmbeddingColumnNode => {
    const name = rolloutColumnName(c.column, role)
    return {
      ...c, column: name, rollout: { role, of: c.column },
      triggerFunction: existing && existing.mode === c.mode ? existing.triggerFunction : triggerFunctionName(c.mode, c.schema, c.table, name),
    }
  }
  const keep = (...nodes: readonly (readonly [EmbeddingColumnNode, readonly VectorIndexNode[]])[]) => {
    for (const [node, own] of nodes) {
      columns.push(node)
      indexes.push(...own)
    }
  }
  const taken = (c: EmbeddingColumnNode, name: string, except: EmbeddingColumnNode | undefined) => {
    const other = [...config.embeddingColumns, ...recorded.embeddingColumns].find((o) => o !== except && o.schema === c.schema && o.table === c.table && o.column === name)
    if (other) {
      throw new PlanError('ROLLOUT_NAME_TAKEN', `changing the model of ${columnLabel(c)} needs a column named "${name}" for the new vectors, and ${c.table} already declares one`, {
        where: `tables.${c.table}.embeddings.${c.column}`, hint: `rename the other embedding column (renamedFrom) first`,
      })
    }
  }
  /** Whether `copy` (recorded) is ready to become live: every index the config wants on it built, and (as far as the options let us know) filled. */
  const readiness = (c: EmbeddingColumnNode, copy: EmbeddingColumnNode, wanted: readonly VectorIndexNode[]): string | null => {
    const built = recordedIndexes(copy)
    const missing = wanted.filter((w) => !built.some((b) => b.name === w.name && sameIndex(b, w)))
    if (missing.length > 0 || built.length !== wanted.length) {
      return `the switch waits for the indexes of ${columnLabel(copy)} to be built as the config says (${missing.map((m) => m.name).join(', ') || 'other indexes to go'}): migrate, then generate again`
    }
    if (options.switch === 'always') return null
    if (options.switch === 'never') return `${columnLabel(copy)} (${describe(copy)}) is being filled; the switch is generated by pgml-kit generate once it is`
    const fill = options.sizing?.fill?.get(columnLabel(copy))
    if (!options.sizing) {
      return `the switch waits until ${columnLabel(copy)} is filled: give --database-url (or $DATABASE_URL) of the database to check it, or generate --switch to write it now (migrate refuses it while the column is not filled)`
    }
    if (!fill) return `${columnLabel(copy)} is not in ${options.sizing.source} yet: run pgml-kit migrate, then pgml-kit backfill ${cliColumn(c)}, then generate again`
    if (fill.missing > 0) return `backfill ${pct(fill.withText, fill.missing)} (${fill.missing.toLocaleString('en-US')} of ${fill.withText.toLocaleString('en-US')} rows with text have no ${copy.model.id} vector yet): run \`pgml-kit backfill ${cliColumn(c)}\` before generating the switch`
    if (fill.deadLetters > 0) return `${fill.deadLetters} job(s) of ${columnLabel(copy)} are dead-lettered: fix them, pgml-kit queue retry, run the worker, then generate again`
    return null
  }
  /** R and its copy trade places: the copy takes R's name, R takes the copy's role and its own suffixed name. */
  const trade = (c: EmbeddingColumnNode, live: EmbeddingColumnNode, copy: EmbeddingColumnNode, liveRole: RolloutName): void => {
    const copyRole = copy.rollout!.role
    const newLive: EmbeddingColumnNode = { ...c, triggerFunction: copy.mode === c.mode ? copy.triggerFunction : c.triggerFunction }
    const oldLive: EmbeddingColumnNode = { ...live, column: rolloutColumnName(c.column, liveRole), rollout: { role: liveRole, of: c.column } }
    taken(c, oldLive.column, extraOf(c, liveRole))
    const liveIndexes = recordedIndexes(live).map((i) => ({ ...i, column: oldLive.column, name: rolloutIndexName(i.name, liveRole) }))
    // The copy's indexes are the config's, built under suffixed names: they take the config's names (and keep their built values).
    const copyIndexes = recordedIndexes(copy).map((i) => {
      const wanted = configIndexes(c).find((w) => rolloutIndexName(w.name, copyRole) === i.name)!
      return { ...i, column: c.column, name: wanted.name, search: wanted.search, build: wanted.build }
    })
    switches.push({
      live: { from: live, to: oldLive, indexes: recordedIndexes(live).map((i, k) => [i.name, liveIndexes[k]!.name] as const) },
      other: { from: copy, to: withoutRollout({ ...copy, column: c.column }), indexes: recordedIndexes(copy).map((i, k) => [i.name, copyIndexes[k]!.name] as const) },
    })
    keep([newLive, copyIndexes], [oldLive, liveIndexes])
  }

  for (const c of config.embeddingColumns) {
    const key = columnLabel(c)
    const live = at(c, c.column)
    const next = extraOf(c, 'next')
    const previous = extraOf(c, 'previous')
    const renamed = options.renames?.some((r) => r.schema === c.schema && r.table === c.table && (r.to === c.column || r.from === c.column)) ?? false
    if (live?.rollout) throw new PlanError('ROLLOUT_NAME_TAKEN', `${key} is declared in the config, but the last generated state has it as the ${live.rollout.role} column of ${live.rollout.of}`, { where: `tables.${c.table}.embeddings.${c.column}`, hint: 'choose another name' })
    if (!live || (!next && !previous && vectorsCarryOver(live, c))) {
      if (!live && (next || previous)) throw new PlanError('ROLLOUT_INCONSISTENT', `the last generated state has a ${next ? 'next' : 'previous'} column of ${key} but not ${key} itself`, { hint: 'restore migrations/.pgml-kit-snapshot.json from version control' })
      // New, or changed in place: the usual diff.
      keep([c, configIndexes(c)])
      continue
    }
    if (renamed) {
      throw new PlanError('ROLLOUT_RENAME', `${key} cannot be renamed while its model changes (or a model change of it is in progress)`, { where: `tables.${c.table}.embeddings.${c.column}.renamedFrom`, hint: 'rename it in one change and change its model in another' })
    }
    if (c.mode === 'generated') {
      throw new PlanError('MODEL_CHANGE_GENERATED', `changing the model of ${key} (${describe(live)} → ${describe(c)}) in mode "generated" would rewrite ${c.schema}.${c.table} under an ACCESS EXCLUSIVE lock, embedding every row`, {
        where: `tables.${c.table}.embeddings.${c.column}.mode`, hint: 'use mode "trigger" (pgml.embed on every write too, without the rewrite): the new model\'s column is then filled in committed batches by pgml-kit backfill and switched in',
      })
    }
    if (!next && !previous) {
      // Stage 1: a shadow with the new model, filled while the live column goes on serving.
      const shadow = copyOf(c, 'next', undefined)
      taken(c, shadow.column, undefined)
      keep([live, recordedIndexes(live)], [shadow, indexesAs(c, shadow, 'next')])
      stages.push({ column: key, stage: 'shadow', waiting: false, message: `${describe(live)} → ${describe(c)}: adds ${shadow.column} with the new model${c.mode === 'app' ? ' (the application writes it: createEmbeddingWriter follows the catalog)' : c.mode === 'trigger' ? ' (its own trigger embeds new writes)' : ' (its own queue; pgml-kit worker embeds new writes)'}; next: pgml-kit migrate, pgml-kit backfill ${cliColumn(c)}, then pgml-kit generate writes the switch` })
      continue
    }
    if (next) {
      if (vectorsCarryOver(next, c)) {
        const shadow = copyOf(c, 'next', next)
        const wanted = indexesAs(c, shadow, 'next')
        const wait = readiness(c, next, wanted)
        if (wait === null) {
          // The recorded shadow trades places with the live column; the diff then brings it to the config (same model).
          trade(c, live, next, 'previous')
          stages.push({ column: key, stage: 'switch', waiting: false, message: `switches ${key} to ${describe(c)}: ${next.column} becomes ${c.column}, the old vectors stay in ${rolloutColumnName(c.column, 'previous')} (kept in sync; a later pgml-kit generate --allow-destructive drops it)` })
        } else {
          keep([live, recordedIndexes(live)], [shadow, wanted])
          stages.push({ column: key, stage: 'waits-for-switch', waiting: true, message: wait ?? '' })
        }
        continue
      }
      if (vectorsCarryOver(live, c)) {
        keep([c, configIndexes(c)])
        stages.push({ column: key, stage: 'abandon', waiting: false, message: `the config is back to ${describe(live)}: the shadow ${next.column} (${describe(next)}) and its vectors are dropped` })
        continue
      }
      const shadow = copyOf(c, 'next', undefined)
      taken(c, shadow.column, next)
      keep([live, recordedIndexes(live)], [shadow, indexesAs(c, shadow, 'next')])
      stages.push({ column: key, stage: 'replace-shadow', waiting: false, message: `the config changed again: the shadow ${next.column} (${describe(next)}) is dropped and added again with ${describe(c)}; backfill it again` })
      continue
    }
    // Switched: `live` has the new model, `previous` the old one.
    const old = previous!
    if (vectorsCarryOver(old, c)) {
      // The config went back to the previous model: switch back, the new model's column becoming the shadow again.
      const wanted = indexesAs(c, old, 'previous')
      const wait = readiness(c, old, wanted)
      if (wait === null) {
        trade(c, live, old, 'next')
        stages.push({ column: key, stage: 'switch', waiting: false, message: `switches ${key} back to ${describe(c)}: ${old.column} becomes ${c.column}, ${describe(live)} stays in ${rolloutColumnName(c.column, 'next')}` })
      } else {
        keep([live, recordedIndexes(live)], [old, wanted])
        stages.push({ column: key, stage: 'waits-for-switch', waiting: true, message: wait })
      }
      continue
    }
    if (!vectorsCarryOver(live, c)) {
      throw new PlanError('ROLLOUT_UNFINISHED', `${key} was switched to ${describe(live)} and still keeps ${describe(old)} in ${old.column}; a third model cannot be staged until that column is dropped`, {
        where: `tables.${c.table}.embeddings.${c.column}.model`, hint: 'generate --allow-destructive with the current model first (it drops the previous column), then change the model again',
      })
    }
    if (options.dropPrevious) {
      keep([c, configIndexes(c)])
      stages.push({ column: key, stage: 'drop-previous', waiting: false, message: `drops ${old.column} (${describe(old)}) and its indexes: the model change of ${key} is complete and can no longer be switched back` })
    } else {
      keep([c, configIndexes(c)], [old, recordedIndexes(old)])
      stages.push({ column: key, stage: 'keeps-previous', waiting: true, message: `${old.column} keeps the previous model's vectors (${describe(old)}, kept in sync) so the switch can be undone; pgml-kit generate --allow-destructive drops it` })
    }
  }
  return { desired: { ...config, embeddingColumns: sortColumns(columns), indexes: sortIndexes(indexes) }, switches, stages }
}

function withoutRollout(column: EmbeddingColumnNode): EmbeddingColumnNode {
  const { rollout: _, ...rest } = column
  return rest
}

const byKey = (a: { schema: string; table: string; column: string }, b: typeof a) =>
  a.schema.localeCompare(b.schema) || a.table.localeCompare(b.table) || a.column.localeCompare(b.column)
const sortColumns = (columns: EmbeddingColumnNode[]) => columns.sort(byKey)
const sortIndexes = (indexes: VectorIndexNode[]) => indexes.sort((a, b) => byKey(a, b) || a.name.localeCompare(b.name))

/** The recorded state after its switches: what the rest of the plan diffs against. */
export function applySwitches(recorded: DesiredState, switches: readonly ColumnSwitch[]): DesiredState {
  if (switches.length === 0) return recorded
  const sides = switches.flatMap((s) => [s.live, s.other])
  const columns = recorded.embeddingColumns.map((c) => sides.find((s) => s.from === c)?.to ?? c)
  const indexes = recorded.indexes.map((i) => {
    const side = sides.find((s) => columnKey(s.from) === columnKey(i))
    if (!side) return i
    const name = side.indexes.find(([from]) => from === i.name)?.[1] ?? i.name
    return { ...i, column: side.to.column, name }
  })
  return { ...recorded, embeddingColumns: sortColumns(columns), indexes: sortIndexes(indexes) }
}
