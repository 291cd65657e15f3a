import { describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { resolveConfig } from '../../src/model/resolve.js'
import * as worker from '../../src/sql/render-worker.js'
import * as backfill from '../../src/sql/render-backfill.js'
import * as writer from '../../src/sql/render-app-writer.js'
import { renderKeyMatch } from '../../src/sql/render-row-key.js'
import { documentsConfig } from '../helpers/fixtures.js'
import { parseStatements } from '../helpers/sql.js'

const single = resolveConfig(documentsConfig({ mode: 'queue' })).state.embeddingColumns[0]!
const composite: PgmlKitConfig = { tables: { 'Odd "Table"': { schema: 'my schema', primaryKey: ['tenant', 'id'], embeddings: { 'e"mb': { source: ["it's", 'b'], model: { id: 'm', dimensions: 4 }, mode: 'trigger', type: 'halfvec' } } } } }
const odd = resolveConfig(composite).state.embeddingColumns[0]!

describe('worker and backfill statements', () => {
  it.each([['a single-column key', single], ['a composite key and odd names', odd]])('parse with %s', (_name, column) => {
    const statements = [
      worker.renderClaimJobs(column), worker.renderFetchSources(column), worker.renderWriteVectors(column, 'ext schema'),
      worker.DELETE_LEASED_JOBS, worker.RELEASE_LEASES, worker.FAIL_JOBS, worker.DEAD_LETTER_JOBS, worker.RETRY_DEAD_LETTERS,
      worker.QUEUE_STATS, worker.DEAD_LETTER_STATS, worker.VECTOR_SCHEMA, worker.EXTEND_LEASES, worker.RELEASE_WORKER_LEASES, worker.QUEUE_OUTLOOK,
      backfill.renderCountRows(column, true), backfill.renderCountRows(column, false), backfill.renderSelectBatch(column, false),
      backfill.renderWriteBackfill(column, 'public'), backfill.renderDatabaseBackfill(column, 'public'),
      backfill.READ_CHECKPOINT, backfill.SAVE_CHECKPOINT, backfill.CLEAR_CHECKPOINT,
    ]
    for (const sql of statements) expect(parseStatements(sql), sql).toBe(1)
  })

  it.each([['a single-column key', single], ['a composite key and odd names', odd]])('app-mode writer statements parse with %s', (_name, column) => {
    const sources = column.sourceColumns
    for (const sql of [writer.renderInsertRows(column, [...sources, 'x"y'], [[true, false, true], [true, true, true]], null), writer.renderInsertRows(column, sources, [sources.map(() => true)], ['id', 'x"y']),
      writer.renderLockSources(column, sources), writer.renderUpdatePatch(column, [...sources, column.column]), writer.INSIDE_TRANSACTION]) {
      expect(parseStatements(sql), sql).toBe(1)
    }
    const lockAndRead = writer.renderLockForInsert(column)
    for (const inside of [false, true]) {
      expect(parseStatements(writer.renderOpenWrite(inside, lockAndRead))).toBe(1 + parseStatements(lockAndRead))
      expect(parseStatements(writer.renderEndWrite(inside))).toBe(1)
      expect(parseStatements(writer.renderUndoWrite(inside))).toBe(inside ? 2 : 1)
    }
  })

  it('matches rows by their typed key, quoting every name', () => {
    expect(renderKeyMatch(odd, 't', 'job.row_key')).toBe(
      't."tenant" = (pg_catalog.jsonb_populate_record(NULL::"my schema"."Odd ""Table""", job.row_key))."tenant" AND t."id" = (pg_catalog.jsonb_populate_record(NULL::"my schema"."Odd ""Table""", job.row_key))."id"')
    expect(worker.renderWriteVectors(odd, 'ext schema')).toContain('::"ext schema"."halfvec"(4)')
  })
})
