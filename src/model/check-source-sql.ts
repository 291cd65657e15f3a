import { parseSync } from 'libpg-query'
import type { ConfigIssue } from '../errors.js'
import { loadParser } from '../migrations/split-statements.js'
import type { DesiredState } from './ir.js'

/**
 * A feature view's source given as SQL runs inside its materialize function, whose search_path is
 * pinned to pg_catalog (so no object another role creates can stand in for a name). Every table it
 * reads must therefore be schema-qualified; found at generate time, with the config path, instead
 * of as "relation does not exist" at the first materialisation.
 */
export async function checkSourceSql(state: DesiredState): Promise<ConfigIssue[]> {
  const views = state.featureViews.filter((v) => v.source.kind === 'sql')
  if (views.length === 0) return []
  await loadParser()
  const issues: ConfigIssue[] = []
  for (const view of views) {
    if (view.source.kind !== 'sql') continue
    const path = `features.views.${view.name}.source.sql`
    let tree: unknown
    try {
      tree = parseSync(view.source.sql)
    } catch (error) {
      issues.push({ path, message: `is not valid SQL: ${(error as Error).message}` })
      continue
    }
    const unqualified = new Set<string>()
    const ctes = new Set<string>()
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(walk)
      if (!node || typeof node !== 'object') return
      for (const [key, value] of Object.entries(node)) {
        if (key === 'CommonTableExpr' && value && typeof value === 'object' && 'ctename' in value) ctes.add(String((value as { ctename: unknown }).ctename))
        if (key === 'RangeVar' && value && typeof value === 'object' && !('schemaname' in value)) unqualified.add(String((value as { relname?: unknown }).relname))
        walk(value)
      }
    }
    walk(tree)
    const names = [...unqualified].filter((n) => !ctes.has(n))
    if (names.length > 0) {
      issues.push({ path, message: `names ${names.map((n) => `"${n}"`).join(', ')} without a schema; materialisation runs with search_path = pg_catalog, so write schema.table (e.g. public.${names[0]})` })
    }
  }
  return issues
}
