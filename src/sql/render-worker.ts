import { renderVectorFromBatch } from './vector-batch.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import { quoteIdent, quoteLiteral, quoteQualified } from './quote.js'
import { renderSourceText, renderVectorType } from './render-source.js'
import { renderKeyMatch } from './render-row-key.js'
import { renderCatalogGuard } from './render-catalog.js'

/**
 * Statements the queue worker and backfill run. Identifiers come from the resolved config and are
 * quoted here; values are always bind parameters.
 */

function jobIdentity(column: Pick<EmbeddingColumnNode, 'schema' | 'table' | 'column'>, alias = 'job'): string {
  return `${alias}.table_schema = ${quoteLiteral(column.schema)} AND ${alias}.table_name = ${quoteLiteral(column.table)} AND ${alias}.column_name = ${quoteLiteral(column.column)}`
}

/** $1 batch size, $2 lease seconds, $3 worker id → id, generation, attempts of the leased jobs. */
export function renderClaimJobs(column: Pick<EmbeddingColumnNode, 'schema' | 'table' | 'column'>): string {
  return `WITH due AS (
  SELECT job.id FROM pgml_kit.embedding_jobs AS job
  WHERE ${jobIdentity(column)}
    AND job.next_attempt_at <= pg_catalog.now() AND (job.leased_until IS NULL OR job.leased_until < pg_catalog.now())
  ORDER BY job.next_attempt_at, job.id
  LIMIT $1
  FOR UPDATE SKIP LOCKED
)
UPDATE pgml_kit.embedding_jobs AS job
SET leased_until = pg_catalog.now() + pg_catalog.make_interval(secs => $2::double precision), leased_by = $3
FROM due WHERE job.id = due.id
RETURNING job.id, job.generation, job.attempts`
}

/** $1 job ids → id, source text (NULL when every source column is NULL), md5 of it; rows that no longer exist are absent. */
export function renderFetchSources(column: EmbeddingColumnNode): string {
  const source = renderSourceText(column, 't')
  return `SELECT job.id, ${source} AS source_text, pg_catalog.md5(${source}) AS source_md5
FROM pgml_kit.embedding_jobs AS job
JOIN ${quoteQualified(column.schema, column.table)} AS t ON ${renderKeyMatch(column, 't', 'job.row_key')}
WHERE job.id = ANY($1::bigint[])`
}

/**
 * Writes vectors and completes jobs in one statement. A vector is written only if the row's source
 * is still the text that was embedded ($3), and only while this worker holds the lease ($5); the
 * job is deleted only if it was written and no newer change re-queued it meanwhile ($2).
 * Rows another transaction holds locked are skipped, not waited for (SKIP LOCKED): the worker never
 * waits on an application's row locks, so it cannot be one side of a deadlock with a multi-row
 * UPDATE of the application. A skipped row's job stays queued and is taken again. (Rows are found
 * again by key, not by ctid: system columns need table-wide SELECT, which the worker role lacks.)
 * $1 ids, $2 generations, $3 source md5s, $4 every vector's components (real[], binary; see
 * vector-batch.ts), $5 worker id, $6 whether each job has a vector (NULL for no text), and when
 * `guarded` $7 the fingerprint of the column's catalog row the vectors were computed for (see
 * renderCatalogGuard), and the result has `catalog_ok`.
 */
