import { parseSync } from 'libpg-query'
import type { MigrationSettings } from '../model/ir.js'
import type { Sizing } from '../indexes/sizing.js'
import type { MigrationFile } from '../migrations/render-files.js'
import type { Operation, OperationKind, SafetyClass } from './operation.js'
import type { Plan } from './plan-migration.js'
import { loadParser } from '../migrations/split-statements.js'

/**
 * `plan --format markdown`: the review document a DBA approves a pull request from. Every
 * statement is parsed with PostgreSQL's parser and classed by what PostgreSQL does for it: the
 * lock it takes and on what, how long it runs (instant, proportional to rows, an index build),
 * and the privilege it needs. The classes follow PostgreSQL's documentation of ALTER TABLE,
 * CREATE INDEX, CREATE TRIGGER and explicit locking; `test/integration/review-locks.test.ts`
 * checks them against pg_locks on a real database.
 */

export type LockMode = 'ACCESS EXCLUSIVE' | 'SHARE ROW EXCLUSIVE' | 'SHARE' | 'SHARE UPDATE EXCLUSIVE' | 'ROW EXCLUSIVE'

/** Locks that stop writers (every mode from SHARE up conflicts with ROW EXCLUSIVE). */
const BLOCKS_WRITES: ReadonlySet<LockMode> = new Set(['ACCESS EXCLUSIVE', 'SHARE ROW EXCLUSIVE', 'SHARE'])

export type Duration = 'instant' | 'rows' | 'rewrite' | 'index build' | 'conditional'

export interface StatementFacts {
  /** The statement's first line (comments dropped; for a DO block, its first statement). */
  readonly text: string
  /** The whole statement. */
  readonly sql: string
  /** The lock on an existing relation, or null (new objects, catalog rows, settings). */
  readonly lock: { readonly mode: LockMode; readonly on: string } | null
  readonly duration: Duration
  /** `schema.table` whose rows decide how long it runs (rows, rewrite, index build). */
  readonly table: string | null
  readonly privilege: string
  /** The relation it creates (`schema.name`), if any: locks on it later in the same transaction stop nobody. */
  readonly creates?: string
}

interface ParsedStatement {
  stmt: Record<string, Record<string, unknown>>
  stmt_location?: number
  stmt_len?: number
}

interface RangeVar { schemaname?: string; relname: string }

const relationName = (r: RangeVar | undefined): string => (r ? `${r.schemaname ?? 'public'}.${r.relname}` : '?')
const listName = (object: unknown): string => {
  const items = (object as { List?: { items: { String: { sval: string } }[] } }).List?.items ?? []
  return items.map((i) => i.String.sval).join('.')
}

/** What a DO block of a given step does (its statements are PL/pgSQL, chosen at run time). */
function doBlockFacts(kind: OperationKind, text: string, table: string | null): Omit<StatementFacts, 'text' | 'sql'> {
  if (/count\(\*\) FILTER/.test(text) && table) {
    return { lock: null, duration: 'rows', table, privilege: `SELECT on ${table} and pgml_kit's queue tables (one scan: rows with text and no vector)` }
  }
  if (/CREATE EXTENSION pgml/.test(text)) {
    return { lock: null, duration: 'conditional', table: null, privilege: 'superuser, when pgml.embed is missing (CREATE EXTENSION pgml / pgml_compat CASCADE installs plpython3u)' }
  }
  if (/CREATE EXTENSION vector/.test(text)) return { lock: null, duration: 'conditional', table: null, privilege: 'superuser, when pgvector is not installed yet (it is not a trusted extension)' }
  if (/DROP EXTENSION vector/.test(text)) return { lock: null, duration: 'conditional', table: null, privilege: 'owner of extension vector, only if pgml-kit created it' }
  if (/_pgml_kit_invalid/.test(text)) return { lock: null, duration: 'conditional', table: null, privilege: 'owner of the table, only if an INVALID leftover of a failed build exists' }
  if (kind === 'preflight') return { lock: null, duration: 'instant', table: null, privilege: 'reads the system catalogs' }
  if (/embedding_jobs/.test(text)) return { lock: null, duration: 'instant', table: null, privilege: 'reads pgml_kit.embedding_jobs' }
  return { lock: null, duration: 'instant', table: null, privilege: 'reads the system catalogs' }
}

