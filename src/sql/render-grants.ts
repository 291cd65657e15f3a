import type { GrantAtom } from '../plan/grants.js'
import { quoteIdent, quoteQualified } from './quote.js'

/**
 * GRANT and REVOKE statements for grant atoms, one statement per role and object: whole-object
 * privileges in one list, column privileges as `SELECT ("a", "b"), UPDATE ("c")`.
 */
function renderObject(atom: GrantAtom): string {
  return atom.on.kind === 'schema' ? `SCHEMA ${quoteIdent(atom.on.schema)}` : `TABLE ${quoteQualified(atom.on.schema, atom.on.table)}`
}

function group(atoms: readonly GrantAtom[]): { role: string; object: string; privileges: string }[] {
  const byTarget = new Map<string, { role: string; object: string; whole: Set<string>; columns: Map<string, string[]> }>()
  for (const atom of atoms) {
    const object = renderObject(atom)
    const key = JSON.stringify([atom.role, object, atom.column === null])
    let entry = byTarget.get(key)
    if (!entry) byTarget.set(key, (entry = { role: atom.role, object, whole: new Set(), columns: new Map() }))
    if (atom.column === null) entry.whole.add(atom.privilege)
    else entry.columns.set(atom.privilege, [...(entry.columns.get(atom.privilege) ?? []), atom.column])
  }
  const order = ['USAGE', 'SELECT', 'INSERT', 'UPDATE', 'DELETE']
  return [...byTarget.values()].map((entry) => ({
    role: entry.role,
    object: entry.object,
    privileges: entry.whole.size > 0
      ? order.filter((p) => entry.whole.has(p)).join(', ')
      : order.filter((p) => entry.columns.has(p)).map((p) => `${p} (${(entry.columns.get(p) ?? []).map(quoteIdent).join(', ')})`).join(', '),
  }))
}

export function renderGrants(atoms: readonly GrantAtom[]): string[] {
  return group(atoms).map((g) => `GRANT ${g.privileges} ON ${g.object} TO ${quoteIdent(g.role)};`)
}

export function renderRevokes(atoms: readonly GrantAtom[]): string[] {
  return group(atoms).map((g) => `REVOKE ${g.privileges} ON ${g.object} FROM ${quoteIdent(g.role)};`)
}
