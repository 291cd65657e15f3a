import type { ChunkedColumnNode, EmbeddingColumnNode } from '../model/ir.js'
import { chunkTableComment } from '../model/chunk-rollout.js'
import { dollarQuote, deriveIdentifier, quoteIdent, quoteLiteral, quoteQualified, renderField } from './quote.js'
import { renderRenameIndex } from './render-index.js'
import { renderAfterKey, renderKeyColumns, renderKeyMatch, renderRowKey } from './render-row-key.js'
import { renderSourceText, renderVectorType } from './render-source.js'
import { guardedBody, renderTriggerFunction, triggerFunctionOf } from './render-trigger.js'
import { squawkIgnore } from './squawk.js'

/**
 * The chunk store of a chunked embedding column: one row per chunk — the source row's key, its
 * position, its text, the hash of the text that was embedded, the vector and the model that made
 * it — with a foreign key to the source row that deletes the chunks with it and moves them with a
 * changed key. Statements that touch one document take its key as one jsonb parameter, read back
 * as the source table's own key types (render-row-key.ts), so keys of every type stay exact.
 */
export interface ChunkStore {
  /** The source table. */
  readonly schema: string
  readonly table: string
  /** The source table's key columns, in order. */
  readonly keyColumns: readonly string[]
  /** The chunk table (in the source table's schema). */
  readonly chunkTable: string
  /** The vector column's type, e.g. `vector(384)`. */
  readonly vectorType: string
  /** Text search configuration of the chunks' tsvector column, or null for none. */
  readonly fullText?: string | null
}

/** Column names of the chunk table (the key columns keep their source names). */
export const CHUNK_COLUMNS = { seq: 'chunk_seq', text: 'chunk', hash: 'content_hash', vector: 'embedding', model: 'model', tsv: 'chunk_tsv' } as const

/**
 * A text with something besides white space: the characters JavaScript's \\s matches (which the
 * splitter drops), in PostgreSQL's regular expressions, so status and backfill count as "with
 * text" exactly the rows that get chunks, in every locale.
 */
const HAS_TEXT = `'[^ \\t\\n\\v\\f\\r\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]'`

/** The store of a chunked column. */
export function chunkStoreOf(node: ChunkedColumnNode): ChunkStore {
  return { schema: node.schema, table: node.table, keyColumns: node.keyColumns, chunkTable: node.chunkTable, vectorType: renderVectorType(node), fullText: node.fullText }
}

const keyList = (store: ChunkStore, prefix = '') => store.keyColumns.map((k) => `${prefix}${quoteIdent(k)}`).join(', ')
/** The document's chunks: the chunk table's key columns equal to $1's, read back as the source's types. */
const keyMatch = (store: ChunkStore, alias: string, param = '$1') => renderKeyMatch({ schema: store.schema, table: store.table, keyColumns: store.keyColumns }, alias, `${param}::jsonb`)

/**
 * The chunk table, created empty from the source table's key columns (so they have its types,
 * typmods and collations, whatever they are), then given its columns, primary key and foreign key
 * (ON DELETE / ON UPDATE CASCADE), and the tsvector of each chunk when the column asks for one.
 */
export function renderCreateChunkTable(store: ChunkStore): string[] {
  const c = CHUNK_COLUMNS
  const table = quoteQualified(store.schema, store.chunkTable)
  const source = quoteQualified(store.schema, store.table)
  const empty = 'the chunk table is created empty by the statement before, in this transaction: nothing to scan, no reader or writer to block'
  const alter = (rules: readonly string[], reason: string, change: string) => `${squawkIgnore(rules, reason)}ALTER TABLE ${table} ${change};`
  return [
    `CREATE TABLE ${table} AS SELECT ${keyList(store)} FROM ${source} WITH NO DATA;`,
    alter(['adding-not-nullable-field', 'adding-required-field', 'prefer-bigint-over-int'], `${empty}; chunk_seq counts the chunks of one document`, [
      ...store.keyColumns.map((k) => `ALTER COLUMN ${quoteIdent(k)} SET NOT NULL`),
      `ADD COLUMN ${c.seq} integer NOT NULL`, `ADD COLUMN ${c.text} text NOT NULL`, `ADD COLUMN ${c.hash} text NOT NULL`,
      `ADD COLUMN ${c.vector} ${store.vectorType}`, `ADD COLUMN ${c.model} text`,
    ].join(', ')),
    ...(store.fullText ? [alter(['adding-field-with-default'], empty, `ADD COLUMN ${c.tsv} tsvector GENERATED ALWAYS AS (pg_catalog.to_tsvector(${quoteLiteral(store.fullText)}::regconfig, ${c.text})) STORED`)] : []),
    alter(['adding-serial-primary-key-field', 'constraint-missing-not-valid'], empty, `ADD CONSTRAINT ${quoteIdent(chunkPrimaryKeyName(store))} PRIMARY KEY (${keyList(store)}, ${c.seq})`),
    alter(['adding-foreign-key-constraint', 'constraint-missing-not-valid'], `${empty}; the lock it takes on the source table is brief, and waits at most lock_timeout`,
      `ADD FOREIGN KEY (${keyList(store)}) REFERENCES ${source} (${keyList(store)}) ON DELETE CASCADE ON UPDATE CASCADE`),
    ...(store.fullText ? [`${squawkIgnore(['require-concurrent-index-creation'], empty)}CREATE INDEX ${quoteIdent(chunkGinIndexName(store))} ON ${table} USING gin (${c.tsv});`] : []),
  ]
}

