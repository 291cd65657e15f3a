import { checkSourceSql } from '../model/check-source-sql.js'
import { access, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { ConfigError, DatabaseMismatchError, PgmlKitError, PlanError } from '../errors.js'
import { checkAgainstDatabase, type LiveSchema } from '../plan/live-checks.js'
import type { LoadedConfig } from '../config/load.js'
import { isEmptyPlan, planChange, planOperations, type Plan } from '../plan/plan-migration.js'
import { renderMigrationFiles, type MigrationFile } from './render-files.js'
import { keepExistingNames, readSnapshot, sha256, writeSnapshot, type Snapshot } from './snapshot.js'
import { objectKey, type DesiredState } from '../model/ir.js'
import { sizeAutoParameters, type Sizing } from '../indexes/sizing.js'

export interface PlanResult {
  readonly plan: Plan
  readonly files: readonly MigrationFile[]
  readonly snapshot: Snapshot
  /** The state the migrations bring the database to (the config's, with existing objects' names kept). */
  readonly desired: DesiredState
  /** Given `live`: what could not be checked against it yet (a pending migration of yours may create it). */
  readonly notes: readonly string[]
}

export interface PlanFromConfigOptions {
  readonly name?: string
  readonly timestamp?: number
  /** Sizes of the tables from a database, for 'auto' index parameters, advice, IVFFlat deferral and staged model changes' switches. */
  readonly sizing?: Sizing
  /**
   * When a staged model change's switch is written: `when-filled` (default: the database given as
   * `sizing` says the new model's column is filled), `always` (`--switch`: the migration itself
   * refuses while it is not), `never`.
   */
  readonly switch?: 'never' | 'when-filled' | 'always'
  /** Drop the previous model's column of a switched change (`--allow-destructive`); otherwise it waits. */
  readonly dropPrevious?: boolean
  /**
   * A database to check the plan against (`--database-url`): what the migration's first checks
   * would refuse there is refused now, before anything is written (DatabaseMismatchError).
   */
  readonly live?: LiveSchema
}

/** What `generate` would write now: the diff of the snapshot and the config, as files. */
export async function planFromConfig(config: LoadedConfig, options: PlanFromConfigOptions = {}): Promise<PlanResult> {
  const sourceIssues = await checkSourceSql(config.state)
  if (sourceIssues.length > 0) throw new ConfigError(sourceIssues, relative(config.root, config.path) || 'pgml-kit.config.ts')
  const snapshot = await readSnapshot(config.migrationsDir)
  const wanted = sizeAutoParameters(snapshot.state, keepExistingNames(snapshot.state, config.state), options.sizing, config.renames, config.tableRenames)
  const { plan, desired } = planChange(snapshot.state, wanted, {
    renames: config.renames, tableRenames: config.tableRenames, switch: options.switch ?? 'when-filled', dropPrevious: options.dropPrevious ?? false,
    ...(options.sizing ? { sizing: options.sizing } : {}),
  })
  const configFile = relative(config.root, config.path) || 'pgml-kit.config.ts'
  const checked = options.live ? checkAgainstDatabase(plan.checks, options.live) : { problems: [], notes: [] }
  if (checked.problems.length > 0) throw new DatabaseMismatchError(checked.problems, configFile, options.live!.source, checked.notes)
  const files = renderMigrationFiles(plan, {
    name: options.name ?? 'pgml-kit',
    timestamp: options.timestamp ?? Date.now(),
    settings: config.migrations,
    configFile,
  })
  return { plan, files, snapshot, desired, notes: checked.notes }
}

/**
 * What the config means for the database now: its state as the generated migrations have it — in
 * a staged model change, the live column with the indexes it was built with, beside the copy with
 * the config's. `status`, `index check` and `index repair` look at this, not at the config alone
 * (which names the new model and its indexes before the switch). The config's own state when it
 * cannot be planned (a change generate would refuse).
 */
export async function generatedState(config: LoadedConfig): Promise<DesiredState> {
  try {
    return (await planFromConfig(config, { switch: 'never', dropPrevious: false })).desired
  } catch (error) {
    if (error instanceof PlanError) return config.state
    throw error
  }
}

export interface GenerateResult {
  readonly written: readonly string[]
  readonly plan: Plan
  /** Given `live`: what could not be checked against it yet. */
  readonly notes: readonly string[]
}

/**
 * Writes the migration files for the difference between the last generated state and the config,
 * and records the new state in the snapshot.
 *
 * @example
 * const { written } = await generate(await loadConfig(), { name: 'add-doc-embeddings' })
 */
export async function generate(config: LoadedConfig, options: PlanFromConfigOptions & { name: string; allowDestructive?: boolean }): Promise<GenerateResult> {
  const { plan, files, snapshot, desired, notes } = await planFromConfig(config, { ...options, dropPrevious: options.dropPrevious ?? options.allowDestructive ?? false })
  if (isEmptyPlan(plan)) return { written: [], plan, notes }
  const destructive = planOperations(plan).filter((op) => op.safety === 'destructive')
  if (destructive.length > 0 && !options.allowDestructive) {
    throw new PlanError('DESTRUCTIVE_CHANGE', ['the config removes data; generate writes such a migration only when told to:', ...destructive.map((op) => `  - ${op.summary}${op.notes.length ? ` (${op.notes.join('; ')})` : ''}`)], {
      hint: 'review it with pgml-kit plan, then: pgml-kit generate --name <change> --allow-destructive',
    })
  }
  await mkdir(config.migrationsDir, { recursive: true })
  for (const file of files) {
    await writeFile(join(config.migrationsDir, file.fileName), file.content, { flag: 'wx' })
  }
  // A deferred index is not recorded as generated: the next generate plans it again.
  const deferred = new Set(plan.deferred.map((d) => objectKey(d.index.schema, d.index.name)))
  await writeSnapshot(config.migrationsDir, {
    formatVersion: 1,
    state: { ...desired, indexes: desired.indexes.filter((i) => !deferred.has(objectKey(i.schema, i.name))) },
    files: [...snapshot.files, ...files.map((f) => ({ name: f.fileName, sha256: sha256(f.content) }))],
    ...(plan.deferred.length > 0 ? { deferred: plan.deferred.map((d) => ({ index: `${d.index.schema}.${d.index.name}`, reason: d.reason })) } : {}),
  })
  return { written: files.map((f) => join(config.migrationsDir, f.fileName)), plan, notes }
}

export interface CheckResult {
  readonly ok: boolean
  readonly problems: readonly string[]
  /**
   * Not disagreements, but not done either: indexes generate left out until their column has data,
   * and staged model changes waiting for their next stage.
   */
  readonly waiting: readonly string[]
}

/**
 * `generate --check`: do the config and the migrations agree? Fails when the config has changes
 * no migration was generated for, or when a generated file is missing or was edited.
 */
export async function checkGenerated(config: LoadedConfig): Promise<CheckResult> {
  // A staged model change in progress is waiting, not out of date: the check never advances one.
  const { plan, snapshot } = await planFromConfig(config, { switch: 'never', dropPrevious: false })
  const problems: string[] = []
  const waiting = new Map((snapshot.deferred ?? []).map((d) => [d.index, d.reason]))
  for (const op of planOperations(plan)) {
    if (op.kind === 'create-vector-index' && op.index !== undefined && waiting.has(op.index)) continue
    problems.push(`not generated yet: ${op.summary}`)
  }
  for (const entry of snapshot.files) {
    const path = join(config.migrationsDir, entry.name)
    try {
      await access(path)
    } catch {
      problems.push(`generated migration ${entry.name} is missing from ${config.migrationsDir}`)
      continue
    }
    if (sha256(await readFile(path, 'utf8')) !== entry.sha256) {
      problems.push(`generated migration ${entry.name} was changed after it was generated; restore it, or move the change into the config`)
    }
  }
  return {
    ok: problems.length === 0, problems,
    waiting: [...[...waiting].map(([index, reason]) => `${index}: ${reason}`), ...plan.stages.filter((s) => s.waiting).map((s) => `${s.column}: ${s.message}`)],
  }
}

export function assertMigrationName(name: string | undefined): string {
  if (!name || !name.trim()) {
    throw new PgmlKitError('NAME_REQUIRED', 'generate needs a name for the migration', { hint: 'pgml-kit generate --name add-doc-embeddings' })
  }
  return name
}
