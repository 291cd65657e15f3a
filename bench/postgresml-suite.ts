/**
 * PostgresML's own test suite (pgml-extension/tests/test.sql and the examples it includes), run
 * against pgml_compat as psql runs it with ON_ERROR_STOP off: every statement in order, each on its
 * own, the failures recorded and the run going on. The suite's files are read from a checkout of
 * PostgresML (github.com/postgresml/postgresml); they are not part of this repository.
 *
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://postgres:...@127.0.0.1:5432/postgres \
 *   POSTGRESML_SOURCE=/path/to/postgresml npx tsx bench/postgresml-suite.ts
 *
 * One change is made to the suite: its first statements install PostgresML (`CREATE EXTENSION
 * pgml`); they install pgml_compat instead. Every failing statement is then put in one of the
 * classes the README's conformance table lists. A failure outside the allowed classes (a download,
 * a library Debian does not package, runtime 'rust', device 'cuda', or a statement that fails only
 * because one of those did) makes the run exit 1.
 *
 * Writes bench/results/postgresml-suite.{json,md}.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadModule, parseSync } from 'libpg-query'
import pg from 'pg'

const ADMIN = process.env.PGML_KIT_BENCH_DATABASE_URL
const SOURCE = process.env.POSTGRESML_SOURCE
if (!ADMIN || !SOURCE) {
  process.stderr.write('set PGML_KIT_BENCH_DATABASE_URL (a server with pgml_compat) and POSTGRESML_SOURCE (a checkout of PostgresML)\n')
  process.exit(2)
}
const EXTENSION_DIR = join(SOURCE, 'pgml-extension')
await loadModule()

interface Statement { file: string; line: number; sql: string }
interface Outcome extends Statement { ok: boolean; seconds: number; error?: string; code?: string; reason?: Reason }
type Reason = 'download' | 'not packaged for Debian' | "runtime 'rust'" | "device 'cuda'" | 'follows from an allowed failure' | 'FAILURE'

/** A file's SQL statements in order, as psql sends them (psql's own backslash commands set aside; `\i` followed, relative to pgml-extension/ as its usage line runs it). */
async function statementsOf(file: string): Promise<Statement[]> {
  const text = await readFile(join(EXTENSION_DIR, file), 'utf8')
  const out: Statement[] = []
  let sql = ''
  let sqlStartLine = 1
  const flush = () => {
    if (!sql.trim()) return
    const bytes = Buffer.from(sql, 'utf8')
    const parsed = parseSync(sql) as { stmts?: { stmt_location?: number; stmt_len?: number }[] }
    for (const s of parsed.stmts ?? []) {
      const start = s.stmt_location ?? 0
      const body = bytes.subarray(start, s.stmt_len ? start + s.stmt_len : bytes.length).toString('utf8')
      const leading = body.length - body.trimStart().length
      const line = sqlStartLine + bytes.subarray(0, start).toString('utf8').split('\n').length - 1 + body.slice(0, leading).split('\n').length - 1
      // The statement without the comment lines before it (the parser counts them in).
      const comments = /^(?:\s*--[^\n]*\n|\s*\n)*/.exec(body.slice(leading))![0]
      const trimmed = body.slice(leading + comments.length).trim()
      if (trimmed) out.push({ file, line: line + comments.split('\n').length - 1, sql: trimmed })
    }
    sql = ''
  }
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    const meta = /^\s*\\(\S+)\s*(.*)$/.exec(line)
    if (meta) {
      flush()
      sqlStartLine = i + 2
      if (meta[1] === 'i' || meta[1] === 'include') out.push(...await statementsOf(meta[2]!.trim()))  // relative to pgml-extension/, where the suite is run from
      continue
    }
    if (!sql) sqlStartLine = i + 1
    sql += `${line}\n`
  }
  flush()
  return out
}

// The one change to the suite: install pgml_compat where it installs PostgresML (an earlier version
// with PGML_COMPAT_VERSION=0.2.0, say, to compare; results then go to postgresml-suite-<version>.*).
const VERSION = process.env.PGML_COMPAT_VERSION
function adapted(sql: string): string {
  if (/^CREATE EXTENSION pgml;?$/i.test(sql)) return `CREATE EXTENSION pgml_compat${VERSION ? ` VERSION '${VERSION}'` : ''} CASCADE`
  if (/^DROP EXTENSION IF EXISTS pgml CASCADE;?$/i.test(sql)) return 'DROP EXTENSION IF EXISTS pgml_compat CASCADE'
  return sql
}

// Why a statement failed, from its error: the allowed reasons, or FAILURE.
const ALLOWED: [Reason, RegExp][] = [
  ["device 'cuda'", /device 'cuda'|cuda/i],
  ['download', /never downloads|is not available: pgml_compat loads|runs local models only|download/i],
  ['not packaged for Debian', /not packaged for Debian/i],
  ["runtime 'rust'", /runtime/i],
]