/** The chunk table's primary key (and its index): named after the table, so a staged change's switch renames it with the table. */
export function chunkPrimaryKeyName(store: Pick<ChunkStore, 'chunkTable'>): string {
  return deriveIdentifier([store.chunkTable, 'pkey'])
}

/** The settings the chunk table's chunks are made with, as its comment (src/model/chunk-rollout.ts). */
export function renderCommentChunkTable(node: ChunkedColumnNode): string {
  return `COMMENT ON TABLE ${quoteQualified(node.schema, node.chunkTable)} IS ${quoteLiteral(chunkTableComment(node))};`
}

/** $1 schemas, $2 tables → one row each, in order: whether the table exists, its comment and its owner's oid (as text). */
export const READ_CHUNK_TABLES = `SELECT r.oid IS NOT NULL AS present, pg_catalog.obj_description(r.oid, 'pg_class') AS comment,
  (SELECT k.relowner::text FROM pg_catalog.pg_class AS k WHERE k.oid OPERATOR(pg_catalog.=) r.oid) AS owner
FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) WITH ORDINALITY AS c(s, t, n)
LEFT JOIN LATERAL (SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(c.s) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.t))::oid AS oid) AS r ON true
ORDER BY c.n`

/** $1 a role's oid, $2 another's (as text): whether the first has the second's rights (is it, a member of it, or a superuser). */
export const OWNER_HAS_RIGHTS_OF = `SELECT pg_catalog.pg_has_role($1::oid, $2::oid, 'USAGE') AS ok`

/** A savepoint around a lock that may name a table renamed meanwhile (served.ts). */
export const SAVEPOINT = 'SAVEPOINT pgml_kit_chunk_tables'
export const RELEASE_SAVEPOINT = 'RELEASE SAVEPOINT pgml_kit_chunk_tables'
export const ROLLBACK_TO_SAVEPOINT = 'ROLLBACK TO SAVEPOINT pgml_kit_chunk_tables'

/** $1 a table's qualified name → its comment (null: none, or no such table). */
export const READ_CHUNK_TABLE_COMMENT = `SELECT pg_catalog.obj_description(pg_catalog.to_regclass($1::text)::oid, 'pg_class') AS comment`

/**
 * Chunk tables locked against a switch (ROW EXCLUSIVE: what writing them takes anyway, so writers
 * never wait for each other), before their comments are read in the same transaction: a staged
 * change's switch renames them under ACCESS EXCLUSIVE, so a write either ends before the switch or
 * reads the settings the switch left.
 */
export function renderLockChunkTables(stores: readonly Pick<ChunkStore, 'schema' | 'chunkTable'>[]): string {
  return `LOCK TABLE ${stores.map((s) => quoteQualified(s.schema, s.chunkTable)).join(', ')} IN ROW EXCLUSIVE MODE`
}

/** The GIN index of the chunks' tsvector. */
export function chunkGinIndexName(store: ChunkStore): string {
  return deriveIdentifier([store.chunkTable, CHUNK_COLUMNS.tsv, 'idx'])
}

export function renderDropChunkTable(store: ChunkStore): string {
  return `${squawkIgnore(['ban-drop-table'], 'the chunk table of a chunked column the config removes (generate writes it only with --allow-destructive)')}DROP TABLE ${quoteQualified(store.schema, store.chunkTable)};`
}

/**
 * The view of each chunk beside its row's key, source and template columns. It reads with its
 * owner's rights (PostgreSQL 14 has no security_invoker), so pgml-kit grants it to no one: grant it
 * where you would grant the source table.
 */
