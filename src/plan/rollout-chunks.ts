import { PlanError } from '../errors.js'
import { chunkedCopy, sameChunkSettings, sameChunkVectors, type ChunkRole } from '../model/chunk-rollout.js'
import { columnKey, columnLabel, type ChunkedColumnNode, type DesiredState, type VectorIndexNode } from '../model/ir.js'
import { embeddingPath } from '../model/config-path.js'
import type { ChunkSwitchSide } from '../sql/render-chunks.js'
import { deriveIdentifier } from '../sql/quote.js'
import { sameIndex } from './compare.js'
import type { RolloutOptions, RolloutStage } from './rollout.js'

/**
 * A staged chunking change (src/model/chunk-rollout.ts), stage by stage as for a model change
 * (rollout.ts): when the config changes how a chunked column's chunks are made — splitter, size,
 * overlap, separators, template, sources — with the same model,
 *
 * 1. **shadow**: `<column>__next`, a second chunk table (`<chunk table>__next`) with the new
 *    settings, its own queue (mode `queue`: every row queued, the worker chunks them) or the
 *    embedding writer and backfill (mode `app`), and its indexes built concurrently; searches go on
 *    reading the live table;
 * 2. **switch**, once it is filled: the two chunk tables trade names in one short transaction; the
 *    old chunks stay in `<chunk table>__previous`, kept in sync, so down switches back exactly;
 * 3. **drop previous**, approved separately (`--allow-destructive`).
 *
 * Pure: returns the chunked columns to record, the switches and the stages.
 */

export interface ChunkSwitch {
  /** The live column, becoming the previous copy. */
  readonly first: ChunkSwitchSide
  /** The filled copy, becoming the live column. */
  readonly second: ChunkSwitchSide
  /** Vector index renames, the first side's then the second's, `[from, to]`. */
  readonly indexes: readonly (readonly [string, string])[]
}

export interface StagedChunks {
  readonly chunkedColumns: readonly ChunkedColumnNode[]
  readonly switches: readonly ChunkSwitch[]
  readonly stages: readonly RolloutStage[]
}

const describe = (c: ChunkedColumnNode): string => {
  const k = c.chunking
  const size = k.size === null ? "the model's window" : `${k.size}${k.splitter === 'tokens' ? ' tokens' : ' characters'}`
  return `${k.splitter} ${size}, overlap ${k.overlap}${k.template === '{chunk}' ? '' : `, template ${JSON.stringify(k.template)}`}, from ${c.sourceColumns.join(' + ')}`
}
const cli = (c: ChunkedColumnNode) => `${c.schema === 'public' ? '' : `${c.schema}.`}${c.table}.${c.rollout?.of ?? c.column}`
const pct = (withText: number, missing: number) => `${(Math.floor((1000 * (withText - missing)) / Math.max(1, withText)) / 10).toFixed(1)}%`