function classify(node: ParsedStatement['stmt'], kind: OperationKind, text: string, indexTable: string | null, opTable: string | null): Omit<StatementFacts, 'text' | 'sql'> {
  const [type, body] = Object.entries(node)[0] as [string, Record<string, unknown>]
  const owner = (rel: string) => `owner of ${rel}`
  switch (type) {
    case 'AlterTableStmt': {
      const rel = relationName(body.relation as RangeVar)
      const cmds = (body.cmds as { AlterTableCmd: { subtype: string; def?: { ColumnDef?: { constraints?: { Constraint: { contype: string } }[] } } } }[]).map((c) => c.AlterTableCmd)
      const rewrites = cmds.some((c) => c.subtype === 'AT_AddColumn' && (c.def?.ColumnDef?.constraints ?? []).some((k) => k.Constraint.contype === 'CONSTR_GENERATED'))
      return { lock: { mode: 'ACCESS EXCLUSIVE', on: rel }, duration: rewrites ? 'rewrite' : 'instant', table: rewrites ? rel : null, privilege: owner(rel) }
    }
    case 'RenameStmt': {
      const rel = relationName(body.relation as RangeVar)
      if (body.renameType === 'OBJECT_INDEX') return { lock: { mode: 'SHARE UPDATE EXCLUSIVE', on: `index ${rel}` }, duration: 'instant', table: null, privilege: 'owner of the index\'s table' }
      return { lock: { mode: 'ACCESS EXCLUSIVE', on: rel }, duration: 'instant', table: null, privilege: owner(rel) }
    }
    case 'LockStmt': {
      const modes = ['', 'ACCESS SHARE', 'ROW SHARE', 'ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'] as const
      const rels = (body.relations as { RangeVar: RangeVar }[]).map((r) => relationName(r.RangeVar)).join(', ')
      const mode = modes[Number(body.mode)] || 'ACCESS EXCLUSIVE'
      return { lock: { mode: mode as NonNullable<StatementFacts['lock']>['mode'], on: rels }, duration: 'instant', table: null, privilege: `UPDATE, DELETE or TRUNCATE on ${rels} (or owner)` }
    }
    case 'IndexStmt': {
      const rel = relationName(body.relation as RangeVar)
      return { lock: { mode: body.concurrent ? 'SHARE UPDATE EXCLUSIVE' : 'SHARE', on: rel }, duration: 'index build', table: rel, privilege: owner(rel) }
    }
    case 'DropStmt': {
      const objects = (body.objects as unknown[]).map(listName)
      switch (body.removeType) {
        case 'OBJECT_INDEX': {
          const on = indexTable ?? `the table of ${objects.join(', ')}`
          return { lock: { mode: body.concurrent ? 'SHARE UPDATE EXCLUSIVE' : 'ACCESS EXCLUSIVE', on }, duration: 'instant', table: null, privilege: `owner of ${on}` }
        }
        case 'OBJECT_TRIGGER': {
          const rel = objects[0]!.split('.').slice(0, -1).join('.')
          const qualified = rel.includes('.') ? rel : `public.${rel}`
          return { lock: { mode: 'ACCESS EXCLUSIVE', on: qualified }, duration: 'instant', table: null, privilege: owner(qualified) }
        }
        case 'OBJECT_TABLE':
        case 'OBJECT_VIEW':
          return { lock: { mode: 'ACCESS EXCLUSIVE', on: objects.join(', ') }, duration: 'instant', table: null, privilege: `owner of ${objects.join(', ')}` }
        default:
          return { lock: null, duration: 'instant', table: null, privilege: `owner of ${objects.join(', ')}` }
      }
    }
    case 'CreateTrigStmt': {
      const rel = relationName(body.relation as RangeVar)
      return { lock: { mode: 'SHARE ROW EXCLUSIVE', on: rel }, duration: 'instant', table: null, privilege: `${owner(rel)} (or TRIGGER on it)` }
    }
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt': {
      const rel = relationName(body.relation as RangeVar)
      // pgml-kit's own catalog rows: a handful per column.
      const small = rel.startsWith('pgml_kit.')
      return { lock: { mode: 'ROW EXCLUSIVE', on: rel }, duration: small ? 'instant' : 'rows', table: small ? null : rel, privilege: `${type === 'InsertStmt' ? 'INSERT' : type === 'UpdateStmt' ? 'UPDATE' : 'DELETE'} on ${rel}` }
    }
    case 'CreateFunctionStmt': {
      const name = ((body.funcname as { String: { sval: string } }[]) ?? []).map((n) => n.String.sval)
      return { lock: null, duration: 'instant', table: null, privilege: `CREATE on schema ${name.length > 1 ? name[0] : 'public'}` }
    }
    case 'CreateStmt':
    case 'ViewStmt': {
      const rel = relationName((type === 'ViewStmt' ? body.view : body.relation) as RangeVar)
      return { lock: null, duration: 'instant', table: null, privilege: `CREATE on schema ${rel.split('.')[0]}`, creates: rel }
    }
    case 'CreateTableAsStmt': {
      const into = body.into as { rel: RangeVar; skipData?: boolean }
      const rel = relationName(into.rel)
      return { lock: null, duration: into.skipData ? 'instant' : 'rows', table: null, privilege: `CREATE on schema ${rel.split('.')[0]}`, creates: rel }
    }
    case 'CreateSchemaStmt':
      return { lock: null, duration: 'instant', table: null, privilege: 'CREATE on the database' }
    case 'CreateExtensionStmt':
      return { lock: null, duration: 'instant', table: null, privilege: `superuser unless extension ${String(body.extname)} is trusted` }
    case 'GrantStmt':
      return { lock: null, duration: 'instant', table: null, privilege: 'owner of the objects granted on' }
    case 'CommentStmt': {
      // COMMENT ON a table, view, index or column takes SHARE UPDATE EXCLUSIVE on the relation (writers go on; other DDL, VACUUM and concurrent index builds wait).
      const items = ((body.object as { List?: { items?: { String?: { sval?: string } }[] } } | undefined)?.List?.items ?? []).map((i) => i.String?.sval ?? '')
      const names = body.objtype === 'OBJECT_COLUMN' ? items.slice(0, -1) : items
      if (['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_INDEX', 'OBJECT_COLUMN'].includes(String(body.objtype)) && names.length > 0) {
        const rel = names.length === 1 ? `public.${names[0]}` : names.slice(-2).join('.')
        return { lock: { mode: 'SHARE UPDATE EXCLUSIVE', on: body.objtype === 'OBJECT_INDEX' ? `index ${rel}` : rel }, duration: 'instant', table: null, privilege: `owner of ${rel}` }
      }
      return { lock: null, duration: 'instant', table: null, privilege: 'owner of the object' }
    }
    case 'VariableSetStmt':
      return { lock: null, duration: 'instant', table: null, privilege: '—' }
    case 'SelectStmt':
      return { lock: null, duration: 'instant', table: null, privilege: /set_config/.test(text) ? '—' : 'EXECUTE on the functions called' }
    case 'DoStmt':
      return doBlockFacts(kind, text, opTable)
    default:
      return { lock: null, duration: 'instant', table: null, privilege: `not classified (${type}): read the statement` }
  }
}