export function renderCreateChunkView(node: ChunkedColumnNode): string {
  const c = CHUNK_COLUMNS
  const store = chunkStoreOf(node)
  const rowColumns = [...new Set([...node.sourceColumns, ...node.templateColumns])].filter((n) => !node.keyColumns.includes(n))
  const match = node.keyColumns.map((k) => `t.${quoteIdent(k)} = c.${quoteIdent(k)}`).join(' AND ')
  return `CREATE VIEW ${quoteQualified(node.schema, node.view)} AS
SELECT ${keyList(store, 'c.')}, c.${c.seq}, c.${c.text}, c.${c.hash}, c.${c.vector}, c.${c.model}${rowColumns.map((n) => `, t.${quoteIdent(n)}`).join('')}
FROM ${quoteQualified(node.schema, node.chunkTable)} AS c JOIN ${quoteQualified(node.schema, node.table)} AS t ON ${match};`
}

export function renderDropChunkView(node: ChunkedColumnNode): string {
  return `DROP VIEW ${quoteQualified(node.schema, node.view)};`
}

/** A document's stored chunks ($1 its key as jsonb): position and hash, optionally locked. */
export function renderReadChunks(store: ChunkStore, lock: boolean): string {
  const c = CHUNK_COLUMNS
  return `SELECT ${c.seq} AS seq, ${c.hash} AS hash FROM ${quoteQualified(store.schema, store.chunkTable)} AS c WHERE ${keyMatch(store, 'c')} ORDER BY ${c.seq}${lock ? ' FOR UPDATE' : ''}`
}

/**
 * Whether the source row exists ($1 its key as jsonb). Not locked (a row lock needs UPDATE on the
 * table, which the worker is not granted): the chunks' foreign key checks the row again when they
 * are written, and a row deleted or re-keyed in between fails that check (SQLSTATE 23503).
 */
export function renderSourceExists(store: ChunkStore): string {
  return `SELECT true AS present FROM ${quoteQualified(store.schema, store.table)} AS t WHERE ${keyMatch(store, 't')}`
}

/**
 * The plan applied to a document's chunks ($1 the key as jsonb, then their own): `remove` ($2
 * positions int[]), `hide` ($2 positions int[]) and `move` ($2 from int[], $3 to int[]) — a move
 * goes through a negative position first, so a permutation never meets the primary key halfway —
 * `insert` ($2 positions, $3 texts, $4 hashes, $5 vectors as text, $6 the model), and the
 * placeholder's `lock` and `unlock` (TEMPORARY_SEQ). The primary key is not deferrable: a second
 * sync of the same document waits at its placeholder, holding nothing the first needs (a deferred
 * check would have each wait for the other at the end of its statement: a deadlock).
 */
/**
 * The position of the placeholder a sync inserts first (no text, no vector: no vector index entry)
 * and deletes before it commits: its foreign key check locks the source row before any chunk row
 * is locked (see syncDocument).
 */
export const TEMPORARY_SEQ = -1_000_000_000

/** The key columns' values from $1 (jsonb), as the source table's types. */
const keyValuesOf = (store: ChunkStore) => store.keyColumns.map((k) => `(pg_catalog.jsonb_populate_record(NULL::${quoteQualified(store.schema, store.table)}, $1::jsonb)).${quoteIdent(k)}`).join(', ')

export function renderApplyChunks(store: ChunkStore): { remove: string; hide: string; move: string; insert: string; lock: string; unlock: string } {
  const c = CHUNK_COLUMNS
  const table = quoteQualified(store.schema, store.chunkTable)
  const keyed = { schema: store.schema, table: store.table, keyColumns: store.keyColumns }
  const keyValues = keyValuesOf(store)
  return {
    remove: `DELETE FROM ${table} AS c WHERE ${keyMatch(store, 'c')} AND c.${c.seq} = ANY ($2::integer[])`,
    hide: `UPDATE ${table} AS c SET ${c.seq} = -1 - c.${c.seq} WHERE ${keyMatch(store, 'c')} AND c.${c.seq} = ANY ($2::integer[])`,
    move: `UPDATE ${table} AS c SET ${c.seq} = m.to_seq FROM ROWS FROM (pg_catalog.unnest($2::integer[]), pg_catalog.unnest($3::integer[])) AS m(from_seq, to_seq)
  WHERE ${renderKeyMatch(keyed, 'c', '$1::jsonb')} AND c.${c.seq} = -1 - m.from_seq`,
    lock: `INSERT INTO ${table} (${keyList(store)}, ${c.seq}, ${c.text}, ${c.hash}) SELECT ${keyValuesOf(store)}, ${TEMPORARY_SEQ}, '', ''`,
    unlock: `DELETE FROM ${table} AS c WHERE ${keyMatch(store, 'c')} AND c.${c.seq} = ${TEMPORARY_SEQ}`,
    insert: `INSERT INTO ${table} (${keyList(store)}, ${c.seq}, ${c.text}, ${c.hash}, ${c.vector}, ${c.model})
  SELECT ${keyValues}, u.seq, u.chunk, u.hash, u.v::${store.vectorType}, $6::text
  FROM ROWS FROM (pg_catalog.unnest($2::integer[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[])) AS u(seq, chunk, hash, v)`,
  }
}

