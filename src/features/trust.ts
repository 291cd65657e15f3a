import type pg from 'pg'
import { PgmlKitError } from '../errors.js'
import { RELATION_TRUST } from '../sql/render-serving.js'

/**
 * Before `monitor` or `models compare` reads a relation the config names (a monitor relation, the
 * outcomes of `serving.labels`): whoever owns it wrote the code a read can run — a view's functions,
 * the casts and output functions of its columns' types — and that code runs with the rights of the
 * role reading it. So the relation must be owned by that role, a superuser, a role that inherits
 * its rights (it has them already) or the owner of the pgml_kit schema (the role that migrates) —
 * and so must everything a view reads, all the way down (relations, functions, operators, types) —
 * and the columns read must be of types such a role owns (built-in types, those of extensions a
 * superuser created). Otherwise an error names the
 * relation, its owner and the config setting, and nothing is read.
 */
export async function requireTrustedRelation(client: pg.ClientBase, relation: string, columns: readonly string[], where: string): Promise<void> {
  const { rows } = await client.query<{ found: boolean; owner: string | null; trusted: boolean | null; foreign_types: string[] | null; untrusted_uses: string[] | null }>(RELATION_TRUST, [relation, [...columns]])
  const r = rows[0]
  if (!r?.found) throw new PgmlKitError('RELATION_MISSING', `${relation} does not exist (or this role may not see it)`, { where })
  if (!r.trusted) {
    throw new PgmlKitError('RELATION_UNTRUSTED', `${relation} is owned by role ${r.owner ?? '?'}: reading it would run code that role wrote (a view's functions, its column types' casts) with this role's rights`, {
      where, hint: 'own it (ALTER ... OWNER TO the role that runs pgml-kit), or copy what it should read into a table that role owns',
    })
  }
  if ((r.untrusted_uses ?? []).length > 0) {
    throw new PgmlKitError('RELATION_UNTRUSTED', `${relation} reads what another role owns: ${r.untrusted_uses!.join(', ')}; reading it would run that role's code (a view's functions, a table's row-level security policies) with this role's rights`, {
      where, hint: 'read only relations, functions and types that trusted roles own (or copy the rows into a table the role that runs pgml-kit owns)',
    })
  }
  if ((r.foreign_types ?? []).length > 0) {
    throw new PgmlKitError('RELATION_UNTRUSTED', `${relation}: column${r.foreign_types!.length > 1 ? 's' : ''} ${r.foreign_types!.join(', ')} ${r.foreign_types!.length > 1 ? 'are' : 'is'} of a type another role owns; its casts and output would run with this role's rights`, {
      where, hint: 'give them a built-in type (text, integer, double precision, ...), or read them through a view that casts them',
    })
  }
}
