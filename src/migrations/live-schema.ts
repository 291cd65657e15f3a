import { readFile } from 'node:fs/promises'
import type pg from 'pg'
import type { DesiredState, MigrationSettings } from '../model/ir.js'
import type { LiveSchema, LiveTable } from '../plan/live-checks.js'
import { EXISTING_ROLES, TABLE_SHAPES } from '../sql/render-introspection.js'
import { listMigrations } from './files.js'
import { readApplied } from './run.js'
import { isGenerated } from './directives.js'

/**
 * Reads what `generate --database-url` checks a plan against (see checkAgainstDatabase): the
 * tables and roles `state` names, and the project's own migrations in `dir` that the database has
 * not applied. Read-only.
 */
export async function readLiveSchema(
  client: pg.ClientBase, state: DesiredState, migrations: { readonly dir: string; readonly settings: MigrationSettings }, source: string,
  tableRenames: readonly { readonly schema: string; readonly from: string }[] = [],
): Promise<LiveSchema> {
  // A table the config renames is read under its old name too (the rename may not be applied there yet).
  const named = [...state.embeddingColumns, ...state.fullText, ...tableRenames.map((r) => ({ schema: r.schema, table: r.from }))]
  const tables = [...new Map(named.map((n) => [`${n.schema}.${n.table}`, n])).values()]
  const { rows } = await client.query<{ schema: string; table: string; columns: { name: string; type: string; text: boolean }[]; keys: string[][] }>(
    TABLE_SHAPES, [tables.map((t) => t.schema), tables.map((t) => t.table)])
  const shapes = new Map<string, LiveTable>(rows.map((r) => [`${r.schema}.${r.table}`, {
    columns: new Map(r.columns.map((c) => [c.name, { type: c.type, text: c.text }])),
    keys: r.keys,
  }]))
  const names = [...new Set([...state.roles.app, ...state.roles.worker, ...(state.roles.trainer ?? [])])]
  const roles = new Set((await client.query<{ name: string }>(EXISTING_ROLES, [names])).rows.map((r) => r.name))
  const applied = new Set((await readApplied(client, migrations.settings)).map((a) => a.name))
  const pending: { name: string; text: string }[] = []
  for (const file of await listMigrations(migrations.dir)) {
    if (applied.has(file.name)) continue
    const text = await readFile(file.path, 'utf8')
    // pgml-kit's own migrations create no table or column of yours.
    if (!isGenerated(text)) pending.push({ name: file.name, text })
  }
  return { source, tables: shapes, roles, pending }
}
