/**
 * A value as one shell word, for the commands hints print (`pgml-kit models 'house price'\''s'`):
 * as it is when it holds only characters no shell treats specially, else in single quotes (a
 * single quote inside written '\''), so that copying the hint runs what it says.
 */
export function shellArg(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`
}