export function renderWriteVectors(column: EmbeddingColumnNode, vectorSchema: string, guarded = false): string {
  const guard = renderCatalogGuard(column, guarded ? '$7' : null)
  return `WITH input AS (
  SELECT * FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::bigint[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($6::boolean[])) WITH ORDINALITY AS i(job_id, generation, source_md5, present, n)
), locked AS (
  SELECT job.row_key, input.*
  FROM input JOIN pgml_kit.embedding_jobs AS job ON job.id = input.job_id AND job.leased_by = $5
  JOIN ${quoteQualified(column.schema, column.table)} AS t ON ${renderKeyMatch(column, 't', 'job.row_key')}
  WHERE pg_catalog.md5(${renderSourceText(column, 't')}) IS NOT DISTINCT FROM input.source_md5${guard}
  FOR UPDATE OF t SKIP LOCKED
), written AS (
  UPDATE ${quoteQualified(column.schema, column.table)} AS t
  SET ${quoteIdent(column.column)} = ${renderVectorFromBatch(column, vectorSchema, '$4', 'locked.n', 'locked.present')}
  FROM locked
  WHERE ${renderKeyMatch(column, 't', 'locked.row_key')}
    AND pg_catalog.md5(${renderSourceText(column, 't')}) IS NOT DISTINCT FROM locked.source_md5
  RETURNING locked.job_id, locked.generation
), done AS (
  DELETE FROM pgml_kit.embedding_jobs AS job USING written
  WHERE job.id = written.job_id AND job.generation = written.generation AND job.leased_by = $5
  RETURNING job.id
), deferred AS (
  -- A row skipped because another transaction holds it: its job waits a second before it is
  -- taken again, so a long transaction does not keep the worker embedding the same text. A change
  -- that transaction commits re-queues the job as due at once. (Job rows are skipped if locked too.)
  UPDATE pgml_kit.embedding_jobs AS job SET next_attempt_at = pg_catalog.now() + interval '1 second'
  WHERE job.id IN (
    SELECT j.id FROM pgml_kit.embedding_jobs AS j JOIN input ON j.id = input.job_id AND j.generation = input.generation
    WHERE j.leased_by = $5 AND NOT EXISTS (SELECT 1 FROM locked WHERE locked.job_id = input.job_id)
    FOR UPDATE OF j SKIP LOCKED)
  RETURNING job.id
)
SELECT (SELECT pg_catalog.count(*) FROM written)::int AS written, (SELECT pg_catalog.count(*) FROM done)::int AS completed${guarded ? `, true${guard} AS catalog_ok` : ''}`
}

/*
 * Every statement below that changes several job rows takes their locks with SKIP LOCKED and
 * never waits for one. An application's multi-row write upserts the jobs of its rows (the queue
 * trigger) in the order it meets them; a worker statement that held some job rows while waiting
 * for another could close a cycle with it, and PostgreSQL would end one of the two with "deadlock
 * detected" — the application's write as likely as the worker's. A job skipped here is one an
 * application transaction is changing right now: its change supersedes what the worker was doing.
 */

/** The jobs of $1 this worker ($2) holds, locked in id order, skipping those another transaction holds. */
function ownJobs(alias: string): string {
  return `SELECT ${alias}.id FROM pgml_kit.embedding_jobs AS ${alias} WHERE ${alias}.id = ANY($1::bigint[]) AND ${alias}.leased_by = $2 ORDER BY ${alias}.id FOR UPDATE SKIP LOCKED`
}

/** $1 ids, $2 worker id: jobs whose row is gone are finished (those another transaction holds stay leased; see RELEASE_LEASES). */
export const DELETE_LEASED_JOBS = `DELETE FROM pgml_kit.embedding_jobs WHERE id IN (${ownJobs('j')})`

/**
 * $1 ids, $2 worker id: gives back leases still held (stale writes, shutdown). Returns the ids it
 * could not give back because another transaction holds them: the worker tries them again later
 * (their lease runs out in any case).
 */
export const RELEASE_LEASES = `WITH free AS (${ownJobs('j')}),
released AS (
  UPDATE pgml_kit.embedding_jobs AS job SET leased_until = NULL, leased_by = NULL FROM free WHERE job.id = free.id RETURNING job.id
)
SELECT job.id FROM pgml_kit.embedding_jobs AS job
WHERE job.id = ANY($1::bigint[]) AND job.leased_by = $2 AND NOT EXISTS (SELECT 1 FROM released WHERE released.id = job.id)`

/** $1 worker id: gives back every lease of this worker (after it lost its connection mid-batch); leases another transaction holds run out. */
export const RELEASE_WORKER_LEASES = `UPDATE pgml_kit.embedding_jobs AS job SET leased_until = NULL, leased_by = NULL
WHERE job.id IN (SELECT j.id FROM pgml_kit.embedding_jobs AS j WHERE j.leased_by = $1 ORDER BY j.id FOR UPDATE SKIP LOCKED)`

/**
 * The heartbeat of a live worker: $1 ids it is working on, $2 worker id, $3 lease seconds. Leases
 * can then be short, so the jobs of a worker that died are taken over soon. (A job skipped is
 * being changed by a writer; if its lease runs out, the worker's write checks the lease.)
 */
export const EXTEND_LEASES = `UPDATE pgml_kit.embedding_jobs SET leased_until = pg_catalog.now() + pg_catalog.make_interval(secs => $3::double precision)
WHERE id IN (${ownJobs('j')})`

/**
 * Records failures: attempts + 1, the error, and the next attempt after an exponential back-off
 * ($4 base seconds × 2^(attempts), at most $5 seconds). $1 ids, $2 errors, $3 worker id. Returns
 * the ids recorded: a job another transaction holds is being re-queued or deleted by it, which
 * supersedes the failure.
 */
