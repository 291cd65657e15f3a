import pg from 'pg'
import { MigrationError, TargetError } from '../errors.js'
import type { MigrationSettings } from '../model/ir.js'
import { canEmbedInDatabase, detectCapabilities, type Capabilities } from '../db/capabilities.js'
import { isConnectionLost } from '../db/connect.js'
import { lockMigrations, openTarget, type Target, type TargetOptions } from '../db/target.js'
import { quoteIdent } from '../sql/quote.js'
import { MIGRATION_LOCK_HOLDER, RELATION_EXISTS, RELEASE_MIGRATION_LOCK, TRY_MIGRATION_LOCK, UNTRUSTED_RUNTIME_OBJECTS, renderAppliedMigrations } from '../sql/render-introspection.js'
import { RESET_MIGRATION_SETTINGS } from './render-files.js'
import { PIN_SEARCH_PATH, PIN_SEARCH_PATH_LOCAL, SEARCH_PATH_WITH_VECTOR, SET_SEARCH_PATH } from '../sql/render-vector-schema.js'
import { listMigrations, type MigrationOnDisk } from './files.js'
import type { IndexBuildProgress } from './wait-monitor.js'
import { isMigrationStep, sqlLoaderStrategy, sqlSection } from './loader.js'
import { failedLine, originOf } from './origin.js'
import { readFile } from 'node:fs/promises'
import { watchSession } from './wait-monitor.js'

export interface AppliedMigration {
  readonly name: string
  readonly runOn: Date
}

export async function readApplied(client: pg.ClientBase, settings: MigrationSettings): Promise<AppliedMigration[]> {
  const { rows: exists } = await client.query<{ ok: boolean }>(RELATION_EXISTS, [settings.schema, settings.table])
  if (!exists[0]?.ok) return []
  const { rows } = await client.query<{ name: string; run_on: Date }>(
    renderAppliedMigrations(settings.schema, settings.table))
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
  /** Told what a migration waits for (on a server), e.g. the transactions a concurrent index build waits out. */
  readonly onWait?: (message: string) => void
  /** Told each NOTICE or WARNING the server raises while a migration runs, as it comes. */
  readonly onNotice?: (notice: MigrationNotice) => void
  /** Told, about twice a second, how a concurrent index build is getting on (servers only). */
  readonly onProgress?: (progress: IndexBuildProgress) => void
}

/**
 * A NOTICE or WARNING the server raised during a migration, such as pgvector's "ivfflat index
 * created with little data". The "does not exist, skipping" / "already exists, skipping" notices
 * of the generated files' IF [NOT] EXISTS guards are expected and left out.
 */
export interface MigrationNotice {
  /** The migration file (name without extension) that was running. */
  readonly migration: string | null
  readonly severity: string
  readonly message: string
  readonly detail?: string
  readonly hint?: string
}

export interface MigrateResult {
  readonly target: string
  readonly direction: 'up' | 'down'
  readonly ran: readonly string[]
  /** What the server said while the migrations ran (see MigrationNotice). */
  readonly notices: readonly MigrationNotice[]
}

const EXPECTED_NOTICE = /(does not exist|already exists), skipping$/

