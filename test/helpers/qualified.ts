import { loadModule, parseSync } from 'libpg-query'
import * as plpgsql from '@libpg-query/parser'

await loadModule()
await plpgsql.loadModule()

/**
 * Function calls that are not schema-qualified, in SQL pgml-kit runs. PostgreSQL picks, among the
 * functions of that name on the search_path, the one whose argument types match best — an exact
 * match in `public` beats a built-in that needs a conversion (search_path order only breaks ties).
 * So a role that can create functions in a schema on the search_path could make `to_jsonb(row)`,
 * `md5(varchar)` or `jsonb_populate_record(NULL::t, …)` run its own code as the role that runs the
 * statement. Written `pg_catalog.f(…)`, only pg_catalog is searched.
 *
 * SQL syntax that PostgreSQL turns into function calls (EXTRACT, TRIM, SUBSTRING, AT TIME ZONE …)
 * is qualified by the parser itself; COALESCE, GREATEST, NULLIF, CURRENT_USER are not calls at all.
 * PL/pgSQL bodies (DO blocks, functions) are parsed too, except those of functions whose
 * search_path is pinned to pg_catalog (and pg_temp, which is never searched for functions): in them,
 * nothing outside pg_catalog is found.
 */
export interface UnqualifiedCall {
  /** The call as the statement names it: `to_jsonb`, `count`. */
  readonly name: string
  /** The statement (or PL/pgSQL expression) it is in, one line. */
  readonly statement: string
}

type Node = unknown

function oneLine(sql: string): string {
  const line = sql.replace(/\s+/g, ' ').trim()
  return line.length > 240 ? `${line.slice(0, 237)}...` : line
}

const strings = (list: unknown): string[] => (Array.isArray(list) ? list.map((n) => (n as { String?: { sval?: string; str?: string } }).String?.sval ?? (n as { String?: { str?: string } }).String?.str ?? '') : [])

/** Whether a CREATE FUNCTION's options pin search_path to pg_catalog (optionally with pg_temp). */
function pinsSearchPath(options: unknown): boolean {
  if (!Array.isArray(options)) return false
  return options.some((o) => {
    const def = (o as { DefElem?: { defname?: string; arg?: { VariableSetStmt?: { name?: string; args?: unknown[] } } } }).DefElem
    const set = def?.defname === 'set' ? def.arg?.VariableSetStmt : undefined
    if (set?.name !== 'search_path') return false
    const values = (set.args ?? []).map((a) => {
      const c = (a as { A_Const?: { sval?: { sval?: string }; val?: { String?: { str?: string } } } }).A_Const
      return c?.sval?.sval ?? c?.val?.String?.str ?? ''
    })
    return values[0] === 'pg_catalog' && values.slice(1).every((v) => v === 'pg_temp')
  })
}

function definition(options: unknown): { language: string | null; body: string | null } {
  let language: string | null = null
  let body: string | null = null
  for (const o of Array.isArray(options) ? options : []) {
    const def = (o as { DefElem?: { defname?: string; arg?: unknown } }).DefElem
    if (def?.defname === 'language') language = strings([def.arg])[0] ?? null
    if (def?.defname === 'as') {
      const list = (def.arg as { List?: { items?: unknown[] } } | undefined)?.List?.items
      body = (list ? strings(list) : strings([def.arg]))[0] ?? null
    }
  }
  return { language, body }
}

/** The SQL of each expression and statement of a PL/pgSQL body, as the SQL parser takes it. */
function plpgsqlStatements(body: string, returns: 'void' | 'trigger'): string[] {
  const wrapped = `CREATE FUNCTION pg_temp.pgml_kit_check() RETURNS ${returns} LANGUAGE plpgsql AS $pgml_kit_check$${body}$pgml_kit_check$`
  const parsed = plpgsql.parsePlPgSQLSync(wrapped) as unknown
  const out: string[] = []
  const visit = (node: Node): void => {
    if (Array.isArray(node)) return node.forEach(visit)
    if (node === null || typeof node !== 'object') return
    const expr = (node as { PLpgSQL_expr?: { query: string; parseMode?: number } }).PLpgSQL_expr
    if (expr) {
      const mode = expr.parseMode ?? 0
      // 0: a statement; 2: an expression; 3-5: an assignment `target := expression`.
      if (mode === 0) out.push(expr.query.replace(/^\s*PERFORM\b/i, 'SELECT'))
      else if (mode >= 3) out.push(`SELECT ${expr.query.slice(expr.query.indexOf(':=') + 2)}`)
      else out.push(`SELECT ${expr.query}`)
    }
    for (const value of Object.values(node)) visit(value)
  }
  visit(parsed)
  return out
}

function walk(node: Node, statement: string, found: UnqualifiedCall[]): void {
  if (Array.isArray(node)) {
    for (const n of node) walk(n, statement, found)
    return
  }
  if (node === null || typeof node !== 'object') return
  const record = node as Record<string, unknown>
  const call = record.FuncCall as { funcname?: unknown } | undefined
  if (call) {
    const name = strings(call.funcname)
    if (name.length < 2) found.push({ name: name.join('.'), statement })
  }
  const doStmt = record.DoStmt as { args?: unknown[] } | undefined
  if (doStmt) {
    const body = definition(doStmt.args).body
    if (body !== null) for (const sql of plpgsqlStatements(body, 'void')) found.push(...unqualifiedCalls(sql, `${statement} [in: ${oneLine(sql)}]`))
  }
  const fn = record.CreateFunctionStmt as { options?: unknown; returnType?: { names?: unknown } } | undefined
  if (fn && !pinsSearchPath(fn.options)) {
    const { language, body } = definition(fn.options)
    const returns = strings(fn.returnType?.names).at(-1) === 'trigger' ? 'trigger' : 'void'
    if (body !== null && language === 'plpgsql') for (const sql of plpgsqlStatements(body, returns)) found.push(...unqualifiedCalls(sql, `${statement} [in: ${oneLine(sql)}]`))
    if (body !== null && language === 'sql') found.push(...unqualifiedCalls(body, statement))
  }
  for (const value of Object.values(record)) walk(value, statement, found)
}

/** Every unqualified function call in `sql` (one or more statements), with the statement it is in. */
export function unqualifiedCalls(sql: string, context?: string): UnqualifiedCall[] {
  const parsed = parseSync(sql) as { stmts?: { stmt: unknown; stmt_location?: number; stmt_len?: number }[] }
  const found: UnqualifiedCall[] = []
  for (const s of parsed.stmts ?? []) {
    const text = s.stmt_len ? sql.slice(s.stmt_location ?? 0, (s.stmt_location ?? 0) + s.stmt_len) : sql.slice(s.stmt_location ?? 0)
    walk(s.stmt, context ?? oneLine(text.replace(/^\s*(--[^\n]*\n\s*)*/, '')), found)
  }
  return found
}

/** `name: statement` lines, one per unqualified call, for a readable failure. */
export function describeCalls(calls: readonly UnqualifiedCall[]): string[] {
  return calls.map((c) => `${c.name}(…) in: ${c.statement}`)
}
