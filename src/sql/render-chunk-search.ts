import type { Distance } from '../config/schema.js'
import type { ChunkedColumnNode } from '../model/ir.js'
import { quoteIdent, quoteLiteral, quoteQualified } from './quote.js'
import { renderDistanceOperator } from './render-index.js'
import { CHUNK_COLUMNS } from './render-chunks.js'

/**
 * Searches over a chunked column's chunks. The nearest chunks come from the chunk table's vector
 * index (ORDER BY distance LIMIT candidates); documents are then their best chunk each, joined to
 * the source rows. Every operator and function is qualified (pgvector's with its schema), so the
 * caller's search_path cannot change what they mean. Fields kit adds to a document row are prefixed
 * `pgml_kit_` so they never collide with the table's columns.
 */

/** Names of the fields a document row carries besides the table's columns. */
export const CHUNK_HIT = { seq: 'pgml_kit_chunk_seq', text: 'pgml_kit_chunk', distance: 'pgml_kit_distance', score: 'pgml_kit_score', vectorRank: 'pgml_kit_vector_rank', textRank: 'pgml_kit_text_rank', hits: 'pgml_kit_hits' } as const

const keyAs = (node: ChunkedColumnNode, alias: string) => node.keyColumns.map((k, i) => `${alias}.${quoteIdent(k)} AS pgml_kit_key_${i}`).join(', ')
const keyRefs = (node: ChunkedColumnNode, alias: string) => node.keyColumns.map((_, i) => `${alias}.pgml_kit_key_${i}`).join(', ')
const joinKey = (node: ChunkedColumnNode, table: string, hit: string) => node.keyColumns.map((k, i) => `${table}.${quoteIdent(k)} = ${hit}.pgml_kit_key_${i}`).join(' AND ')
const columnList = (columns: readonly string[] | null) => (columns === null ? 't.*' : columns.map((c) => `t.${quoteIdent(c)}`).join(', '))

/** $1 the query vector (text), $2 candidates: the nearest chunks, with their row's key. */
function nearestChunks(node: ChunkedColumnNode, distance: Distance, vectorSchema: string): string {
  const c = CHUNK_COLUMNS
  const vector = `$1::${quoteQualified(vectorSchema, node.vectorType)}`
  const d = `c.${c.vector} ${renderDistanceOperator(distance, vectorSchema)} ${vector}`
  return `SELECT ${keyAs(node, 'c')}, c.${c.seq} AS ${CHUNK_HIT.seq}, c.${c.text} AS ${CHUNK_HIT.text}, ${d} AS ${CHUNK_HIT.distance}
  FROM ${quoteQualified(node.schema, node.chunkTable)} AS c
  WHERE c.${c.vector} IS NOT NULL
  ORDER BY ${d}
  LIMIT $2`
}

/** Chunks: $1 vector, $2 k → key columns (pgml_kit_key_<i>), position, text, distance. */
export function renderSearchChunks(node: ChunkedColumnNode, distance: Distance, vectorSchema: string): string {
  // Sorted again: an iterative scan (relaxed order) may return its rows slightly out of order.
  return `SELECT * FROM (${nearestChunks(node, distance, vectorSchema)}) AS n ORDER BY n.${CHUNK_HIT.distance}, ${keyRefs(node, 'n')}, n.${CHUNK_HIT.seq}`
}

/**
 * Documents: $1 vector, $2 candidate chunks, $3 k → the table's columns (`columns`, or all), and
 * the best chunk of each document among the candidates (its position, text and distance).
 */
export function renderSearchDocuments(node: ChunkedColumnNode, distance: Distance, vectorSchema: string, columns: readonly string[] | null): string {
  return `WITH hits AS (
  ${nearestChunks(node, distance, vectorSchema)}
), best AS (
  SELECT DISTINCT ON (${keyRefs(node, 'h')}) h.* FROM hits AS h ORDER BY ${keyRefs(node, 'h')}, h.${CHUNK_HIT.distance}, h.${CHUNK_HIT.seq}
)
SELECT ${columnList(columns)}, best.${CHUNK_HIT.seq}, best.${CHUNK_HIT.text}, best.${CHUNK_HIT.distance}, (SELECT pg_catalog.count(*) FROM hits)::int AS ${CHUNK_HIT.hits}
FROM best JOIN ${quoteQualified(node.schema, node.table)} AS t ON ${joinKey(node, 't', 'best')}
ORDER BY best.${CHUNK_HIT.distance}, ${node.keyColumns.map((k) => `t.${quoteIdent(k)}`).join(', ')}
LIMIT $3`
}