/** Collects the server's notices on `client`, attributed to the migration node-pg-migrate says it runs. */
function collectNotices(client: pg.Client, onNotice?: (notice: MigrationNotice) => void) {
  const notices: MigrationNotice[] = []
  let current: string | null = null
  const listener = (n: { readonly message?: string; readonly severity?: string; readonly detail?: string; readonly hint?: string }) => {
    if (!n.message || EXPECTED_NOTICE.test(n.message)) return
    const notice: MigrationNotice = {
      migration: current, severity: n.severity ?? 'NOTICE', message: n.message,
      ...(n.detail ? { detail: n.detail } : {}), ...(n.hint ? { hint: n.hint } : {}),
    }
    notices.push(notice)
    onNotice?.(notice)
  }
  client.on('notice', listener)
  return {
    notices,
    /** node-pg-migrate's log line for each file: "### MIGRATION <name> (UP) ###". */
    sawLog(message: string) {
      const match = /^### MIGRATION (.+) \((UP|DOWN)\) ###$/.exec(message)
      if (match) current = match[1] ?? null
    },
    /** The file node-pg-migrate last said it runs (null before the first). */
    running: () => current,
    stop: () => client.removeListener('notice', listener),
  }
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
export function assertTargetCanRun(toRun: readonly MigrationOnDisk[], direction: 'up' | 'down', capabilities: Capabilities, target: Target): void {
  const needPgml = toRun.filter((m) => (direction === 'up' ? m.directives.requires : m.directives.downRequires).includes('pgml'))
  if (needPgml.length > 0 && !canEmbedInDatabase(capabilities)) {
    throw new TargetError('PGML_MISSING',
      `${direction === 'up' ? 'applying' : 'reverting'} ${needPgml.map((m) => m.name).join(', ')} calls pgml.embed, and ${target.description} has neither PostgresML (pgml) nor pgml_compat; nothing was changed`,
      {
        where: needPgml[0]?.path,
        hint: 'use embedding mode "queue" (pgml-kit worker embeds locally) or "app" for this target, or run it against a server with PostgresML or pgml_compat (see README: Targets)',
      })
  }
  if (needPgml.length > 0) {
    const files = needPgml.map((m) => m.name).join(', ')
    const role = quoteIdent(capabilities.role)
    if (capabilities.pgml === 'installable' && !capabilities.superuser) {
      throw new TargetError('PGML_NOT_INSTALLED',
        `${direction === 'up' ? 'applying' : 'reverting'} ${files} calls pgml.embed; ${target.description} has pgml_compat (or PostgresML) available but not installed in this database, and installing it needs a superuser (it brings the untrusted language plpython3u) — ${role} is not one; nothing was changed`,
        { where: needPgml[0]?.path, hint: `an administrator runs, in this database: CREATE EXTENSION pgml_compat CASCADE; GRANT USAGE ON SCHEMA pgml TO ${role} WITH GRANT OPTION;  (README: Security model)` })
    }
    if (capabilities.pgml !== 'installable' && capabilities.pgmlUsage === false) {
      throw new TargetError('PGML_NO_USAGE',
        `${direction === 'up' ? 'applying' : 'reverting'} ${files} calls pgml.embed, and ${role} may not use schema pgml (installed by an administrator, with no USAGE granted to ${role}); nothing was changed`,
        { where: needPgml[0]?.path, hint: `an administrator runs: GRANT USAGE ON SCHEMA pgml TO ${role} WITH GRANT OPTION;  — WITH GRANT OPTION lets the migrations pass USAGE on to the roles in roles.app and roles.worker (without it they leave that to the administrator, and say so). README: Security model` })
    }
  }
  if (direction === 'up' && toRun.length > 0 && !capabilities.vector.installed && !capabilities.vector.available) {
    throw new TargetError('PGVECTOR_MISSING', `${target.description} does not have the pgvector extension available; nothing was changed`,
      { hint: 'install pgvector on the server (Debian: postgresql-17-pgvector; the docker/postgres image has it), or use the embedded default (no DATABASE_URL)' })
  }
  const { schema, usable } = capabilities.vector
  if (toRun.length > 0 && schema !== null && !usable) {
    throw new TargetError('PGVECTOR_SCHEMA_UNUSABLE',
      `pgvector is installed in schema ${schema} of ${target.description}, and role ${capabilities.role} may not use that schema, so the migrations cannot find its types and operator classes; nothing was changed`,
      { hint: `GRANT USAGE ON SCHEMA ${quoteIdent(schema)} TO ${quoteIdent(capabilities.role)}; (as its owner or a superuser), then run migrate again` })
  }
}

/**
 * Migration files name pgvector's types and operator classes plainly (they are written without a
 * database). Where pgvector lives in a schema the session does not search (`CREATE EXTENSION
 * vector SCHEMA extensions`), that schema is appended to this session's search_path for the run,
 * and the previous search_path is put back afterwards. Returns how to put it back, or null.
 */
async function searchVectorSchema(client: pg.Client, log: (message: string) => void): Promise<(() => Promise<void>) | null> {
  const { rows } = await client.query<{ schema: string; previous: string; wanted: string }>(SEARCH_PATH_WITH_VECTOR)
  const row = rows[0]
  if (!row) return null
  await client.query(SET_SEARCH_PATH, [row.wanted])
  log(`pgvector is installed in schema ${row.schema}: search_path for this run is ${row.wanted}`)
  return async () => {
    await client.query(SET_SEARCH_PATH, [row.previous]).catch(() => undefined)
  }
}

/**
 * Refuses, before anything runs, when pgml-kit's runtime schema, the migration history table or a
 * trigger on them belongs to a role the migrating role does not trust. Migrations write those
 * tables, so their triggers (and the definer trigger functions that write the queue) would run code
 * that role controls with the migrating role's rights: a role with CREATE on the database that made
 * schema pgml_kit first, or made the history table with a trigger, would run as a superuser the
 * next time one migrates.
 */
async function assertTrustedRuntime(client: pg.ClientBase, settings: MigrationSettings, capabilities: Capabilities): Promise<void> {
  const { rows } = await client.query<{ what: string; owner: string; superuser: boolean }>(UNTRUSTED_RUNTIME_OBJECTS, [settings.schema, settings.table])
  if (rows.length === 0) return
  const owners = [...new Set(rows.map((r) => r.owner))]
  const me = quoteIdent(capabilities.role)
  throw new MigrationError('RUNTIME_NOT_TRUSTED',
    `${rows.map((r) => `${r.what} belongs to ${quoteIdent(r.owner)}`).join('; ')}: migrating as ${me} would run code ${owners.map(quoteIdent).join(', ')} control${owners.length === 1 ? 's' : ''} with ${me}'s rights${capabilities.superuser ? ' (a superuser)' : ''}; nothing was changed`,
    {
      where: 'migrations.schema / migrations.table, schema pgml_kit',
      hint: capabilities.superuser
        ? `run pgml-kit migrate as ${owners.map(quoteIdent).join(' or ')} (the role that owns this project's objects); or, if you created these objects and trust them, make a superuser own them (ALTER ... OWNER TO ${me}) after checking their triggers`
        : `run pgml-kit migrate as ${owners.map(quoteIdent).join(' or ')}; or, if ${owners.length === 1 ? 'that role is' : 'those roles are'} yours to trust, GRANT ${me} TO ${owners.map(quoteIdent).join(', ')} (then ${owners.length === 1 ? 'it holds' : 'they hold'} ${me}'s rights already)`,
    })
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
  // node-pg-migrate loads only when migrations run: importing it takes a tenth of a second every other command can skip.
  const nodePgMigrate = await import('node-pg-migrate')
  const lockId = String(nodePgMigrate.PG_MIGRATE_LOCK_ID)
  const release = await lockMigrations(options, options.lockWaitMs ?? 60_000)
  try {
    const target = await openTarget(options)
    try {
      const client = await target.connect('pgml-kit migrate')
      try {
        await acquireAdvisoryLock(client, lockId, Date.now() + (options.lockWaitMs ?? 60_000), options.onWait)
        const stopWatching = await watchSession(target, client, options)
        try {
          return await runLocked(client, target, direction, options, nodePgMigrate.runner)
        } finally {
          await stopWatching()
          await client.query(RELEASE_MIGRATION_LOCK, [lockId]).catch(() => undefined)
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
async function acquireAdvisoryLock(client: pg.Client, lockId: string, deadline: number, onWait?: (message: string) => void): Promise<void> {
  let told = false
  for (;;) {
    const { rows } = await client.query<{ ok: boolean }>(TRY_MIGRATION_LOCK, [lockId])
    if (rows[0]?.ok) return
    const holder = (told && Date.now() <= deadline) ? undefined : await describeLockHolder(client, lockId)
    if (Date.now() > deadline) {
      throw new MigrationError('MIGRATION_LOCKED', `another migration run holds the migration lock on this database${holder ? `: ${holder.who}` : ''}`, { hint: holder?.orphan ?? 'wait for it to finish and run migrate again, or raise --lock-wait' })
    }
    if (!told && holder) onWait?.(`waiting for the migration lock, held by ${holder.who}${holder.orphan ? ` — ${holder.orphan}` : ''}`)
    told = true
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

/**
 * Who holds the migration lock (a session-level advisory lock): its pid and what it runs. A
 * `pgml-kit migrate` session still running a statement may be one whose client was killed: the
 * server goes on with the statement (a concurrent index build can take minutes) and keeps the lock
 * until it ends. Said so, with the statement that stops it.
 */
async function describeLockHolder(client: pg.Client, lockId: string): Promise<{ who: string; orphan: string | null } | undefined> {
  const { rows } = await client.query<{ pid: number; application: string; state: string | null; seconds: number | null; query: string }>(MIGRATION_LOCK_HOLDER, [lockId]).catch(() => ({ rows: [] }))
  const h = rows[0]
  if (!h) return undefined
  const who = `pid ${h.pid} (${h.application || 'no application name'}, ${h.state ?? 'unknown state'}${h.seconds === null ? '' : ` for ${h.seconds} s`}${h.query ? `: ${h.query}` : ''})`
  const orphan = h.application.startsWith('pgml-kit migrate') && h.state === 'active'
    ? `if the pgml-kit migrate that started it is gone (killed), the server still runs its statement and holds the lock until it ends; it ends by itself, or stop it now with SELECT pg_cancel_backend(${h.pid}); (a concurrent index build stopped halfway leaves an INVALID index the next migrate rebuilds)`
    : null
  return { who, orphan }
}

async function runLocked(client: pg.Client, target: Target, direction: 'up' | 'down', options: MigrateOptions, runner: typeof import('node-pg-migrate').runner): Promise<MigrateResult> {
  const [files, applied, capabilities] = await Promise.all([
    listMigrations(options.dir), readApplied(client, options.settings), detectCapabilities(client),
  ])
  const toRun = selectToRun(files, applied, direction, options.count)
  assertTargetCanRun(toRun, direction, capabilities, target)
  if (toRun.length === 0) return { target: target.description, direction, ran: [], notices: [] }
  await assertTrustedRuntime(client, options.settings, capabilities)
  const notices = collectNotices(client, options.onNotice)
  const log = (message: string) => {
    notices.sawLog(message)
    options.log?.(message)
  }
  const restoreSearchPath = await searchVectorSchema(client, log)
  try {
    return await runFiles(client, target, direction, options, runner, toRun, notices, log)
  } finally {
    await restoreSearchPath?.()
  }
}

async function runFiles(
  client: pg.Client, target: Target, direction: 'up' | 'down', options: MigrateOptions, runner: typeof import('node-pg-migrate').runner,
  toRun: readonly MigrationOnDisk[], notices: ReturnType<typeof collectNotices>, log: (message: string) => void,
): Promise<MigrateResult> {
  let ran
  // node-pg-migrate uses nothing of a client it is given but query(): the first statement that fails is recorded.
  let failedSql: string | null = null
  const steps = new Set<string>()
  // Whether node-pg-migrate has a transaction open (it sends BEGIN, COMMIT and ROLLBACK through query()).
  let inTransaction = false
  const recording = {
    query: (text: string | { text: string }, values?: unknown[]) => {
      const sql = typeof text === 'string' ? text : text.text
      const control = /^\s*(BEGIN|START TRANSACTION|COMMIT|END|ROLLBACK)\s*;?\s*$/i.exec(sql)?.[1]?.toUpperCase()
      if (control) inTransaction = control === 'BEGIN' || control === 'START TRANSACTION'
      // node-pg-migrate's own statements on its history table run pinned; the migrations' own — the
      // SQL files' steps and whatever a hand-written JavaScript migration sends — keep the session's search_path.
      const run = !isMigrationStep(steps, sql) && isBookkeeping(sql, options.settings) ? runPinned(client, sql, values, inTransaction) : client.query(sql, values)
      return run.catch((error: unknown) => {
        failedSql ??= sql
        throw error
      })
    },
  } as unknown as pg.Client
  try {
    ran = await runner({
      dbClient: recording,
      noLock: true,
      dir: options.dir,
      direction,
      count: toRun.length,
      migrationsTable: options.settings.table,
      migrationsSchema: options.settings.schema,
      createMigrationsSchema: true,
      checkOrder: true,
      singleTransaction: false,
      migrationLoaderStrategies: [sqlLoaderStrategy(steps)],
      log,
      logger: { debug: () => undefined, info: log, warn: log, error: log },
    })
  } catch (error) {
    notices.stop()
    // node-pg-migrate leaves a failed file's transaction open on a client it was given, and a
    // non-transactional file's session settings in place (on the embedded database, one session
    // shared by every connection): both are cleaned up before anything else runs.
    await client.query('ROLLBACK').catch(() => undefined)
    await client.query(RESET_MIGRATION_SETTINGS).catch(() => undefined)
    const message = (error as Error).message
    if (message.startsWith('Unable to ensure migrations table')) {
      throw new MigrationError('MIGRATION_TABLE_FAILED', `migrate could not create or check its history table ${options.settings.schema}.${options.settings.table} on ${target.description}: ${message.split('\n')[0]}`, {
        cause: error, where: 'migrations.table / migrations.schema',
        hint: 'no migration ran; check that this role may create the table (and its schema) or that it exists with node-pg-migrate\'s columns',
      })
    }
    // Which files are applied now. After a lost connection, read on a new one (the old one answers
    // nothing); if none can be had, the state is unknown and said to be, not guessed.
    const lost = isConnectionLost(error) || isConnectionLost((error as { cause?: unknown }).cause)
    const readAfter = async (): Promise<Set<string> | null> => {
      if (!lost) return new Set((await readApplied(client, options.settings).catch(() => [])).map((a) => a.name))
      const fresh = await target.connect('pgml-kit migrate').catch(() => null)
      if (!fresh) return null
      try {
        return new Set((await readApplied(fresh, options.settings)).map((a) => a.name))
      } catch {
        return null
      } finally {
        await fresh.end().catch(() => undefined)
      }
    }
    const after = await readAfter()
    const running = notices.running()
    // The file node-pg-migrate said it runs; else the first the history does not show done.
    const failed = toRun.find((m) => m.name === running) ?? (after === null ? undefined : direction === 'up' ? toRun.find((m) => !after.has(m.name)) : toRun.find((m) => after.has(m.name)))
    const isDone = (name: string) => after !== null && (direction === 'up' ? after.has(name) : !after.has(name))
    const done = toRun.filter((m) => isDone(m.name) && m.name !== failed?.name).map((m) => m.name)
    const rerun = after === null
      ? `which files are ${direction === 'up' ? 'applied' : 'reverted'} could not be read (the connection is gone and no new one answered); run pgml-kit status when the database is back, then migrate again`
      : failed && isDone(failed.name)
        ? `${failed.name} was ${direction === 'up' ? 'applied' : 'reverted'} before the connection was lost (its commit reached the database)`
        : failed?.directives.noTransaction
          ? `${failed.name} runs outside a transaction: the statements before the failing one stay done, and it is safe to run again as it is`
          : `${failed?.name ?? 'the failing file'} was rolled back as a whole`
    // The database's own hint first: pgml-kit's checks say there what to run.
    const said = (error as { hint?: string }).hint
    const from = failed ? await failedOrigin(failed, direction, failedSql, error) : null
    const origin = from ? ` (in the statements generated from ${from.origin}${from.line ? `, at: ${from.line}` : ''})` : ''
    throw new MigrationError('MIGRATION_FAILED', `migration ${failed?.name ?? ''} failed on ${target.description}: ${message}${origin}`, {
      cause: error, where: failed?.path,
      hint: `${said ? `${said}. ` : ''}${rerun}${done.length > 0 ? `; ${done.length === 1 ? 'the file' : `the ${done.length} files`} before it stay${done.length === 1 ? 's' : ''} ${direction === 'up' ? 'applied' : 'reverted'} (${done.length <= 5 ? done.join(', ') : `${done.slice(0, 2).join(', ')} … ${done.at(-1)}`})` : ''}. ${lost ? 'Run migrate again when the database answers' : 'Fix the cause and run migrate again'}`,
    })
  }
  notices.stop()
  return { target: target.description, direction, ran: ran.map((r) => r.name), notices: notices.notices }
}

/**
 * Whether `sql` is one of node-pg-migrate's own statements on its history table (node-pg-migrate
 * 9: whether the table exists and has its primary key, creating it, reading it, the row each
 * migration adds or deletes, creating its schema).
 */
export function isBookkeeping(sql: string, settings: MigrationSettings): boolean {
  const table = `"${settings.schema}"."${settings.table}"`
  return sql.includes(table) || /^SELECT (table_name|constraint_name) FROM information_schema\.(tables|table_constraints) WHERE table_schema = '/.test(sql)
    || sql === `CREATE SCHEMA IF NOT EXISTS "${settings.schema}"`
}

/**
 * node-pg-migrate's own statements (its history table: whether it exists and has its primary key,
 * which migrations ran, the row each migration adds or deletes) run with search_path set to
 * pg_catalog alone. They compare `information_schema` columns (varchar domains) and the history
 * table's varchar names with literals, for which PostgreSQL has no exact built-in operator: with
 * the session's search_path, an `=(varchar, varchar)` that a role with CREATE on a schema on it had
 * defined would run as the migrating role. The migrations' own statements keep the session's
 * search_path (hand-written files rely on it). Inside a transaction that then fails, the rollback
 * puts the search_path back by itself. Outside one, the statement runs in a transaction of its own
 * with the search_path pinned for that transaction only: on the embedded database every
 * connection shares one session, and a session-wide pin would reach another connection's
 * statements between this one's (a worker's `vector` cast found no type).
 */
async function runPinned(client: pg.Client, sql: string, values: unknown[] | undefined, inTransaction: boolean): Promise<pg.QueryResult> {
  if (inTransaction) {
    const { rows } = await client.query<{ previous: string }>(PIN_SEARCH_PATH)
    const result = await client.query(sql, values)
    await client.query(SET_SEARCH_PATH, [rows[0]?.previous ?? ''])
    return result
  }
  await client.query('BEGIN')
  try {
    await client.query(PIN_SEARCH_PATH_LOCAL)
    const result = await client.query(sql, values)
    await client.query('COMMIT')
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

/**
 * Which config object the statement that failed in `file` was generated from (see origin.ts), and
 * the line it failed at. Null for files that do not say (hand-written, or generated before
 * files did), and for a statement of a file run as one query that holds several objects' steps.
 */
async function failedOrigin(file: MigrationOnDisk, direction: 'up' | 'down', statement: string | null, error: unknown): Promise<{ origin: string; line: string | null } | null> {
  if (!file.path.endsWith('.sql')) return null
  const text = sqlSection(await readFile(file.path, 'utf8').catch(() => ''), direction)
  if (!text) return null
  const found = statement !== null && statement !== text && text.includes(statement) ? statement : null
  const origin = originOf(text, found)
  if (origin === null) return null
  const position = Number((error as { position?: unknown }).position)
  return { origin, line: found === null ? null : failedLine(found, Number.isInteger(position) && position > 0 ? position : null) }
}
