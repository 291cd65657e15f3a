import type { MigrationSettings } from '../model/ir.js'
import type { Operation, SafetyClass } from '../plan/operation.js'
import type { Plan } from '../plan/plan-migration.js'
import { commentText, quoteLiteral } from '../sql/quote.js'
import { DOWN_REQUIRES_PGML, GENERATED_HEADER, NO_TRANSACTION, REQUIRES_PGML } from './directives.js'
import { renderOrigin } from './origin.js'

export interface MigrationFile {
  /** node-pg-migrate's migration name: the file name without `.sql`. */
  readonly name: string
  readonly fileName: string
  readonly content: string
  readonly transactional: boolean
  readonly requiresPgml: { readonly up: boolean; readonly down: boolean }
  readonly operations: readonly Operation[]
}

export interface RenderFilesOptions {
  /** What the user called this change (`--name`); turned into a file-name slug. */
  readonly name: string
  /** Millisecond timestamp of the first file; later files of the same plan get +1, +2, ... */
  readonly timestamp: number
  readonly settings: MigrationSettings
  readonly configFile?: string
}

const SAFETY_LABEL: Record<SafetyClass, string> = {
  safe: '[safe]',
  'slows-writes': '[slows writes]',
  privileged: '[superuser]',
  'needs-backfill': '[needs backfill]',
  'rewrites-or-locks': '[rewrites/locks]',
  destructive: '[DESTRUCTIVE]',
}

export function slugify(name: string): string {
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60)
  return slug || 'migration'
}

function header(operations: readonly Operation[], transactional: boolean, configFile: string): string {
  const lines = [`${GENERATED_HEADER}${commentText(configFile)}. Review it before it runs; to change it, change the config and generate again.`]
  if (!transactional) lines.push(NO_TRANSACTION)
  if (operations.some((op) => op.requiresPgml.up)) lines.push(REQUIRES_PGML)
  if (operations.some((op) => op.requiresPgml.down)) lines.push(DOWN_REQUIRES_PGML)
  lines.push('--')
  lines.push(transactional
    ? '-- Runs in one transaction: if any statement fails, nothing of it stays.'
    : '-- Runs outside a transaction (CREATE/DROP INDEX CONCURRENTLY cannot run inside one), statement by statement. Safe to run again after a failure.')
  lines.push('--')
  for (const op of operations) {
    // Summaries and notes carry names from the config: escaped, so each stays one comment line.
    lines.push(`-- ${SAFETY_LABEL[op.safety].padEnd(17)} ${commentText(op.summary)}`)
    for (const note of op.notes) lines.push(`--${' '.repeat(19)}note: ${commentText(note)}`)
  }
  return lines.join('\n')
}

/** What a non-transactional file sets for its session, reset again by it, and by migrate if the file fails halfway. */
export const RESET_MIGRATION_SETTINGS = 'RESET statement_timeout; RESET lock_timeout; RESET maintenance_work_mem; RESET max_parallel_maintenance_workers'

function timeouts(settings: MigrationSettings, transactional: boolean): { open: string[]; close: string[] } {
  if (transactional) {
    return {
      open: [`SET LOCAL lock_timeout = ${quoteLiteral(settings.lockTimeout)};`, `SET LOCAL statement_timeout = ${quoteLiteral(settings.statementTimeout)};`],
      close: [],
    }
  }
  return {
    // A concurrent build's last phase waits for every transaction older than it, however unrelated:
    // a short lock_timeout would throw away a finished build. Its own limits (default: wait).
    open: [`SET lock_timeout = ${quoteLiteral(settings.indexLockTimeout)};`, `SET statement_timeout = ${quoteLiteral(settings.indexStatementTimeout)};`],
    close: ['RESET statement_timeout;', 'RESET lock_timeout;'],
  }
}

/**
 * The steps' statements in order, each step's first preceded by the config object it comes from
 * when that differs from the step before's (see origin.ts).
 */
function withOrigins(steps: readonly { readonly origin: string | null; readonly statements: readonly string[] }[]): string[] {
  const out: string[] = []
  let current: string | null | undefined
  for (const { origin, statements } of steps) {
    const [first, ...rest] = statements
    if (first === undefined) continue
    out.push(origin === current ? first : `${renderOrigin(origin)}\n${first}`, ...rest)
    current = origin
  }
  return out
}

export function renderMigrationSql(operations: readonly Operation[], transactional: boolean, settings: MigrationSettings, configFile = 'pgml-kit.config.ts'): string {
  const { open, close } = timeouts(settings, transactional)
  const up = withOrigins(operations.map((op) => ({ origin: op.origin ?? null, statements: op.up })))
  const down = withOrigins([...operations].reverse().map((op) => ({ origin: op.origin ?? null, statements: op.down })))
  const section = (statements: readonly string[]) => [open.join('\n'), ...statements, ...(close.length ? [close.join('\n')] : [])].join('\n\n')
  return `${header(operations, transactional, configFile)}

-- Up Migration
${section(up)}

-- Down Migration
${section(down)}
`
}

/**
 * Turns a plan into migration files in node-pg-migrate's SQL format, in the order they must run.
 * Pure: same plan, name and timestamp → byte-identical files.
 */
export function renderMigrationFiles(plan: Plan, options: RenderFilesOptions): MigrationFile[] {
  const slug = slugify(options.name)
  const configFile = options.configFile ?? 'pgml-kit.config.ts'
  const groups: { suffix: string; operations: Operation[]; transactional: boolean }[] = []
  for (const op of plan.before) groups.push({ suffix: `--${op.kind}`, operations: [op], transactional: false })
  if (plan.main.length > 0) groups.push({ suffix: '', operations: [...plan.main], transactional: true })
  for (const op of plan.after) groups.push({ suffix: `--${op.kind}`, operations: [op], transactional: false })

  return groups.map((group, i) => {
    // Every file has its own timestamp, which is also the order node-pg-migrate runs them in.
    const base = `${options.timestamp + i}_${slug}${group.suffix}`
    return {
      name: base,
      fileName: `${base}.sql`,
      content: renderMigrationSql(group.operations, group.transactional, options.settings, configFile),
      transactional: group.transactional,
      requiresPgml: { up: group.operations.some((op) => op.requiresPgml.up), down: group.operations.some((op) => op.requiresPgml.down) },
      operations: group.operations,
    }
  })
}