/**
 * Hybrid over chunks: the `candidates` nearest chunks and the `candidates` best full-text matches
 * of chunks (ts_rank_cd over the chunks' tsvector), fused by reciprocal rank fusion per chunk
 * ($1 vector, $2 candidates, $3 query text, $4 rrf k, $5 vector weight, $6 text weight), then
 * either the chunks ($7 k) or each document's best-scoring chunk ($7 k).
 */
export function renderHybridChunks(node: ChunkedColumnNode, distance: Distance, vectorSchema: string, as: 'chunks' | 'documents', columns: readonly string[] | null): string {
  if (!node.fullText) throw new TypeError('hybrid search over chunks needs chunking.fullText')
  const c = CHUNK_COLUMNS
  const query = `pg_catalog.websearch_to_tsquery(${quoteLiteral(node.fullText)}::regconfig, $3::text)`
  const keyEq = node.keyColumns.map((_, i) => `v.pgml_kit_key_${i} = x.pgml_kit_key_${i}`).join(' AND ')
  const fused = `WITH v AS (
  SELECT n.*, pg_catalog.row_number() OVER (ORDER BY n.${CHUNK_HIT.distance}) AS r FROM (${nearestChunks(node, distance, vectorSchema)}) AS n
), x AS (
  SELECT ${keyAs(node, 'c')}, c.${c.seq} AS ${CHUNK_HIT.seq}, c.${c.text} AS ${CHUNK_HIT.text},
    pg_catalog.row_number() OVER (ORDER BY pg_catalog.ts_rank_cd(c.${c.tsv}, ${query}) DESC, c.${c.seq}) AS r
  FROM ${quoteQualified(node.schema, node.chunkTable)} AS c
  WHERE c.${c.tsv} OPERATOR(pg_catalog.@@) ${query}
  ORDER BY pg_catalog.ts_rank_cd(c.${c.tsv}, ${query}) DESC, c.${c.seq}
  LIMIT $2
), fused AS (
  SELECT ${node.keyColumns.map((_, i) => `COALESCE(v.pgml_kit_key_${i}, x.pgml_kit_key_${i}) AS pgml_kit_key_${i}`).join(', ')},
    COALESCE(v.${CHUNK_HIT.seq}, x.${CHUNK_HIT.seq}) AS ${CHUNK_HIT.seq}, COALESCE(v.${CHUNK_HIT.text}, x.${CHUNK_HIT.text}) AS ${CHUNK_HIT.text},
    v.${CHUNK_HIT.distance},
    COALESCE($5::float8 / ($4::float8 + v.r), 0) + COALESCE($6::float8 / ($4::float8 + x.r), 0) AS ${CHUNK_HIT.score},
    v.r::int AS ${CHUNK_HIT.vectorRank}, x.r::int AS ${CHUNK_HIT.textRank}
  FROM v FULL JOIN x ON ${keyEq} AND v.${CHUNK_HIT.seq} = x.${CHUNK_HIT.seq}
)`
  if (as === 'chunks') return `${fused}
SELECT * FROM fused ORDER BY ${CHUNK_HIT.score} DESC, ${keyRefs(node, 'fused')}, ${CHUNK_HIT.seq} LIMIT $7`
  return `${fused}, best AS (
  SELECT DISTINCT ON (${keyRefs(node, 'f')}) f.* FROM fused AS f ORDER BY ${keyRefs(node, 'f')}, f.${CHUNK_HIT.score} DESC, f.${CHUNK_HIT.seq}
)
SELECT ${columnList(columns)}, best.${CHUNK_HIT.seq}, best.${CHUNK_HIT.text}, best.${CHUNK_HIT.distance}, best.${CHUNK_HIT.score}, best.${CHUNK_HIT.vectorRank}, best.${CHUNK_HIT.textRank}, (SELECT pg_catalog.count(*) FROM v)::int AS ${CHUNK_HIT.hits}
FROM best JOIN ${quoteQualified(node.schema, node.table)} AS t ON ${joinKey(node, 't', 'best')}
ORDER BY best.${CHUNK_HIT.score} DESC, ${node.keyColumns.map((k) => `t.${quoteIdent(k)}`).join(', ')}
LIMIT $7`
}

/** $1 ef_search, $2 whether to let HNSW scan on past ef_search (pgvector 0.8's iterative scan), for this transaction only. */
export const CHUNK_SEARCH_SETTINGS = `SELECT pg_catalog.set_config('hnsw.ef_search', $1::text, true), CASE WHEN $2::boolean THEN pg_catalog.set_config('hnsw.iterative_scan', 'relaxed_order', true) END`
