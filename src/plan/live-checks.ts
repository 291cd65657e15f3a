import { quoteIdent } from '../sql/quote.js'
import type { ConfigIssue } from '../errors.js'
import type { EmbeddingColumnNode, FullTextNode } from '../model/ir.js'
import { embeddingPath, fullTextPath, fullTextSourcePath, primaryKeyPath, sourcePath, tablePath } from '../model/config-path.js'
import type { PreflightChecks } from '../sql/render-preflight.js'

/** A table as a database has it: its columns and its unique, not-null keys (without predicate or expression). */
export interface LiveTable {
  readonly columns: ReadonlyMap<string, { readonly type: string; readonly text: boolean }>
  readonly keys: readonly (readonly string[])[]
}

/**
 * What `generate --database-url` reads from a database to check a plan before writing it: the
 * tables the config names (absent: no such table), the roles it names that exist, and the
 * migrations of the project the database has not applied that pgml-kit did not write (a table or
 * column they create cannot be checked yet).
 */
export interface LiveSchema {
  /** The database, for messages (a redacted URL, or "embedded database"). */
  readonly source: string
  /** By `schema.table`. */
  readonly tables: ReadonlyMap<string, LiveTable>
  readonly roles: ReadonlySet<string>
  readonly pending: readonly { readonly name: string; readonly text: string }[]
}

export interface LiveCheckResult {
  /** What the generated migration's checks would refuse, each with its config path. */
  readonly problems: readonly ConfigIssue[]
  /** What could not be checked because a pending migration may change it. */
  readonly notes: readonly string[]
}

/** Whether `text` names `name` as a word of SQL (case-insensitively, as an unquoted name or inside quotes). */
function mentions(text: string, name: string): boolean {
  // Written as quoteIdent writes it (a name with control characters becomes U&"…" with escapes).
  if (text.includes(quoteIdent(name))) return true
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return new RegExp(`(^|[^A-Za-z0-9_$])${escaped}($|[^A-Za-z0-9_$])`, 'i').test(text)
}

/**
 * The problems the checks at the top of the plan's migration (render-preflight.ts) would raise on
 * this database, all of them, with their config paths. A table, column, key or role that is
 * missing or different but named by a pending migration of the project's own (together with its
 * table, for a column) is not a problem yet: it becomes a note, and migrate checks it when it runs.
 */
export function checkAgainstDatabase(checks: PreflightChecks, live: LiveSchema): LiveCheckResult {
  const problems: ConfigIssue[] = []
  const notes = new Map<string, string>()
  const pendingNaming = (...names: string[]) => live.pending.filter((p) => names.every((n) => mentions(p.text, n))).map((p) => p.name)
  /** A problem, or a note when a pending migration names all of `names`. */
  const report = (path: string, message: string, names: string[], subject: string) => {
    const pending = pendingNaming(...names)
    if (pending.length === 0) return void problems.push({ path, message })
    notes.set(subject, `${message}; pending migration${pending.length === 1 ? '' : 's'} ${pending.join(', ')} (not applied there) may change that, so it is not checked now (migrate checks it before changing anything)`)
  }
  const tableOf = (node: { schema: string; table: string }): LiveTable | null => {
    // A table the plan renames first is checked under its old name, until that rename is applied.
    const renamed = checks.renamedTables?.find((r) => r.schema === node.schema && r.to === node.table)
    const table = live.tables.get(`${node.schema}.${node.table}`) ?? (renamed ? live.tables.get(`${node.schema}.${renamed.from}`) : undefined)
    if (!table) report(tablePath(node), `table ${node.schema}.${node.table} does not exist in ${live.source}`, [node.table], `${node.schema}.${node.table}`)
    return table ?? null
  }
  const checkText = (node: { schema: string; table: string }, table: LiveTable, columns: readonly string[], pathOf: (i: number) => string) => {
    columns.forEach((name, i) => {
      const column = table.columns.get(name)
      const subject = `${node.schema}.${node.table}.${name}`
      if (!column) report(pathOf(i), `column "${name}" does not exist in ${node.schema}.${node.table}`, [node.table, name], subject)
      else if (!column.text) report(pathOf(i), `column "${name}" of ${node.schema}.${node.table} is ${column.type}, not text (or varchar)`, [node.table, name], subject)
    })
  }
  const checkFree = (node: { schema: string; table: string }, table: LiveTable, name: string, path: string) => {
    if (table.columns.has(name)) problems.push({ path, message: `${node.schema}.${node.table} already has a column "${name}"; choose another name, or drop that column in a migration of your own` })
  }

  for (const { role, path } of checks.roles) {
    if (!live.roles.has(role)) report(path, `role "${role}" does not exist in ${live.source}`, [role], `role ${role}`)
  }
  const embedding = (column: EmbeddingColumnNode, added: boolean) => {
    const table = tableOf(column)
    if (!table) return
    checkText(column, table, column.sourceColumns, (i) => sourcePath(column, i))
    if (!added) return
    const key = [...column.keyColumns].sort()
    if (!table.keys.some((k) => k.length === key.length && [...k].sort().every((c, i) => c === key[i]))) {
      report(primaryKeyPath(column), `(${column.keyColumns.join(', ')}) is not the primary key (nor a unique, not-null key) of ${column.schema}.${column.table}; set primaryKey to the columns of its primary key`,
        [column.table], `the key of ${column.schema}.${column.table}`)
    }
    checkFree(column, table, column.column, embeddingPath(column))
  }
  for (const column of checks.added) embedding(column, true)
  for (const column of checks.resourced) embedding(column, false)
  const fullText = (node: FullTextNode, added: boolean) => {
    const table = tableOf(node)
    if (!table) return
    checkText(node, table, node.sources.map((s) => s.column), (i) => fullTextSourcePath(node, i))
    if (added) checkFree(node, table, node.column, `${fullTextPath(node)}.column`)
  }
  for (const node of checks.fullText) fullText(node, true)
  for (const node of checks.fullTextChanged) fullText(node, false)
  return { problems: dedupe(problems), notes: [...notes.values()] }
}

function dedupe(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>()
  return issues.filter((i) => {
    const key = `${i.path}\0${i.message}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}
