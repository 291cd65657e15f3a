import type pg from 'pg'
import { CAPABILITIES } from '../sql/render-introspection.js'

export type PgmlKind = 'pgml' | 'pgml_compat' | 'unmanaged' | 'installable' | 'absent'

/** What a target can do, read from the catalog before anything is changed. */
export interface Capabilities {
  readonly serverVersion: string
  readonly serverVersionNum: number
  readonly vector: {
    readonly installed: string | null
    readonly available: string | null
    /** The schema it is installed in (null: not installed), and whether this role may use it (USAGE). */
    readonly schema: string | null
    readonly usable: boolean
  }
  /** The role connected (`current_user`). */
  readonly role: string
  /**
   * `pgml` / `pgml_compat`: that extension is installed; `unmanaged`: `pgml.embed` exists outside
   * an extension; `installable`: not installed but `CREATE EXTENSION` would work; `absent`: none.
   */
  readonly pgml: PgmlKind
  readonly pgmlVersion: string | null
  /** Whether the connected role may use schema pgml (null: there is no schema pgml). */
  readonly pgmlUsage: boolean | null
  /** Whether the connected role is a superuser (may create extensions that are not trusted). */
  readonly superuser: boolean
}

export function canEmbedInDatabase(capabilities: Capabilities): boolean {
  return capabilities.pgml !== 'absent'
}

export async function detectCapabilities(client: pg.ClientBase): Promise<Capabilities> {
  const { rows } = await client.query<{
    server_version: string; server_version_num: string
    vector_installed: string | null; vector_available: string | null; vector_schema: string | null; vector_usable: boolean | null; role: string
    pgml: string | null; pgml_compat: string | null; has_embed: boolean
    pgml_available: boolean; compat_available: boolean; pgml_usage: boolean | null; superuser: boolean | null
  }>(CAPABILITIES)
  const row = rows[0]
  if (!row) throw new Error('capability query returned no row')
  const pgml: PgmlKind = row.pgml ? 'pgml'
    : row.pgml_compat ? 'pgml_compat'
      : row.has_embed ? 'unmanaged'
        : row.pgml_available || row.compat_available ? 'installable'
          : 'absent'
  return {
    serverVersion: row.server_version,
    serverVersionNum: Number(row.server_version_num),
    vector: { installed: row.vector_installed, available: row.vector_available, schema: row.vector_schema, usable: row.vector_usable ?? false },
    role: row.role,
    pgml,
    pgmlVersion: row.pgml ?? row.pgml_compat,
    pgmlUsage: row.pgml_usage,
    superuser: row.superuser === true,
  }
}