export function stageChunkRollouts(recorded: DesiredState, config: DesiredState, options: Pick<RolloutOptions, 'switch' | 'dropPrevious' | 'sizing'>): StagedChunks {
  const recordedChunks = recorded.chunkedColumns ?? []
  const out: ChunkedColumnNode[] = []
  const switches: ChunkSwitch[] = []
  const stages: RolloutStage[] = []
  const at = (c: ChunkedColumnNode) => recordedChunks.find((r) => !r.rollout && r.schema === c.schema && r.table === c.table && r.column === c.column)
  const copyOf = (c: ChunkedColumnNode, role: ChunkRole) => recordedChunks.find((r) => r.rollout?.role === role && r.schema === c.schema && r.table === c.table && r.rollout.of === c.column)
  const taken = (c: ChunkedColumnNode, copy: ChunkedColumnNode, except: ChunkedColumnNode | undefined) => {
    const clash = [...(config.chunkedColumns ?? []), ...recordedChunks, ...config.embeddingColumns].find((o) => o !== except && o.schema === c.schema && o.table === c.table && o.column === copy.column)
      ?? [...(config.chunkedColumns ?? []), ...recordedChunks].find((o) => o !== except && o.schema === c.schema && (o.chunkTable === copy.chunkTable || o.view === copy.view))
    if (clash) {
      throw new PlanError('ROLLOUT_NAME_TAKEN', `changing how ${columnLabel(c)} is chunked needs the names ${copy.column} and ${c.schema}.${copy.chunkTable} for the new chunks, and the config already uses one of them`, {
        where: embeddingPath(c), hint: 'rename the other column or chunk table first',
      })
    }
  }
  /** The config's indexes of `c` on its copy, with the built values of `built`'s where it has them. */
  const indexesOf = (copy: ChunkedColumnNode, built: readonly VectorIndexNode[]) => copy.indexes.map((i) => {
    const b = built.find((r) => r.name === i.name && sameIndex(r, i))
    return b ?? i
  })

  for (const c of config.chunkedColumns ?? []) {
    const key = columnLabel(c)
    const live = at(c)
    const next = copyOf(c, 'next')
    const previous = copyOf(c, 'previous')
    if (!live) {
      if (next || previous) throw new PlanError('ROLLOUT_INCONSISTENT', `the last generated state has a ${next ? 'next' : 'previous'} copy of the chunked column ${key} but not ${key} itself`, { hint: 'restore migrations/.pgml-kit-snapshot.json from version control' })
      out.push(c)
      continue
    }
    const staged = !sameChunkSettings(live, c)
    if (!next && !previous) {
      // Unchanged, or a change that is not staged (indexes, or one planChunkedColumns refuses: model, mode, full text, names).
      if (!staged || !sameChunkVectors(live, c) || live.mode !== c.mode || live.chunkTable !== c.chunkTable) {
        out.push(c)
        continue
      }
      const shadow = chunkedCopy(c, 'next')
      taken(c, shadow, undefined)
      out.push({ ...live, indexes: c.indexes, distance: c.distance }, shadow)
      stages.push({ subject: 'chunking',
        column: key, stage: 'shadow', waiting: false,
        message: `${describe(live)} → ${describe(c)}: adds the chunk table ${shadow.chunkTable} with the new settings${c.mode === 'queue' ? ' (every row queued: pgml-kit worker chunks them)' : ' (pgml-kit backfill chunks the rows; the embedding writer keeps both tables)'}; searches read ${live.chunkTable} until the switch; next: pgml-kit migrate, ${c.mode === 'queue' ? 'pgml-kit worker' : `pgml-kit backfill ${cli(c)}`}, then pgml-kit generate writes the switch`,
      })
      continue
    }
    if (next) {
      if (!sameChunkVectors(live, c) || live.mode !== c.mode || live.chunkTable !== c.chunkTable) {
        throw new PlanError('ROLLOUT_UNFINISHED', `${key} has a staged chunking change in progress (${next.chunkTable}); its model, mode, full text or chunk table cannot change with it`, {
          where: embeddingPath(c), hint: 'finish the staged change (or go back to the live settings, which drops the shadow) first, then make this change',
        })
      }
      const wantedShadow = chunkedCopy(c, 'next')
      if (sameChunkSettings(next, c)) {
        const wait = readiness(next, wantedShadow)
        if (wait === null) {
          const previousCopy = chunkedCopy(live, 'previous')
          taken(c, previousCopy, previous)
          const becomesLive: ChunkedColumnNode = { ...c, indexes: next.indexes.map((i) => ({ ...i, table: c.chunkTable, name: c.indexes.find((w) => deriveIdentifier([w.name, 'next'], '__') === i.name)?.name ?? i.name })) }
          const previousIndexes = live.indexes.map((i) => ({ ...i, table: previousCopy.chunkTable, name: deriveIdentifier([i.name, 'previous'], '__') }))
          const first: ChunkSwitchSide = { from: live, to: { ...previousCopy, indexes: previousIndexes } }
          const second: ChunkSwitchSide = { from: next, to: becomesLive }
          switches.push({
            first, second,
            indexes: [...live.indexes.map((i, k) => [i.name, previousIndexes[k]!.name] as const), ...next.indexes.map((i, k) => [i.name, becomesLive.indexes[k]!.name] as const)],
          })
          out.push(becomesLive, first.to)
          stages.push({ subject: 'chunking', column: key, stage: 'switch', waiting: false, message: `switches ${key} to ${describe(c)}: ${next.chunkTable} becomes ${c.chunkTable}, the current chunks stay in ${previousCopy.chunkTable} (kept in sync; a later pgml-kit generate --allow-destructive drops it)` })
        } else {
          out.push(live, { ...wantedShadow, indexes: indexesOf(wantedShadow, next.indexes) })
          stages.push({ subject: 'chunking', column: key, stage: 'waits-for-switch', waiting: true, message: wait })
        }
        continue
      }
      if (!staged) {
        out.push(c)
        stages.push({ subject: 'chunking', column: key, stage: 'abandon', waiting: false, message: `the config is back to ${describe(live)}: the shadow ${next.chunkTable} (${describe(next)}) and its chunks are dropped` })
        continue
      }
      out.push(live, wantedShadow)
      stages.push({ subject: 'chunking', column: key, stage: 'replace-shadow', waiting: false, message: `the config changed again: the shadow ${next.chunkTable} (${describe(next)}) is dropped and made again with ${describe(c)}` })
      continue
    }
    // Switched: `live` has the new settings, `previous` the old ones.
    const old = previous!
    if (staged || live.mode !== c.mode || !sameChunkVectors(live, c)) {
      throw new PlanError('ROLLOUT_UNFINISHED', `${key} was switched to ${describe(live)} and keeps the previous chunks (${describe(old)}) in ${old.chunkTable}; another change of it waits until that table is dropped`, {
        where: embeddingPath(c), hint: `pgml-kit migrate down undoes the switch; or generate --allow-destructive with the current settings first (it drops ${old.chunkTable}), then change them again`,
      })
    }
    if (options.dropPrevious) {
      out.push(c)
      stages.push({ subject: 'chunking', column: key, stage: 'drop-previous', waiting: false, message: `drops ${old.chunkTable} (${describe(old)}): the chunking change of ${key} is complete and can no longer be switched back` })
    } else {
      out.push(c, old)
      stages.push({ subject: 'chunking', column: key, stage: 'keeps-previous', waiting: true, message: `${old.chunkTable} keeps the previous chunks (${describe(old)}, kept in sync) so the switch can be undone; pgml-kit generate --allow-destructive drops it` })
    }
  }
  return { chunkedColumns: out.sort((a, b) => a.schema.localeCompare(b.schema) || a.table.localeCompare(b.table) || a.column.localeCompare(b.column)), switches, stages }

  /** Null when `copy` (recorded) may become live now; else what it waits for. */
  function readiness(copy: ChunkedColumnNode, wanted: ChunkedColumnNode): string | null {
    const missing = wanted.indexes.filter((w) => !copy.indexes.some((b) => b.name === w.name && sameIndex(b, w)))
    if (missing.length > 0 || copy.indexes.length !== wanted.indexes.length) {
      return `the switch waits for the indexes of ${copy.chunkTable} to be built as the config says (${missing.map((m) => m.name).join(', ') || 'other indexes to go'}): migrate, then generate again`
    }
    if (options.switch === 'always') return null
    if (options.switch === 'never') return `${copy.chunkTable} (${describe(copy)}) is being filled; the switch is generated by pgml-kit generate once it is`
    if (!options.sizing) return `the switch waits until ${copy.chunkTable} is filled: give --database-url (or $DATABASE_URL) of the database to check it, or generate --switch to write it now (migrate refuses it while the table is not filled)`
    const fill = options.sizing.fill?.get(columnLabel(copy))
    if (!fill) return `${copy.chunkTable} is not in ${options.sizing.source} yet: run pgml-kit migrate, then ${copy.mode === 'queue' ? 'pgml-kit worker' : `pgml-kit backfill ${cli(copy)}`}, then generate again`
    if (fill.missing > 0) return `${copy.chunkTable} is ${pct(fill.withText, fill.missing)} filled (${fill.missing.toLocaleString('en-US')} of ${fill.withText.toLocaleString('en-US')} rows with text have no chunks yet): run ${copy.mode === 'queue' ? 'pgml-kit worker' : `pgml-kit backfill ${cli(copy)}`} before generating the switch`
    if (fill.deadLetters > 0) return `${fill.deadLetters} job(s) of ${copy.column} are dead-lettered: fix them, pgml-kit queue retry, run the worker, then generate again`
    // A shadow starts with every row queued: the switch waits until the rows that searches find in
    // the live table and would lose with it are only those in flight (rows written a moment ago, in
    // neither table yet, do not hold it up); migrate checks the same again (renderRefuseChunksUnfilled).
    // A row chunked for the live table a moment ago and not yet for the copy (its job queued) is in
    // flight: 1% of the rows and one may be, as migrate allows.
    const hidden = fill.hidden ?? 0
    if (hidden > Math.floor(fill.withText / 100) + 1) return `${copy.chunkTable} is ${pct(fill.withText, hidden)} filled (${hidden.toLocaleString('en-US')} of ${fill.withText.toLocaleString('en-US')} rows with text have chunks in the live table and none in it yet: switching now would hide them from searches): run ${copy.mode === 'queue' ? 'pgml-kit worker' : `pgml-kit backfill ${cli(copy)}`} until they are done, then generate again`
    return null
  }
}

/** The recorded state after its chunk switches: what the rest of the plan diffs against. */
export function applyChunkSwitches(recorded: DesiredState, switches: readonly ChunkSwitch[]): DesiredState {
  if (switches.length === 0) return recorded
  const sides = switches.flatMap((s) => [s.first, s.second])
  return { ...recorded, chunkedColumns: (recorded.chunkedColumns ?? []).map((c) => sides.find((s) => columnKey(s.from) === columnKey(c))?.to ?? c) }
}