function firstLine(statement: string): string {
  const lines = statement.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('--'))
  let line = lines[0] ?? ''
  // A DO block: show what it does, not its opening.
  if (/^DO\b/.test(line)) line = `DO: ${lines.find((l) => /^SELECT count\(\*\) FILTER\b/.test(l)) ?? lines.find((l) => /^(IF|CREATE|DROP|ALTER|INSERT|UPDATE|DELETE|PERFORM|RAISE)\b/.test(l)) ?? line}`
  return line.length > 110 ? `${line.slice(0, 107)}...` : line
}

/** Facts for every statement of `sql` (one or more statements, comments allowed). Call `loadParser()` first. */
export function statementFacts(sql: string, kind: OperationKind, indexTable: string | null = null, opTable: string | null = null): StatementFacts[] {
  const bytes = Buffer.from(sql, 'utf8')
  const parsed = parseSync(sql) as { stmts?: ParsedStatement[] }
  return (parsed.stmts ?? []).map((s) => {
    const start = s.stmt_location ?? 0
    const text = bytes.subarray(start, s.stmt_len ? start + s.stmt_len : bytes.length).toString('utf8').trim()
    return { text: firstLine(text), sql: text, ...classify(s.stmt, kind, text, indexTable, opTable) }
  })
}

/** Assumed rates for the time estimates, stated in the document. */
const REWRITE_ROWS_PER_SECOND = { embed: 1_000, plain: 100_000 } as const

