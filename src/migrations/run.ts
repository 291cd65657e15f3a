import pg from 'pg'
import { PG_MIGRATE_LOCK_ID, runner } from 'node-pg-migrate'
import { MigrationError, TargetError } from '../errors.js'
import type { MigrationSettings } from '../model/ir.js'
import { canEmbedInDatabase, detectCapabilities, type Capabilities } from '../db/capabilities.js'
import { lockMigrations, openTarget, type Target, type TargetOptions } from '../db/target.js'
import { quoteQualified } from '../sql/quote.js'
import { listMigrations, type MigrationOnDisk } from './files.js'
import { sqlLoaderStrategy } from './loader.js'

export interface AppliedMigration {
  readonly name: string
  readonly runOn: Date
}

export async function readApplied(client: pg.ClientBase, settings: MigrationSettings): Promise<AppliedMigration[]> {
  const { rows: exists } = await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [quoteQualified(settings.schema, settings.table)])
  if (!exists[0]?.ok) return []
  const { rows } = await client.query<{ name: string; run_on: Date }>(
    `SELECT name, run_on FROM ${quoteQualified(settings.schema, settings.table)} ORDER BY run_on, id`)
  return rows.map((r) => ({ name: r.name, runOn: r.run_on }))
}

export interface MigrateOptions extends TargetOptions {
  /** Absolute path of the migrations directory. */
  readonly dir: string
  readonly settings: MigrationSettings
  readonly direction?: 'up' | 'down'
  /** How many migrations to run (default: all pending for up, 1 for down). */
  readonly count?: number
  /** How long to wait for another migration run to finish (default 60 s). */
  readonly lockWaitMs?: number
  readonly log?: (message: string) => void
}

export interface MigrateResult {
  readonly target: string
  readonly direction: 'up' | 'down'
  readonly ran: readonly string[]
}

function selectToRun(files: readonly MigrationOnDisk[], applied: readonly AppliedMigration[], direction: 'up' | 'down', count?: number): MigrationOnDisk[] {
  const done = new Set(applied.map((a) => a.name))
  if (direction === 'up') {
    const pending = files.filter((f) => !done.has(f.name))
    return count === undefined ? pending : pending.slice(0, count)
  }
  const byName = new Map(files.map((f) => [f.name, f]))
  return [...applied].reverse().slice(0, count ?? 1).map((a) => byName.get(a.name)).filter((f): f is MigrationOnDisk => f !== undefined)
}

/** Refuses, before anything is changed, a run whose migrations the target cannot execute. */
export function assertTargetCanRun(toRun: readonly MigrationOnDisk[], capabilities: Capabilities, target: Target): void {
  const needPgml = toRun.filter((m) => m.directives.requires.includes('pgml'))
  if (needPgml.length > 0 && !canEmbedInDatabase(capabilities)) {
    throw new TargetError('PGML_MISSING',
      `${needPgml.map((m) => m.name).join(', ')} call${needPgml.length === 1 ? 's' : ''} pgml.embed, and ${target.description} has neither PostgresML (pgml) nor pgml_compat; nothing was changed`,
      {
        where: needPgml[0]?.path,
        hint: 'use embedding mode "queue" (pgml-kit worker embeds locally) or "app" for this target, or run it against a server with PostgresML or pgml_compat (see README: Targets)',
      })
  }
  if (toRun.length > 0 && !capabilities.vector.installed && !capabilities.vector.available) {
    throw new TargetError('PGVECTOR_MISSING', `${target.description} does not have the pgvector extension available; nothing was changed`,
      { hint: 'install pgvector on the server (scripts/provision-postgres.sh does it on Debian), or use the embedded default (no DATABASE_URL)' })
  }
}

/**
 * Applies (or reverts) migrations with node-pg-migrate, one transaction per file, after checking
 * that the target can run them. Concurrent runs wait for each other; none applies a file twice.
 *
 * @example
 * await migrate({ dir: config.migrationsDir, settings: config.migrations })
 */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const direction = options.direction ?? 'up'
  const release = await lockMigrations(options, options.lockWaitMs ?? 60_000).catch((error: unknown) => {
    throw new MigrationError('MIGRATION_LOCKED', 'another pgml-kit migrate is still running on the embedded database', { cause: error, hint: 'wait for it to finish and run migrate again' })
  })
  try {
    const target = await openTarget(options)
    try {
      const client = new pg.Client({ connectionString: target.url })
      await client.connect()
      try {
        await acquireAdvisoryLock(client, Date.now() + (options.lockWaitMs ?? 60_000))
        try {
          return await runLocked(client, target, direction, options)
        } finally {
          await client.query('SELECT pg_advisory_unlock($1)', [String(PG_MIGRATE_LOCK_ID)]).catch(() => undefined)
        }
      } finally {
        await client.end()
      }
    } finally {
      await target.close()
    }
  } finally {
    await release()
  }
}

/**
 * Takes node-pg-migrate's advisory lock (the same id, so plain node-pg-migrate runs are excluded
 * too) by polling. A session blocked in pg_advisory_lock() would sit in an open transaction, which
 * a concurrent CREATE INDEX CONCURRENTLY waits for — while holding the lock: a deadlock.
 */
async function acquireAdvisoryLock(client: pg.Client, deadline: number): Promise<void> {
  for (;;) {
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [String(PG_MIGRATE_LOCK_ID)])
    if (rows[0]?.ok) return
    if (Date.now() > deadline) {
      throw new MigrationError('MIGRATION_LOCKED', 'another migration run holds the migration lock on this database', { hint: 'wait for it to finish and run migrate again, or raise --lock-wait' })
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

async function runLocked(client: pg.Client, target: Target, direction: 'up' | 'down', options: MigrateOptions): Promise<MigrateResult> {
  const [files, applied, capabilities] = await Promise.all([
    listMigrations(options.dir), readApplied(client, options.settings), detectCapabilities(client),
  ])
  const toRun = selectToRun(files, applied, direction, options.count)
  if (direction === 'up') assertTargetCanRun(toRun, capabilities, target)
  if (toRun.length === 0) return { target: target.description, direction, ran: [] }
  const log = options.log ?? (() => undefined)
  let ran
  try {
    ran = await runner({
      dbClient: client,
      noLock: true,
      dir: options.dir,
      direction,
      count: toRun.length,
      migrationsTable: options.settings.table,
      migrationsSchema: options.settings.schema,
      checkOrder: true,
      singleTransaction: false,
      migrationLoaderStrategies: [sqlLoaderStrategy],
      log,
      logger: { debug: () => undefined, info: log, warn: log, error: log },
    })
  } catch (error) {
    // node-pg-migrate leaves a failed file's transaction open on a client it was given.
    await client.query('ROLLBACK').catch(() => undefined)
    const message = (error as Error).message
    throw new MigrationError('MIGRATION_FAILED', `migration failed on ${target.description}: ${message}`, {
      cause: error,
      hint: 'the failing file was rolled back (files outside a transaction can be run again as they are); fix the cause and run migrate again',
    })
  }
  return { target: target.description, direction, ran: ran.map((r) => r.name) }
}
