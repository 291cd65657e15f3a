import { readFile } from 'node:fs/promises'
import type { MigrationBuilder, RunnerOption } from 'node-pg-migrate'
import { MigrationError } from '../errors.js'
import { readDirectives } from './directives.js'
import { loadParser, splitStatements } from './split-statements.js'
import { hasOrigins } from './origin.js'

type LoaderStrategy = NonNullable<RunnerOption['migrationLoaderStrategies']>[number]
type Loader = Extract<LoaderStrategy['loader'], (...args: never[]) => unknown>
type MigrationUnit = Awaited<ReturnType<Loader>>[number]

/** The up or down section of a SQL migration file, as node-pg-migrate's own SQL loader cuts it (and runs it as one query). */
export function sqlSection(content: string, direction: 'up' | 'down'): string | undefined {
  const up = content.search(/^\s*--[\s-]*up\s+migration/im)
  const down = content.search(/^\s*--[\s-]*down\s+migration/im)
  if (direction === 'up') return up >= 0 ? content.slice(up, down > up ? down : undefined) : content
  return down >= 0 ? content.slice(down, up > down ? up : undefined) : undefined
}

/**
 * node-pg-migrate runs a `.sql` file as one query inside a transaction. A file whose header says
 * `-- pgml-kit:no-transaction` is instead run outside a transaction, one statement at a time
 * (a multi-statement query is an implicit transaction, which CONCURRENTLY refuses too). A generated
 * file whose steps say which config object they come from (origin.ts) runs statement by statement
 * in its transaction, so that `migrate` knows which statement failed. Every other `.sql` file is
 * loaded the way node-pg-migrate itself loads it (same section markers).
 */
async function loadSqlMigration(filePath: string, steps: Set<string>): Promise<MigrationUnit> {
  const content = await readFile(filePath, 'utf8')
  const noTransaction = readDirectives(content).noTransaction
  const split = (text: string) => noTransaction || hasOrigins(text)
  if (noTransaction || hasOrigins(content)) await loadParser()
  const action = (direction: 'up' | 'down') => {
    const text = sqlSection(content, direction)
    if (text === undefined) return false as const
    // Same as node-pg-migrate's own SQL loader: the whole section as one query, in its transaction.
    if (!split(text)) {
      steps.add(text)
      return (pgm: MigrationBuilder) => void pgm.sql(text)
    }
    let statements: string[]
    try {
      statements = splitStatements(text)
    } catch (error) {
      throw new MigrationError('MIGRATION_UNPARSABLE', `${filePath} (${direction}) does not parse as SQL: ${(error as Error).message}`, { where: filePath, cause: error })
    }
    for (const statement of statements) steps.add(statement)
    return (pgm: MigrationBuilder) => {
      if (noTransaction) pgm.noTransaction()
      for (const statement of statements) pgm.sql(statement)
    }
  }
  return { id: filePath, filePaths: [filePath], actions: { up: action('up'), down: action('down') } }
}

/**
 * The loader for `.sql` files. `steps` collects the text of every step it hands node-pg-migrate
 * (node-pg-migrate sends each with a `;` appended when it lacks one), so that a run can tell the
 * files' statements from node-pg-migrate's own.
 */
export function sqlLoaderStrategy(steps: Set<string>): LoaderStrategy {
  return {
    extensions: ['.sql'],
    loader: async (filePaths: string[]) => Promise.all(filePaths.map((path) => loadSqlMigration(path, steps))),
  }
}

/** Whether node-pg-migrate sends `text` as one of the steps in `steps` (see sqlLoaderStrategy). */
export function isMigrationStep(steps: ReadonlySet<string>, text: string): boolean {
  return steps.has(text) || (text.endsWith(';') && steps.has(text.slice(0, -1)))
}