/*
 * The `queue` mode of a chunked column: triggers keep a job per row in pgml_kit.embedding_jobs
 * (column_name: the config's name of the chunked column), the worker splits, embeds what is new
 * and syncs the chunks (src/chunking/worker.ts).
 */

/** The chunked column as the queue trigger function's guard sees it: key, source and template columns are what it reads. */
export function asQueueColumn(node: ChunkedColumnNode): EmbeddingColumnNode {
  return {
    schema: node.schema, table: node.table, column: node.column, sourceColumns: [...new Set([...node.sourceColumns, ...node.templateColumns])],
    separator: node.separator, model: node.model, vectorType: node.vectorType, mode: 'queue', keyColumns: node.keyColumns,
    distance: node.distance, triggerFunction: node.triggerFunction, typeGuard: true,
  }
}

/** Columns whose change re-queues the row: the key (its chunks moved, the job follows), the sources, the template's columns. */
function watchedColumns(node: ChunkedColumnNode): string[] {
  return [...new Set([...node.keyColumns, ...node.sourceColumns, ...node.templateColumns])]
}

const jobOf = (node: ChunkedColumnNode, alias = '') => {
  const a = alias ? `${alias}.` : ''
  return `${a}table_schema = ${quoteLiteral(node.schema)} AND ${a}table_name = ${quoteLiteral(node.table)} AND ${a}column_name = ${quoteLiteral(node.column)}`
}

/**
 * On INSERT, and on UPDATE when the key, a source or a template column really changed, upserts the
 * row's job (a newer change bumps its generation); a changed key drops the old key's job (the
 * foreign key moved the chunks); on DELETE, drops the job (the foreign key deleted the chunks).
 * SECURITY DEFINER with its search_path pinned and the type guard of every trigger function.
 */
export function renderCreateChunkEnqueueFunction(node: ChunkedColumnNode): string {
  return renderTriggerFunction(asQueueColumn(node), chunkEnqueueBody(node))
}

/** The queue function's source as pgml-kit generates it (`pg_proc.prosrc`), for drift checks. */
export function chunkEnqueueSource(node: ChunkedColumnNode): string {
  return guardedBody(asQueueColumn(node), chunkEnqueueBody(node))
}

function chunkEnqueueBody(node: ChunkedColumnNode): string {
  const changed = watchedColumns(node).map((name) => `${renderField('NEW', name)} IS DISTINCT FROM ${renderField('OLD', name)}`).join('\n        OR ')
  const keyChanged = node.keyColumns.map((name) => `${renderField('NEW', name)} IS DISTINCT FROM ${renderField('OLD', name)}`).join(' OR ')
  const keyed = { schema: node.schema, table: node.table, keyColumns: node.keyColumns }
  const body = `
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM pgml_kit.embedding_jobs WHERE ${jobOf(node)} AND row_key = ${renderRowKey(keyed, 'OLD')};
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NOT (${changed}) THEN
      RETURN NEW;
    END IF;
    IF ${keyChanged} THEN
      DELETE FROM pgml_kit.embedding_jobs WHERE ${jobOf(node)} AND row_key = ${renderRowKey(keyed, 'OLD')};
    END IF;
  END IF;
  INSERT INTO pgml_kit.embedding_jobs AS job (table_schema, table_name, column_name, row_key)
  VALUES (${quoteLiteral(node.schema)}, ${quoteLiteral(node.table)}, ${quoteLiteral(node.column)}, ${renderRowKey(keyed, 'NEW')})
  ON CONFLICT (table_schema, table_name, column_name, row_key) DO UPDATE
    SET generation = job.generation + 1, enqueued_at = pg_catalog.now(), attempts = 0, next_attempt_at = pg_catalog.now(), last_error = NULL;
  RETURN NEW;
END
`
  return body
}

export function renderDropChunkEnqueueFunction(node: ChunkedColumnNode): string {
  return `DROP FUNCTION ${triggerFunctionOf(asQueueColumn(node))}();`
}

export function chunkTriggerName(node: ChunkedColumnNode, event: 'write' | 'delete'): string {
  return deriveIdentifier(['pgml_kit_chunks', node.column, event])
}