const seconds = (duration: string): number | null => {
  const m = /^(\d+)\s*(ms|s|min|h)?$/.exec(duration.trim())
  if (!m) return null
  const n = Number(m[1])
  if (n === 0) return null
  return n * ({ ms: 0.001, s: 1, min: 60, h: 3600 } as const)[(m[2] ?? 'ms') as 'ms' | 's' | 'min' | 'h']
}

const human = (s: number): string => (s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`)

const escapeCell = (text: string): string => text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/`/g, '\u02cb').replace(/\n/g, ' ')
const code = (text: string): string => (text ? `\`${text.replace(/`/g, '\u02cb').replace(/\|/g, '\\|')}\`` : '')

export interface ReviewOptions {
  readonly settings: MigrationSettings
  readonly sizing?: Sizing
  readonly configFile: string
  /** `schema.index` → `schema.table` (see `indexTables`). */
  readonly indexTables?: ReadonlyMap<string, string>
}

export interface FileReview {
  readonly file: MigrationFile
  readonly steps: readonly { readonly op: Operation; readonly up: readonly StatementFacts[] }[]
  /** Locks that stop writers, held until the file's transaction commits (transactional files). */
  readonly heldLocks: readonly { readonly mode: LockMode; readonly on: string }[]
  readonly warnings: readonly string[]
}

/** `schema.table` of every index the states name (`schema.index` → table), for the locks of index drops. */
export function indexTables(...states: readonly { readonly indexes: readonly { schema: string; name: string; table: string }[] }[]): Map<string, string> {
  return new Map(states.flatMap((s) => s.indexes.map((i) => [`${i.schema}.${i.name}`, `${i.schema}.${i.table}`] as const)))
}

