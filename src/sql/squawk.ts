/**
 * A comment that tells squawk (the migration linter DBAs run in CI) to let the next statement
 * pass one or more of its rules, with the reason on the same line for the reviewer. pgml-kit's
 * test suite runs squawk over everything it generates; every finding is fixed or carries one of these.
 */
export function squawkIgnore(rules: readonly string[], reason: string): string {
  if (/[\r\n]/.test(reason)) throw new TypeError('a squawk-ignore reason is one line')
  return `-- squawk-ignore ${rules.join(', ')} -- ${reason}\n`
}