export function renderCreateChunkEnqueueTriggers(node: ChunkedColumnNode): string[] {
  const table = quoteQualified(node.schema, node.table)
  const fn = triggerFunctionOf(asQueueColumn(node))
  return [
    `CREATE TRIGGER ${quoteIdent(chunkTriggerName(node, 'write'))}
AFTER INSERT OR UPDATE OF ${watchedColumns(node).map(quoteIdent).join(', ')} ON ${table}
FOR EACH ROW EXECUTE FUNCTION ${fn}();`,
    `CREATE TRIGGER ${quoteIdent(chunkTriggerName(node, 'delete'))}
AFTER DELETE ON ${table}
FOR EACH ROW EXECUTE FUNCTION ${fn}();`,
  ]
}

export function renderDropChunkEnqueueTriggers(node: ChunkedColumnNode): string[] {
  const table = quoteQualified(node.schema, node.table)
  return [
    `DROP TRIGGER ${quoteIdent(chunkTriggerName(node, 'delete'))} ON ${table};`,
    `DROP TRIGGER ${quoteIdent(chunkTriggerName(node, 'write'))} ON ${table};`,
  ]
}

/** A job for every row of the table (the rows there before the column): the worker chunks them. */
export function renderEnqueueEveryRow(node: ChunkedColumnNode): string {
  const keyed = { schema: node.schema, table: node.table, keyColumns: node.keyColumns }
  return `INSERT INTO pgml_kit.embedding_jobs (table_schema, table_name, column_name, row_key)
SELECT ${quoteLiteral(node.schema)}, ${quoteLiteral(node.table)}, ${quoteLiteral(node.column)}, ${renderRowKey(keyed, 't')}
FROM ${quoteQualified(node.schema, node.table)} AS t
ON CONFLICT (table_schema, table_name, column_name, row_key) DO NOTHING;`
}

/** The chunked column's jobs and dead letters go with it. */
export function renderDeleteChunkJobs(node: ChunkedColumnNode): string[] {
  return [
    `DELETE FROM pgml_kit.embedding_jobs WHERE ${jobOf(node)};`,
    `DELETE FROM pgml_kit.embedding_dead_letters WHERE ${jobOf(node)};`,
  ]
}

/**
 * $1 job ids → id, the row's key (jsonb, as text), its source text and the template's columns
 * (jsonb object, as text); rows that no longer exist are absent.
 */
export function renderFetchChunkSources(node: ChunkedColumnNode): string {
  const keyed = { schema: node.schema, table: node.table, keyColumns: node.keyColumns }
  const fields = renderTemplateFields(node)
  return `SELECT job.id, job.row_key::text AS row_key, (${renderSourceText(node, 't')})::text AS source_text, ${fields}::text AS fields, ${renderSourceFingerprint(node)} AS fingerprint
FROM pgml_kit.embedding_jobs AS job
JOIN ${quoteQualified(node.schema, node.table)} AS t ON ${renderKeyMatch(keyed, 't', 'job.row_key')}
WHERE job.id = ANY($1::bigint[])`
}

/** $1 job id, $2 generation, $3 worker id: the job ends with the sync that read its row, unless a newer change re-queued it. */
export const COMPLETE_CHUNK_JOB = 'DELETE FROM pgml_kit.embedding_jobs WHERE id = $1::bigint AND generation = $2::bigint AND leased_by = $3'

/**
 * A chunked column's progress ($1 the config's model): rows with text (something besides white
 * space), those of them without chunks, the chunks, and chunks embedded by another model.
 */
export function renderChunkProgress(node: ChunkedColumnNode): string {
  const source = renderSourceText(node, 't')
  const match = node.keyColumns.map((k) => `c.${quoteIdent(k)} = t.${quoteIdent(k)}`).join(' AND ')
  const table = quoteQualified(node.schema, node.table)
  const chunks = quoteQualified(node.schema, node.chunkTable)
  const hasText = `(${source})::text OPERATOR(pg_catalog.~) ${HAS_TEXT}`
  return `SELECT
  (SELECT pg_catalog.count(*) FROM ${table} AS t WHERE ${hasText}) AS with_text,
  (SELECT pg_catalog.count(*) FROM ${table} AS t WHERE ${hasText} AND NOT EXISTS (SELECT 1 FROM ${chunks} AS c WHERE ${match})) AS without,
  (SELECT pg_catalog.count(*) FROM ${chunks}) AS chunks,
  (SELECT pg_catalog.count(*) FROM ${chunks} AS c WHERE c.${CHUNK_COLUMNS.model} IS DISTINCT FROM $1::text) AS other`
}