/** Reviews each file of a plan. */
export async function reviewFiles(files: readonly MigrationFile[], options: ReviewOptions): Promise<FileReview[]> {
  await loadParser()
  return files.map((file) => {
    const steps = file.operations.map((op) => ({ op, up: op.up.flatMap((sql) => statementFacts(sql, op.kind, (op.index && options.indexTables?.get(op.index)) ?? null, op.table ?? null)) }))
    const statements = steps.flatMap((s) => s.up)
    const held = new Map<string, { mode: LockMode; on: string }>()
    const rank: LockMode[] = ['ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'ACCESS EXCLUSIVE']
    if (file.transactional) {
      // A relation created earlier in the same transaction is invisible to everyone else until it commits.
      const created = new Set<string>()
      for (const s of statements) {
        if (s.creates) created.add(s.creates)
        if (!s.lock || !BLOCKS_WRITES.has(s.lock.mode) || created.has(s.lock.on)) continue
        const was = held.get(s.lock.on)
        if (!was || rank.indexOf(s.lock.mode) > rank.indexOf(was.mode)) held.set(s.lock.on, s.lock)
      }
    }
    const warnings: string[] = []
    const timeout = seconds(file.transactional ? options.settings.statementTimeout : options.settings.indexStatementTimeout)
    for (const { op, up } of steps) {
      for (const s of up) {
        if (s.duration !== 'rewrite' || !s.table) continue
        const rows = options.sizing?.tables.get(s.table)?.rows
        const embeds = /pgml\.embed/.test(op.up.join('\n'))
        const rate = embeds ? REWRITE_ROWS_PER_SECOND.embed : REWRITE_ROWS_PER_SECOND.plain
        if (rows === undefined) {
          warnings.push(`${s.table} is rewritten under ACCESS EXCLUSIVE${embeds ? ', calling pgml.embed once per row' : ''}: reads and writes wait for the whole rewrite. Give --database-url to see how many rows that is`)
          continue
        }
        const estimate = rows / rate
        const past = timeout !== null && estimate > timeout
        warnings.push(`${s.table} (${rows.toLocaleString('en-US')} rows) is rewritten under ACCESS EXCLUSIVE${embeds ? ', calling pgml.embed once per row' : ''}: about ${human(estimate)} at ${rate.toLocaleString('en-US')} rows/s, during which every read and write of it waits${past ? `. That is past statement_timeout ${file.transactional ? options.settings.statementTimeout : options.settings.indexStatementTimeout}: the migration will fail and roll back` : ''}`)
      }
    }
    // pgml-kit's own runtime tables are tiny and touched only by pgml-kit: not counted.
    const userTables = [...held.values()].filter((l) => !l.on.startsWith('pgml_kit.'))
    if (userTables.length > 1) {
      warnings.push(`one transaction takes locks that stop writers on ${userTables.length} tables (${userTables.map((l) => `${l.mode} on ${l.on}`).join('; ')}) and holds them all until it commits: writes to each wait for the slowest statement of the file`)
    }
    const slow = statements.filter((s) => s.duration === 'rows' && s.table)
    for (const s of slow) {
      const rows = options.sizing?.tables.get(s.table!)?.rows
      warnings.push(`${code(s.text)} touches ${rows === undefined ? 'every matching row of' : `up to ${rows.toLocaleString('en-US')} rows of`} ${s.table} in this transaction`)
    }
    return { file, steps, heldLocks: [...held.values()], warnings }
  })
}

const SAFETY_TEXT: Record<SafetyClass, string> = {
  safe: 'safe',
  'slows-writes': 'slows writes',
  'needs-backfill': 'needs backfill',
  privileged: 'superuser',
  'rewrites-or-locks': '**rewrites / locks**',
  destructive: '**DESTRUCTIVE**',
}

function durationText(s: StatementFacts, sizing: Sizing | undefined): string {
  const rows = s.table ? sizing?.tables.get(s.table)?.rows : undefined
  const count = rows === undefined ? '' : ` (${rows.toLocaleString('en-US')} rows)`
  switch (s.duration) {
    case 'instant': return 'instant'
    case 'conditional': return 'instant; does work only if needed'
    case 'rows': return `proportional to rows${count}`
    case 'rewrite': return `**table rewrite**${count}`
    case 'index build': return s.lock?.mode === 'SHARE' ? `index build${count}; **writes wait**` : `index build${count}; writes go on`
  }
}

/** The review document, in Markdown. */
export function renderReviewMarkdown(plan: Plan, reviews: readonly FileReview[], options: ReviewOptions): string {
  const out: string[] = []
  const operations = reviews.flatMap((r) => r.file.operations)
  const counts = new Map<SafetyClass, number>()
  for (const op of operations) counts.set(op.safety, (counts.get(op.safety) ?? 0) + 1)
  out.push('# Migration review', '')
  out.push(`Generated by \`pgml-kit plan --format markdown\` from ${code(options.configFile)}. ${options.sizing && options.sizing.tables.size > 0 ? `Row counts from ${escapeCell(options.sizing.source)} (\`pg_class.reltuples\`).` : 'Not sized: give `--database-url` for row counts.'}${options.sizing?.fill && options.sizing.fill.size > 0 ? ` How far staged model changes are filled: from ${escapeCell(options.sizing.source)}.` : ''}`, '')
  if (reviews.length === 0) {
    out.push('Nothing to generate: the migrations match the config.', '')
  } else {
    out.push(`${reviews.length} file(s), ${operations.length} step(s): ${[...counts].map(([k, n]) => `${n} ${SAFETY_TEXT[k]}`).join(', ')}.`, '')
  }
  for (const d of plan.deferred) out.push(`- Waits for data: \`${d.index.schema}.${d.index.name}\`: ${escapeCell(d.reason)}`)
  for (const s of plan.stages) out.push(`- ${s.waiting ? 'Model change waits' : 'Model change'} (${s.stage}): \`${escapeCell(s.column)}\`: ${escapeCell(s.message)}`)
  if (plan.deferred.length + plan.stages.length > 0) out.push('')
  const warnings = reviews.flatMap((r) => r.warnings.map((w) => `\`${r.file.fileName}\`: ${w}`))
  const privileged = operations.filter((op) => op.safety === 'privileged')
  if (warnings.length + privileged.length > 0) {
    out.push('## Read first', '')
    for (const op of privileged) out.push(`- Needs a superuser: ${escapeCell(op.summary)}. ${escapeCell(op.notes[0] ?? '')}`)
    for (const w of warnings) out.push(`- ${w}`)
    out.push('')
  }
  reviews.forEach((review, i) => {
    const { file, settings } = { file: review.file, settings: options.settings }
    out.push(`## ${i + 1}. \`${file.fileName}\``, '')
    if (file.transactional) {
      out.push(`- Runs in **one transaction**: if a statement fails, nothing of the file stays.`)
      out.push(`- Timeouts: \`lock_timeout = '${settings.lockTimeout}'\`, \`statement_timeout = '${settings.statementTimeout}'\` (SET LOCAL, this transaction only).`)
      out.push(review.heldLocks.length > 0
        ? `- Held until it commits, stopping writers: ${review.heldLocks.map((l) => `${l.mode} on \`${l.on}\``).join('; ')}.`
        : '- Takes no lock that stops writers.')
    } else {
      out.push('- Runs **outside a transaction**, statement by statement (`CONCURRENTLY` cannot run in one). Safe to run again after a failure.')
      out.push(`- Timeouts: \`lock_timeout = '${settings.indexLockTimeout}'\`, \`statement_timeout = '${settings.indexStatementTimeout}'\` (0: none; a concurrent build waits for every older transaction).`)
    }
    out.push(`- Needs pgml: ${file.requiresPgml.up ? 'yes' : 'no'} (down: ${file.requiresPgml.down ? 'yes' : 'no'}).`)
    out.push(`- Roll back: \`pgml-kit migrate down\` runs this file's Down section (below the steps, each undoes its step), newest file first.`, '')
    out.push('| step | safety | what | rollback |', '|---|---|---|---|')
    review.steps.forEach(({ op }, j) => {
      const undo = op.down.map(firstLine).filter((l) => l).slice(0, 2).map(code).join('<br>') || '—'
      const notes = op.notes.length ? `<br>${op.notes.map((n) => `_${escapeCell(n)}_`).join('<br>')}` : ''
      out.push(`| ${j + 1} | ${SAFETY_TEXT[op.safety]} | ${escapeCell(op.summary)}${notes} | ${undo} |`)
    })
    out.push('', '| step | statement | lock | duration | needs |', '|---|---|---|---|---|')
    review.steps.forEach(({ up }, j) => {
      for (const s of up) {
        const lock = s.lock ? `${BLOCKS_WRITES.has(s.lock.mode) ? `**${s.lock.mode}**` : s.lock.mode} on \`${escapeCell(s.lock.on)}\`` : '—'
        out.push(`| ${j + 1} | ${code(s.text)} | ${lock} | ${durationText(s, options.sizing)} | ${escapeCell(s.privilege)} |`)
      }
    })
    out.push('')
  })
  out.push('---', '', `Estimates assume ${REWRITE_ROWS_PER_SECOND.embed.toLocaleString('en-US')} rows/s for a rewrite that embeds each row in the database and ${REWRITE_ROWS_PER_SECOND.plain.toLocaleString('en-US')} rows/s for one that does not; measure yours. Lock modes as documented in PostgreSQL's "Explicit Locking"; **bold** modes stop writers. Locks on a relation the same transaction created are left out: no other session can see it until the transaction commits.`, '')
  return out.join('\n')
}