export const FAIL_JOBS = `UPDATE pgml_kit.embedding_jobs AS job
SET attempts = job.attempts + 1, last_error = e.error, leased_until = NULL, leased_by = NULL,
    next_attempt_at = pg_catalog.now() + pg_catalog.make_interval(secs => least($5::double precision, $4::double precision * pg_catalog.power(2, job.attempts)))
FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::text[])) AS e(id, error)
WHERE job.id = e.id AND job.id IN (
  SELECT j.id FROM pgml_kit.embedding_jobs AS j WHERE j.id = ANY($1::bigint[]) AND j.leased_by = $3 ORDER BY j.id FOR UPDATE SKIP LOCKED)
RETURNING job.id`

/**
 * Moves jobs that have failed $2 times to the dead-letter table ($1 ids: those FAIL_JOBS recorded,
 * in the same transaction, so their rows are already locked by it). A separate statement from
 * FAIL_JOBS: one statement cannot modify the same row twice.
 */
export const DEAD_LETTER_JOBS = `WITH dead AS (
  DELETE FROM pgml_kit.embedding_jobs
  WHERE id = ANY($1::bigint[]) AND attempts >= $2
  RETURNING table_schema, table_name, column_name, row_key, attempts, last_error, first_enqueued_at
)
INSERT INTO pgml_kit.embedding_dead_letters (table_schema, table_name, column_name, row_key, attempts, last_error, first_enqueued_at)
SELECT table_schema, table_name, column_name, row_key, attempts, last_error, first_enqueued_at FROM dead
RETURNING id`

/** $1 schema, $2 table, $3 column (each NULL for all): dead letters back into the queue. */
export const RETRY_DEAD_LETTERS = `WITH moved AS (
  DELETE FROM pgml_kit.embedding_dead_letters
  WHERE ($1::text IS NULL OR table_schema = $1) AND ($2::text IS NULL OR table_name = $2) AND ($3::text IS NULL OR column_name = $3)
  RETURNING table_schema, table_name, column_name, row_key, first_enqueued_at
)
INSERT INTO pgml_kit.embedding_jobs AS job (table_schema, table_name, column_name, row_key, first_enqueued_at)
SELECT table_schema, table_name, column_name, row_key, first_enqueued_at FROM moved
ON CONFLICT (table_schema, table_name, column_name, row_key) DO UPDATE
  SET attempts = 0, next_attempt_at = pg_catalog.now(), last_error = NULL, generation = job.generation + 1
RETURNING job.id`

/**
 * What a drained worker (`--once`) leaves behind for these columns ($1 schemas, $2 tables,
 * $3 columns): jobs leased by other workers and when the last lease ends, jobs waiting for a
 * retry and when the next is due.
 */
export const QUEUE_OUTLOOK = `SELECT
  pg_catalog.count(*) FILTER (WHERE job.leased_until > pg_catalog.now())::int AS leased,
  extract(epoch FROM pg_catalog.max(job.leased_until) FILTER (WHERE job.leased_until > pg_catalog.now()) - pg_catalog.now())::float8 AS leases_end_in,
  pg_catalog.count(*) FILTER (WHERE job.next_attempt_at > pg_catalog.now() AND (job.leased_until IS NULL OR job.leased_until <= pg_catalog.now()))::int AS waiting,
  extract(epoch FROM pg_catalog.min(job.next_attempt_at) FILTER (WHERE job.next_attempt_at > pg_catalog.now()) - pg_catalog.now())::float8 AS next_due_in
FROM pgml_kit.embedding_jobs AS job
JOIN ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) AS c(s, t, col)
  ON job.table_schema = c.s AND job.table_name = c.t AND job.column_name = c.col`

export const QUEUE_STATS = `SELECT table_schema, table_name, column_name,
  pg_catalog.count(*)::int AS depth,
  pg_catalog.count(*) FILTER (WHERE leased_until > pg_catalog.now())::int AS leased,
  pg_catalog.count(*) FILTER (WHERE attempts > 0)::int AS retrying,
  extract(epoch FROM pg_catalog.now() - pg_catalog.min(first_enqueued_at))::float8 AS oldest_seconds
FROM pgml_kit.embedding_jobs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`

export const DEAD_LETTER_STATS = `SELECT table_schema, table_name, column_name, pg_catalog.count(*)::int AS dead
FROM pgml_kit.embedding_dead_letters GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`

/** The worker and backfill qualify pgvector's types with its schema (see render-vector-schema.ts). */
export { VECTOR_SCHEMA } from './render-vector-schema.js'
