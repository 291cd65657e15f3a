import type { GrantAtom } from '../plan/grants.js'
import { quoteIdent, quoteLiteral, quoteQualified } from './quote.js'

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

/** Schema pgml belongs to whoever installed PostgresML or pgml_compat, usually not the role that migrates. */
const PGML = 'pgml'
const isPgml = (atom: GrantAtom) => atom.on.kind === 'schema' && atom.on.schema === PGML

/**
 * USAGE on schema pgml, passed on only by a role that holds it WITH GRANT OPTION (or owns the
 * schema, or is a superuser). Any other migrating role leaves it to the administrator and says so
 * in one notice naming the statement, where a plain GRANT would warn "no privileges were granted"
 * once per role and grant nothing.
 */
function renderPgmlGrant(atoms: readonly GrantAtom[]): string {
  const statements = group(atoms).map((g) => `GRANT ${g.privileges} ON ${g.object} TO ${quoteIdent(g.role)};`)
  const roles = [...new Set(atoms.map((a) => a.role))].map(quoteIdent).join(', ')
  return `DO $pgml_kit$
BEGIN
  IF pg_catalog.has_schema_privilege('${PGML}', 'USAGE WITH GRANT OPTION') THEN
${statements.map((st) => `    ${st}`).join('\n')}
  ELSE
    RAISE NOTICE 'pgml-kit: % holds no USAGE WITH GRANT OPTION on schema pgml, so it cannot pass USAGE on to %; an administrator runs: %',
      current_user, ${quoteLiteral(roles)}, ${quoteLiteral(statements.join(' '))};
  END IF;
END
$pgml_kit$;`
}

function renderPgmlRevoke(atoms: readonly GrantAtom[]): string {
  const statements = group(atoms).map((g) => `REVOKE ${g.privileges} ON ${g.object} FROM ${quoteIdent(g.role)};`)
  return `DO $pgml_kit$
BEGIN
  IF pg_catalog.to_regnamespace('${PGML}') IS NOT NULL AND pg_catalog.has_schema_privilege('${PGML}', 'USAGE WITH GRANT OPTION') THEN
${statements.map((st) => `    ${st}`).join('\n')}
  END IF;
END
$pgml_kit$;`
}

export function renderGrants(atoms: readonly GrantAtom[]): string[] {
  const pgml = atoms.filter(isPgml)
  return [
    ...group(atoms.filter((a) => !isPgml(a))).map((g) => `GRANT ${g.privileges} ON ${g.object} TO ${quoteIdent(g.role)};`),
    ...(pgml.length > 0 ? [renderPgmlGrant(pgml)] : []),
  ]
}

export function renderRevokes(atoms: readonly GrantAtom[]): string[] {
  const pgml = atoms.filter(isPgml)
  return [
    ...(pgml.length > 0 ? [renderPgmlRevoke(pgml)] : []),
    ...group(atoms.filter((a) => !isPgml(a))).map((g) => `REVOKE ${g.privileges} ON ${g.object} FROM ${quoteIdent(g.role)};`),
  ]
}

/** A GRANT as one plain statement (no condition), for what `status` prints as the fix. */
export function renderPlainGrant(atom: GrantAtom): string {
  return group([atom]).map((g) => `GRANT ${g.privileges} ON ${g.object} TO ${quoteIdent(g.role)};`)[0] ?? ''
}
