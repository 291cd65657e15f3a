import pg from 'pg'
import { VECTOR_TYPE_OIDS } from '../sql/render-introspection.js'

/**
 * Makes node-postgres return pgvector columns (`vector`, `halfvec`) as `number[]` (or
 * `Float32Array` with `{ as: 'float32' }`) instead of the text `'[1,2,3]'`. For a client the parsers
 * are its own; for a pool they are registered with node-postgres globally (type OIDs are looked up
 * in this database).
 *
 * @example
 * const pool = new pg.Pool()
 * await registerVectorTypes(pool)
 */
export async function registerVectorTypes(target: pg.Pool | pg.Client, options: { readonly as?: 'array' | 'float32' } = {}): Promise<void> {
  const { rows } = await target.query<{ oid: number }>(VECTOR_TYPE_OIDS)
  const parse = options.as === 'float32'
    ? (text: string) => Float32Array.from(JSON.parse(text) as number[])
    : (text: string) => JSON.parse(text) as number[]
  for (const { oid } of rows) {
    if (target instanceof pg.Client) target.setTypeParser(oid, 'text', parse)
    else pg.types.setTypeParser(oid, 'text', parse)
  }
}