const suite = await statementsOf('tests/test.sql')
const admin = new pg.Client({ connectionString: ADMIN })
await admin.connect()
await admin.query('DROP DATABASE IF EXISTS pgml_kit_postgresml_suite')
await admin.query('CREATE DATABASE pgml_kit_postgresml_suite')
const url = new URL(ADMIN)
url.pathname = '/pgml_kit_postgresml_suite'
const db = new pg.Client({ connectionString: url.toString() })
await db.connect()
db.on('notice', () => {})
const outcomes: Outcome[] = []
let version = 'unknown'
const started = Date.now()
try {
  const allowedFailure = new Set<string>()  // files in which a statement failed for an allowed reason
  for (const statement of suite) {
    const t0 = performance.now()
    try {
      await db.query(adapted(statement.sql))
      outcomes.push({ ...statement, ok: true, seconds: (performance.now() - t0) / 1000 })
    } catch (error) {
      const e = error as { message: string; code?: string }
      let reason: Reason = ALLOWED.find(([, pattern]) => pattern.test(e.message) || pattern.test(statement.sql.match(/'\{[^']*"device"[^']*\}'/)?.[0] ?? ''))?.[0] ?? 'FAILURE'
      // A statement on what an allowed failure would have made (its table, its project) fails with it.
      if (reason === 'FAILURE' && allowedFailure.has(statement.file) && /does not exist|has no deployed model|has no snapshot/.test(e.message)) reason = 'follows from an allowed failure'
      if (reason !== 'FAILURE' && reason !== 'follows from an allowed failure') allowedFailure.add(statement.file)
      outcomes.push({ ...statement, ok: false, seconds: (performance.now() - t0) / 1000, error: e.message, code: e.code, reason })
    }
    const last = outcomes.at(-1)!
    process.stdout.write(`${last.ok ? 'ok  ' : last.reason === 'FAILURE' ? 'FAIL' : 'skip'} ${statement.file}:${statement.line} ${statement.sql.replace(/\s+/g, ' ').slice(0, 90)}${last.ok ? '' : `\n       ${last.error}`}\n`)
  }
  version = (await db.query<{ v: string }>(`SELECT extversion AS v FROM pg_extension WHERE extname = 'pgml_compat'`)).rows[0]?.v ?? 'none'
} finally {
  await db.end()
  await admin.query('DROP DATABASE IF EXISTS pgml_kit_postgresml_suite')
  await admin.end()
}

const server = (await (async () => {
  const c = new pg.Client({ connectionString: ADMIN })
  await c.connect()
  try {
    return (await c.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v
  } finally {
    await c.end()
  }
})())
const byFile = new Map<string, Outcome[]>()
for (const o of outcomes) byFile.set(o.file, [...(byFile.get(o.file) ?? []), o])
const failures = outcomes.filter((o) => o.reason === 'FAILURE')
const result = {
  measured: new Date().toISOString(), postgresql: server, seconds: (Date.now() - started) / 1000,
  statements: outcomes.length, ran: outcomes.filter((o) => o.ok).length,
  refused: Object.fromEntries([...new Set(outcomes.filter((o) => !o.ok).map((o) => o.reason!))].map((r) => [r, outcomes.filter((o) => o.reason === r).length])),
  files: [...byFile].map(([file, list]) => ({ file, statements: list.length, ran: list.filter((o) => o.ok).length })),
  outcomes,
}
const NAME = VERSION ? `postgresml-suite-${VERSION}` : 'postgresml-suite'
await writeFile(new URL(`./results/${NAME}.json`, import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
const cell = (s: string) => s.replace(/\s+/g, ' ').replace(/\|/g, '\\|')
const md = [
  '# PostgresML\'s test suite on pgml_compat',
  '',
  `Measured ${result.measured} on PostgreSQL ${server} (docker/postgres), pgml_compat ${version}, with \`bench/postgresml-suite.ts\`: ` +
    `pgml-extension/tests/test.sql and the ${byFile.size - 1} example files it includes, every statement in order, as psql runs them with ON_ERROR_STOP off. ` +
    `The one change: \`CREATE EXTENSION pgml\` installs pgml_compat. ${result.seconds.toFixed(0)} s.`,
  '',
  `**${result.ran} of ${result.statements} statements run.** The rest:`,
  '',
  '| why | statements |',
  '|---|---:|',
  ...Object.entries(result.refused).map(([reason, n]) => `| ${reason} | ${n} |`),
  '',
  '| file | statements | run |',
  '|---|---:|---:|',
  ...result.files.map((f) => `| ${f.file} | ${f.statements} | ${f.ran} |`),
  '',
  '## Statements that do not run',
  '',
  '| where | statement | why | error |',
  '|---|---|---|---|',
  ...outcomes.filter((o) => !o.ok).map((o) => `| ${o.file}:${o.line} | \`${cell(o.sql).slice(0, 110)}\` | ${o.reason} | ${cell(o.error ?? '').slice(0, 200)} |`),
  '',
].join('\n')
await writeFile(new URL(`./results/${NAME}.md`, import.meta.url), md)
process.stdout.write(`\n${result.ran} of ${result.statements} statements ran; ${failures.length} failed for a reason that is not allowed\n`)
process.exit(failures.length > 0 ? 1 : 0)
