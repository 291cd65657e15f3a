import type { Distance } from '../config/schema.js'
import type { VectorIndexNode, VectorType } from '../model/ir.js'
import { bytesPerElement } from '../indexes/advice.js'
import { deriveIdentifier, dollarQuote, quoteIdent, quoteLiteral, quoteQualified, renderInteger } from './quote.js'

const OPCLASS_SUFFIX = { l2: 'l2_ops', inner_product: 'ip_ops', cosine: 'cosine_ops', l1: 'l1_ops' } as const

/** pgvector's operator for each distance: the one an index of that distance's operator class orders by. */
export const DISTANCE_OPERATOR: Readonly<Record<Distance, string>> = { l2: '<->', inner_product: '<#>', cosine: '<=>', l1: '<+>' }

/**
 * The distance operator, as `OPERATOR("schema".<=>)` when pgvector's schema is given: found with
 * any search_path (see render-vector-schema.ts), and an index orders by it all the same.
 */
export function renderDistanceOperator(distance: Distance, vectorSchema: string | null = null): string {
  return vectorSchema === null ? DISTANCE_OPERATOR[distance] : `OPERATOR(${quoteIdent(vectorSchema)}.${DISTANCE_OPERATOR[distance]})`
}

/** HNSW has no default operator class, so one is always named; it must match the query's operator. */
export function operatorClass(index: VectorIndexNode, vectorType: VectorType): string {
  return `${vectorType}_${OPCLASS_SUFFIX[index.distance]}`
}

/** The operator class as an index names it: qualified with pgvector's schema when it is given. */
function renderOperatorClass(index: VectorIndexNode, vectorType: VectorType, vectorSchema: string | null): string {
  return vectorSchema === null ? quoteIdent(operatorClass(index, vectorType)) : quoteQualified(vectorSchema, operatorClass(index, vectorType))
}

function renderWith(index: VectorIndexNode): string {
  const entries = Object.entries(index.params)
  if (entries.length === 0) return ''
  return ` WITH (${entries.map(([key, value]) => `${key} = ${renderInteger(value)}`).join(', ')})`
}

/** Name of the temporary index a rebuild creates before it replaces the old one. */
export function rebuildIndexName(index: VectorIndexNode): string {
  return deriveIdentifier([index.name, 'pgml_kit_new'])
}

/** Where an INVALID leftover of a failed build of `name` is moved before it is dropped. */
function leftoverName(name: string): string {
  return deriveIdentifier([name, 'pgml_kit_invalid'])
}

/**
 * Creates the index unless an index of that name exists (a re-run after the build succeeded).
 * Migrations name the operator class plainly (migrate searches pgvector's schema); a repair run
 * outside migrate qualifies it with `vectorSchema`.
 */
export function renderCreateIndexConcurrently(index: VectorIndexNode, vectorType: VectorType, name = index.name, vectorSchema: string | null = null): string {
  return `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${quoteIdent(name)} ON ${quoteQualified(index.schema, index.table)} USING ${index.method} (${quoteIdent(index.column)} ${renderOperatorClass(index, vectorType, vectorSchema)})${renderWith(index)};`
}

export function renderDropIndexConcurrently(schema: string, name: string): string {
  return `DROP INDEX CONCURRENTLY IF EXISTS ${quoteQualified(schema, name)};`
}

/**
 * A build that failed (or was cancelled) leaves an INVALID index under its name. Only such a
 * leftover is moved aside, under a name of its own, and dropped — a valid index of that name
 * (a build that finished before a later step failed) stays, and the create after these skips it.
 */
export function renderDropInvalidLeftover(schema: string, name: string): string[] {
  const aside = leftoverName(name)
  const body = `
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_index i
             JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ${quoteLiteral(schema)} AND c.relname = ${quoteLiteral(name)} AND NOT i.indisvalid) THEN
    ALTER INDEX ${quoteQualified(schema, name)} RENAME TO ${quoteIdent(aside)};
  END IF;
END
`
  return [
    renderDropIndexConcurrently(schema, aside),
    `DO ${dollarQuote(body)};`,
    renderDropIndexConcurrently(schema, aside),
  ]
}

/**
 * After the build: the index of that name is valid and is the one the config describes (an index
 * someone else created under the name would otherwise be taken for it).
 */