/**
 * A page of rows to chunk ($1 the key after which to start, jsonb or NULL; $2 rows): key (jsonb
 * text), source text and the template's columns, in key order; with `missingOnly`, only rows with
 * text and no chunk yet.
 */
export function renderChunkBackfillPage(node: ChunkedColumnNode, missingOnly: boolean): string {
  const keyed = { schema: node.schema, table: node.table, keyColumns: node.keyColumns }
  const source = renderSourceText(node, 't')
  const fields = renderTemplateFields(node)
  const match = node.keyColumns.map((k) => `c.${quoteIdent(k)} = t.${quoteIdent(k)}`).join(' AND ')
  const missing = missingOnly ? `\n  AND (${source})::text OPERATOR(pg_catalog.~) ${HAS_TEXT} AND NOT EXISTS (SELECT 1 FROM ${quoteQualified(node.schema, node.chunkTable)} AS c WHERE ${match})` : ''
  return `SELECT ${renderRowKey(keyed, 't')}::text AS row_key, (${source})::text AS source_text, ${fields}::text AS fields, ${renderSourceFingerprint(node)} AS fingerprint
FROM ${quoteQualified(node.schema, node.table)} AS t
WHERE ($1::jsonb IS NULL OR ${renderAfterKey(keyed, 't', '$1::jsonb')})${missing}
ORDER BY ${renderKeyColumns(keyed, 't')}
LIMIT $2::int`
}

/** $1 schemas, $2 chunk tables → one row each, in order: whether the table exists. */
export const CHUNK_TABLES_PRESENT = `SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(c.s) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.t)) IS NOT NULL AS ok
FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) WITH ORDINALITY AS c(s, t, n) ORDER BY c.n`

/**
 * The template's columns of row `t` as a jsonb object of their text (`::text`: what the database
 * prints, so keys, dates, numbers and json read the same in every mode and time zone).
 */
export function renderTemplateFields(node: ChunkedColumnNode): string {
  if (node.templateColumns.length === 0) return `'{}'::jsonb`
  return `pg_catalog.jsonb_build_object(${node.templateColumns.map((n) => `${quoteLiteral(n)}, (${renderField('t', n)})::text`).join(', ')})`
}

/** What a row's chunks are made from (its source text and template columns), hashed: a sync writes chunks only while it is unchanged. */
export function renderSourceFingerprint(node: ChunkedColumnNode): string {
  return `pg_catalog.md5(pg_catalog.jsonb_build_array((${renderSourceText(node, 't')})::text, ${renderTemplateFields(node)})::text)`
}

/** $1 the row's key (jsonb) → the fingerprint of what its chunks are made from; no row: the row is gone. */
export function renderReadFingerprint(node: ChunkedColumnNode): string {
  const keyed = { schema: node.schema, table: node.table, keyColumns: node.keyColumns }
  return `SELECT ${renderSourceFingerprint(node)} AS fingerprint FROM ${quoteQualified(node.schema, node.table)} AS t WHERE ${renderKeyMatch(keyed, 't', '$1::jsonb')}`
}

/**
 * What the embedding writer reads back of a written row `t` for chunked column number `i`: the
 * row's key (jsonb text, exact for every key type), its source text and template columns as the
 * database prints them — the same inputs the worker reads.
 */
export function renderChunkInputs(node: ChunkedColumnNode, i: number): string[] {
  const keyed = { schema: node.schema, table: node.table, keyColumns: node.keyColumns }
  return [
    `${renderRowKey(keyed, 't')}::text AS pgml_kit_key_${i}`,
    `(${renderSourceText(node, 't')})::text AS pgml_kit_source_${i}`,
    `${renderTemplateFields(node)}::text AS pgml_kit_fields_${i}`,
  ]
}

/*
 * A staged chunking change (src/model/chunk-rollout.ts, src/plan/rollout-chunks.ts): the copy's
 * fill check and the switch.
 */

const chunkMatch = (node: ChunkedColumnNode) => node.keyColumns.map((k) => `c.${quoteIdent(k)} = t.${quoteIdent(k)}`).join(' AND ')

/**
 * How far a staged change's copy is filled against the live chunk table `liveTable`: rows with
 * text; those with no chunks in the copy that nothing is going to chunk (a queued job counts as on
 * its way); those that have chunks in the live table and none in the copy (switching now would
 * hide them from searches — a row written a moment ago, with chunks in neither, would not be);
 * and the copy's dead-lettered jobs. One scan.
 */
