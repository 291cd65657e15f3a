/**
 * Every error pgml-kit raises for a user mistake or an unusable target is a `PgmlKitError` with a
 * stable `code`, so callers can branch on it and the CLI can print it without a stack trace.
 */
export class PgmlKitError extends Error {
  readonly code: string
  /** Where the problem is: a config path (`tables.documents.embeddings.body`), a file, or an SQL object. */
  readonly where: string | undefined
  /** What to do next, in one sentence. */
  readonly hint: string | undefined
  /**
   * For a message that lists problems one per line: those lines (the first is the headline), so
   * a printer can make each safe on its own — a value with a newline in it cannot forge a line.
   */
  readonly lines: readonly string[] | undefined

  constructor(code: string, message: string | readonly string[], options: { where?: string; hint?: string; cause?: unknown } = {}) {
    super(typeof message === 'string' ? message : message.join('\n'), options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.where = options.where
    this.hint = options.hint
    this.lines = typeof message === 'string' ? undefined : Object.freeze([...message])
  }
}

/** One problem found in a config, with the dotted path of the offending value. */
export interface ConfigIssue {
  readonly path: string
  readonly message: string
}

export class ConfigError extends PgmlKitError {
  readonly issues: readonly ConfigIssue[]

  constructor(issues: readonly ConfigIssue[], source = 'pgml-kit.config.ts') {
    const lines = issues.map((issue) => `  ${issue.path || '(root)'}: ${issue.message}`)
    super('CONFIG_INVALID', [`${source} is invalid:`, ...lines], { where: source })
    this.issues = Object.freeze([...issues])
  }
}

/**
 * The config names tables, columns, keys or roles that a database given to `generate` or `plan`
 * does not have as the config says: the migrations would fail there. Found before anything is
 * written; every problem at once, each with its config path.
 */
export class DatabaseMismatchError extends PgmlKitError {
  readonly issues: readonly ConfigIssue[]

  constructor(issues: readonly ConfigIssue[], source: string, database: string, notes: readonly string[] = []) {
    const lines = [...issues.map((issue) => `  ${issue.path}: ${issue.message}`), ...notes.map((note) => `  note: ${note}`)]
    super('CONFIG_DOES_NOT_MATCH_DATABASE', [`${source} does not match ${database}; migrations generated from it would fail there:`, ...lines], {
      where: source,
      hint: 'nothing was written: fix the config, or the database (in a migration of your own that runs before the generated ones), then run it again',
    })
    this.issues = Object.freeze([...issues])
  }
}

export class PlanError extends PgmlKitError {}
export class TargetError extends PgmlKitError {}
export class MigrationError extends PgmlKitError {}