export function renderVerifyIndex(index: VectorIndexNode, vectorType: VectorType): string {
  const options = Object.entries(index.params).map(([k, v]) => `${k}=${renderInteger(v)}`)
  const body = `
DECLARE
  found record;
BEGIN
  SELECT i.indisvalid AS valid, am.amname::text AS method, oc.opcname::text AS opclass, c.reloptions AS options
    INTO found
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_am am ON am.oid = c.relam
    JOIN pg_catalog.pg_opclass oc ON oc.oid = i.indclass[0]
    WHERE n.nspname = ${quoteLiteral(index.schema)} AND c.relname = ${quoteLiteral(index.name)};
  IF found IS NULL OR NOT found.valid OR found.method <> ${quoteLiteral(index.method)} OR found.opclass <> ${quoteLiteral(operatorClass(index, vectorType))}
     OR coalesce(found.options, '{}') OPERATOR(pg_catalog.<>) ${options.length > 0 ? `ARRAY[${options.map(quoteLiteral).join(', ')}]` : "'{}'"}::text[] THEN
    RAISE EXCEPTION 'pgml-kit: index %.% is not the one the config describes (found: %)', ${quoteLiteral(index.schema)}, ${quoteLiteral(index.name)}, coalesce(found::text, 'no index')
      USING HINT = 'an index of that name was there before; drop it, or give the config''s index another name';
  END IF;
END
`
  return `DO ${dollarQuote(body)};`
}

export function renderRenameIndex(schema: string, from: string, to: string): string {
  return `ALTER INDEX IF EXISTS ${quoteQualified(schema, from)} RENAME TO ${quoteIdent(to)};`
}

/** The column facts a build's memory estimate needs. */
export interface BuildColumn {
  readonly dimensions: number
  readonly vectorType: VectorType
}

/** The session settings a build may change, put back by the step after the build (and by migrate after a failure). */
export const BUILD_SETTINGS = ['maintenance_work_mem', 'max_parallel_maintenance_workers'] as const

/**
 * `SET`s for the session that builds `index` (its `build` settings), or none. `'auto'` values are
 * computed by the statement itself when it runs, from the table's rows then (pg_class.reltuples,
 * or a count when the table was never analysed): the migration sizes the build for the database it
 * runs on, not the one it was generated against. Memory is never set below the server's own
 * setting nor above `memoryLimit`.
 */
export function renderBuildSettings(index: VectorIndexNode, column: BuildColumn): { set: string[]; reset: string[] } {
  const build = index.build
  if (!build || (build.memory === null && build.parallelWorkers === null)) return { set: [], reset: [] }
  const table = quoteQualified(index.schema, index.table)
  const vectorBytes = 8 + column.dimensions * bytesPerElement(column.vectorType)
  // Integer arithmetic on a bigint row count throughout: every operator has an exact built-in match.
  const needed = index.method === 'hnsw'
    ? `r.n * ${Math.ceil((vectorBytes + 2 * (index.params.m ?? 16) * 16 + 300) * 1.1)}`
    : `(least(r.n, ${(index.params.lists ?? 100) * 50}) + ${2 * (index.params.lists ?? 100)}) * ${Math.ceil(vectorBytes * 1.1)}`
  const assignments: string[] = []
  const reset: string[] = []
  if (build.memory === 'auto') {
    assignments.push(`pg_catalog.set_config('maintenance_work_mem', (greatest(pg_catalog.pg_size_bytes(pg_catalog.current_setting('maintenance_work_mem')),
           least(pg_catalog.pg_size_bytes(${quoteLiteral(build.memoryLimit)}), ${needed})) / 1024)::text || 'kB', false) AS maintenance_work_mem`)
  } else if (build.memory !== null) {
    assignments.push(`pg_catalog.set_config('maintenance_work_mem', ${quoteLiteral(build.memory)}, false) AS maintenance_work_mem`)
  }
  if (build.memory !== null) reset.push('RESET maintenance_work_mem;')
  if (build.parallelWorkers === 'auto') {
    // One worker per 100,000 rows (at most 7, within max_parallel_workers), never fewer than the
    // server's own setting: 'auto' only ever raises it, as it does memory.
    assignments.push(`pg_catalog.set_config('max_parallel_maintenance_workers', greatest(pg_catalog.current_setting('max_parallel_maintenance_workers')::int,
           least(pg_catalog.current_setting('max_parallel_workers')::int, least(7, r.n / 100000)))::text, false) AS max_parallel_maintenance_workers`)
  } else if (build.parallelWorkers !== null) {
    assignments.push(`pg_catalog.set_config('max_parallel_maintenance_workers', ${quoteLiteral(renderInteger(build.parallelWorkers))}, false) AS max_parallel_maintenance_workers`)
  }
  if (build.parallelWorkers !== null) reset.push('RESET max_parallel_maintenance_workers;')
  const set = `-- Build settings for this session (build: ${build.memory === 'auto' || build.parallelWorkers === 'auto' ? "'auto', sized from the table's rows now" : 'as configured'}).
SELECT ${assignments.join(',\n       ')}
FROM (SELECT CASE WHEN c.reltuples > 0::real THEN c.reltuples::bigint ELSE (SELECT pg_catalog.count(*) FROM ${table}) END AS n
      FROM pg_catalog.pg_class c WHERE c.oid = ${quoteLiteral(table)}::regclass::oid) AS r;`
  return { set: [set], reset }
}