function chunkFillCounts(node: ChunkedColumnNode, liveTable: string): { counts: readonly [string, string, string, string]; from: string } {
  const keyed = { schema: node.schema, table: node.table, keyColumns: node.keyColumns }
  const hasText = `(${renderSourceText(node, 't')})::text OPERATOR(pg_catalog.~) ${HAS_TEXT}`
  const none = `NOT EXISTS (SELECT 1 FROM ${quoteQualified(node.schema, node.chunkTable)} AS c WHERE ${chunkMatch(node)})`
  const queued = node.mode === 'queue' ? ` AND NOT EXISTS (SELECT 1 FROM pgml_kit.embedding_jobs AS j WHERE ${jobOf(node, 'j')} AND j.row_key = ${renderRowKey(keyed, 't')})` : ''
  return {
    counts: [
      `pg_catalog.count(*) FILTER (WHERE ${hasText})`,
      `pg_catalog.count(*) FILTER (WHERE ${hasText} AND ${none}${queued})`,
      `(SELECT pg_catalog.count(*) FROM pgml_kit.embedding_dead_letters AS d WHERE ${jobOf(node, 'd')})`,
      `pg_catalog.count(*) FILTER (WHERE ${hasText} AND ${none} AND EXISTS (SELECT 1 FROM ${quoteQualified(node.schema, liveTable)} AS c WHERE ${chunkMatch(node)}))`,
    ],
    from: `${quoteQualified(node.schema, node.table)} AS t`,
  }
}

/** → with_text, missing, dead_letters, hidden (bigint): see chunkFillCounts. */
export function renderReadChunkFill(node: ChunkedColumnNode, liveTable: string): string {
  const { counts: [withText, missing, dead, hidden], from } = chunkFillCounts(node, liveTable)
  return `SELECT ${withText} AS with_text, ${missing} AS missing, ${dead} AS dead_letters, ${hidden} AS hidden FROM ${from}`
}

/**
 * Refuses (the migration rolls back, changing nothing) while `node` — the copy about to become
 * the chunk table searches read, instead of `liveTable` — has rows with text and no chunks that
 * nothing is going to chunk, rows that have chunks in `liveTable` and none in it (switching would
 * hide them from searches: as when a shadow and its switch are migrated in one run, before the
 * worker filled the shadow there), or dead-lettered jobs. One scan.
 */
export function renderRefuseChunksUnfilled(node: ChunkedColumnNode, liveTable: string, why: string, command: string): string {
  const { counts, from } = chunkFillCounts(node, liveTable)
  const name = `${node.schema}.${node.table}.${node.column}`
  const body = `
DECLARE
  with_text bigint;
  missing bigint;
  dead bigint;
  hidden bigint;
BEGIN
  SELECT ${counts.join(',\n         ')}
    INTO with_text, missing, dead, hidden
    FROM ${from};
  -- A row the worker chunked for the live table a moment ago and not yet for the copy (its job queued)
  -- is in flight: 1% of the rows and one may be; a shadow whose rows are all queued is refused.
  IF missing > 0 OR hidden > with_text / 100 + 1 THEN
    RAISE EXCEPTION 'pgml-kit: % is not filled: % of % rows with text have chunks in % but none in it yet, % have none and no queued job; %', ${quoteLiteral(name)}, hidden, with_text, ${quoteLiteral(liveTable)}, missing, ${quoteLiteral(why)}
      USING HINT = ${quoteLiteral(`run ${command}, then migrate again (pgml-kit status shows how far it is)`)};
  END IF;
  IF dead > 0 THEN
    RAISE EXCEPTION 'pgml-kit: % has % dead-lettered job(s): those rows have no current chunks; %', ${quoteLiteral(name)}, dead, ${quoteLiteral(why)}
      USING HINT = 'see their errors in pgml_kit.embedding_dead_letters, fix them, then pgml-kit queue retry, run the worker, and migrate again';
  END IF;
END
`
  return `DO ${dollarQuote(body)};`
}

/**
 * The source table locked against writes for the rest of the migration's transaction (SHARE ROW
 * EXCLUSIVE: readers go on; writers wait until the migration commits — an instant — and the lock
 * itself waits for open write transactions, at most the migration's lock_timeout, queueing the
 * writes behind it meanwhile), before a step locks its chunk tables.
 */
export function renderLockSourceForChunks(node: ChunkedColumnNode): string {
  return `LOCK TABLE ${quoteQualified(node.schema, node.table)} IN SHARE ROW EXCLUSIVE MODE;`
}

/**
 * The live chunk table made ready for a staged change (its shadow stage): the settings its chunks
 * were made with written as its comment (a table from before they were recorded has none, and a
 * hand-written comment is replaced), and its primary key under the name pgml-kit gives it, which
 * the switch renames with the table (PostgreSQL's own `<table>_pkey`, cut to 63 bytes, otherwise).
 */
