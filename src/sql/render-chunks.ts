import { quoteIdent, quoteQualified } from './quote.js'

/**
 * The chunk store of a chunked embedding column (issue 29, in progress): one row per chunk —
 * the source row's key, its position, its text, the hash of the text that was embedded, the
 * vector and the model that made it — with a foreign key to the source row that deletes the
 * chunks with it and moves them with a changed key.
 */
export interface ChunkStore {
  /** The source table. */
  readonly schema: string
  readonly table: string
  /** The source table's key columns and their SQL types, in order. */
  readonly key: readonly { readonly name: string; readonly type: string }[]
  /** The chunk table (in the source table's schema). */
  readonly chunkTable: string
  /** The vector column's type, e.g. `vector(384)` (qualified by the caller where pgvector's schema needs it). */
  readonly vectorType: string
}

/** Column names of the chunk table (the key columns keep their source names). */
export const CHUNK_COLUMNS = { seq: 'chunk_seq', text: 'chunk', hash: 'content_hash', vector: 'embedding', model: 'model' } as const

const keyList = (store: ChunkStore, prefix = '') => store.key.map((k) => `${prefix}${quoteIdent(k.name)}`).join(', ')
const keyMatch = (store: ChunkStore, firstParam: number) => store.key.map((k, i) => `${quoteIdent(k.name)} = $${firstParam + i}::${k.type}`).join(' AND ')

/** CREATE TABLE of the chunk store, with its foreign key (ON DELETE / ON UPDATE CASCADE). */
export function renderCreateChunkTable(store: ChunkStore): string {
  const c = CHUNK_COLUMNS
  const table = quoteQualified(store.schema, store.chunkTable)
  return [
    `CREATE TABLE ${table} (`,
    ...store.key.map((k) => `  ${quoteIdent(k.name)} ${k.type} NOT NULL,`),
    `  ${c.seq} integer NOT NULL,`,
    `  ${c.text} text NOT NULL,`,
    `  ${c.hash} text NOT NULL,`,
    `  ${c.vector} ${store.vectorType},`,
    `  ${c.model} text,`,
    `  PRIMARY KEY (${keyList(store)}, ${c.seq}),`,
    `  FOREIGN KEY (${keyList(store)}) REFERENCES ${quoteQualified(store.schema, store.table)} (${keyList(store)}) ON DELETE CASCADE ON UPDATE CASCADE`,
    ')',
  ].join('\n')
}

export function renderDropChunkTable(store: ChunkStore): string {
  return `DROP TABLE ${quoteQualified(store.schema, store.chunkTable)}`
}

/** A document's stored chunks, locked ($1… its key): position and hash. */
export function renderReadChunks(store: ChunkStore, lock: boolean): string {
  const c = CHUNK_COLUMNS
  return `SELECT ${c.seq} AS seq, ${c.hash} AS hash FROM ${quoteQualified(store.schema, store.chunkTable)} WHERE ${keyMatch(store, 1)} ORDER BY ${c.seq}${lock ? ' FOR UPDATE' : ''}`
}

/** Whether the source row exists, locked against a concurrent delete or key change ($1… its key). */
export function renderLockSource(store: ChunkStore): string {
  return `SELECT true AS present FROM ${quoteQualified(store.schema, store.table)} WHERE ${keyMatch(store, 1)} FOR KEY SHARE`
}

/**
 * The plan applied to a document's chunks, four statements ($1… the key, then their own):
 * `remove` ($n positions int[]), `hide` ($n positions int[]) and `move` ($n from int[], $n+1 to
 * int[]) — a move goes through a negative position first, so a permutation never meets the
 * primary key halfway — and `insert` ($n positions, $n+1 texts, $n+2 hashes, $n+3 vectors as
 * text, $n+4 the model).
 */
export function renderApplyChunks(store: ChunkStore): { remove: string; hide: string; move: string; insert: string } {
  const c = CHUNK_COLUMNS
  const table = quoteQualified(store.schema, store.chunkTable)
  const n = store.key.length + 1
  const match = keyMatch(store, 1)
  return {
    remove: `DELETE FROM ${table} WHERE ${match} AND ${c.seq} = ANY ($${n}::integer[])`,
    hide: `UPDATE ${table} SET ${c.seq} = -1 - ${c.seq} WHERE ${match} AND ${c.seq} = ANY ($${n}::integer[])`,
    move: `UPDATE ${table} AS t SET ${c.seq} = m.to_seq FROM ROWS FROM (pg_catalog.unnest($${n}::integer[]), pg_catalog.unnest($${n + 1}::integer[])) AS m(from_seq, to_seq)
  WHERE ${store.key.map((k, i) => `t.${quoteIdent(k.name)} = $${1 + i}::${k.type}`).join(' AND ')} AND t.${c.seq} = -1 - m.from_seq`,
    insert: `INSERT INTO ${table} (${keyList(store)}, ${c.seq}, ${c.text}, ${c.hash}, ${c.vector}, ${c.model})
  SELECT ${store.key.map((k, i) => `$${1 + i}::${k.type}`).join(', ')}, u.seq, u.chunk, u.hash, u.v::${store.vectorType}, $${n + 4}::text
  FROM ROWS FROM (pg_catalog.unnest($${n}::integer[]), pg_catalog.unnest($${n + 1}::text[]), pg_catalog.unnest($${n + 2}::text[]), pg_catalog.unnest($${n + 3}::text[])) AS u(seq, chunk, hash, v)`,
  }
}