export function renderPrepareLiveChunks(node: ChunkedColumnNode): string[] {
  const wanted = chunkPrimaryKeyName(node)
  const body = `
DECLARE
  pkey_name name;
BEGIN
  SELECT k.conname INTO pkey_name FROM pg_catalog.pg_constraint AS k
  WHERE k.conrelid OPERATOR(pg_catalog.=) ${quoteLiteral(quoteQualified(node.schema, node.chunkTable))}::regclass AND k.contype OPERATOR(pg_catalog.=) 'p';
  IF pkey_name IS NULL THEN
    RAISE EXCEPTION 'pgml-kit: the chunk table % has no primary key (pgml-kit made one): a staged change cannot switch it', ${quoteLiteral(quoteQualified(node.schema, node.chunkTable))};
  END IF;
  IF pkey_name IS DISTINCT FROM ${quoteLiteral(wanted)}::name THEN
    EXECUTE pg_catalog.format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', ${quoteLiteral(quoteQualified(node.schema, node.chunkTable))}, pkey_name, ${quoteLiteral(wanted)});
  END IF;
END
`
  return [renderCommentChunkTable(node), `DO ${dollarQuote(body)};`]
}

/** One side of a chunked switch: a chunked column as it is, and as it will be (other names, another role). */
export interface ChunkSwitchSide {
  readonly from: ChunkedColumnNode
  readonly to: ChunkedColumnNode
}

const SWITCH_REASON = 'a staged chunking change: the chunk table searches read changes in one short transaction'

/**
 * The switch: the live chunk table takes the copy's suffixed names and role, the copy (checked
 * filled before) takes the live names — tables, views, primary keys, full-text and vector indexes
 * — the live side first so no name is taken twice; queued jobs and dead letters follow their
 * column; in mode `queue` each side's trigger function (whose body names the column) and triggers
 * are dropped and made again for its new name. Comments, privileges and the foreign key go with
 * the tables. `indexes`: each side's vector index renames, `[from, to]`.
 */
export function renderChunkSwitch(first: ChunkSwitchSide, second: ChunkSwitchSide, indexes: readonly (readonly [string, string])[]): string[] {
  const sides = [first, second]
  const schema = first.from.schema
  // The source table first: an application's DELETE locks it, then its foreign keys' cascades
  // reach the chunk tables (oldest first); the switch locks them in its own order after this, so
  // the two never wait for each other in opposite orders.
  const out: string[] = [renderLockSourceForChunks(first.from)]
  for (const { from } of sides) if (from.mode === 'queue') out.push(...renderDropChunkEnqueueTriggers(from), renderDropChunkEnqueueFunction(from))
  for (const { from, to } of sides) {
    out.push(`${squawkIgnore(['renaming-table'], SWITCH_REASON)}ALTER TABLE ${quoteQualified(schema, from.chunkTable)} RENAME TO ${quoteIdent(to.chunkTable)};`)
    out.push(`ALTER VIEW ${quoteQualified(schema, from.view)} RENAME TO ${quoteIdent(to.view)};`)
    out.push(`ALTER INDEX ${quoteQualified(schema, chunkPrimaryKeyName(from))} RENAME TO ${quoteIdent(chunkPrimaryKeyName(to))};`)
    if (from.fullText) out.push(`ALTER INDEX ${quoteQualified(schema, chunkGinIndexName(chunkStoreOf(from)))} RENAME TO ${quoteIdent(chunkGinIndexName(chunkStoreOf(to)))};`)
    out.push(`UPDATE pgml_kit.embedding_jobs SET column_name = ${quoteLiteral(to.column)} WHERE ${jobOf(from)};`)
    out.push(`UPDATE pgml_kit.embedding_dead_letters SET column_name = ${quoteLiteral(to.column)} WHERE ${jobOf(from)};`)
  }
  for (const [from, to] of indexes) out.push(renderRenameIndex(schema, from, to))
  for (const { to } of sides) if (to.mode === 'queue') out.push(renderCreateChunkEnqueueFunction(to), ...renderCreateChunkEnqueueTriggers(to))
  return out
}

/** $1 a row's key (jsonb) → its chunk inputs for `node` as renderChunkInputs names them (number 0); no row: the row is gone. */
export function renderReadChunkInputs(node: ChunkedColumnNode): string {
  const keyed = { schema: node.schema, table: node.table, keyColumns: node.keyColumns }
  return `SELECT ${renderChunkInputs(node, 0).join(', ')} FROM ${quoteQualified(node.schema, node.table)} AS t WHERE ${renderKeyMatch(keyed, 't', '$1::jsonb')}`
}
