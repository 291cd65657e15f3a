import type pg from 'pg'
import { columnKey, columnLabel, objectKey, type ChunkedColumnNode, type DesiredState, type EmbeddingColumnNode } from './model/ir.js'
import { readIndexHealth } from './indexes/health.js'
import { renderAddEmbeddingColumn, renderDropEmbeddingColumn } from './sql/render-embedding-column.js'
import { renderRegisterEmbeddingColumn, renderUnregisterEmbeddingColumn } from './sql/render-catalog.js'
import { embedTriggerName, renderCreateEmbedFunction, renderCreateEmbedTrigger } from './sql/render-trigger.js'
import { enqueueTriggerName, renderCreateEnqueueFunction, renderCreateEnqueueTriggers } from './sql/render-queue.js'
import { CHUNK_TABLES_PRESENT, asQueueColumn, chunkEnqueueSource, chunkTriggerName, renderCreateChunkEnqueueFunction, renderCreateChunkEnqueueTriggers } from './sql/render-chunks.js'
import { captureFunctionBody, captureTriggers, renderCaptureFunction } from './sql/render-features.js'
import { renderSourceText, renderUnqualifiedSourceText } from './sql/render-source.js'
import { quoteIdent, quoteLiteral, quoteQualified } from './sql/quote.js'
import { RELATION_EXISTS } from './sql/render-introspection.js'
import { VECTOR_SCHEMA } from './sql/render-vector-schema.js'
import type { CatalogRow } from './model/catalog-column.js'
import { needsPgml } from './model/ir.js'
import { grantsFor } from './plan/grants.js'
import { renderGrants } from './sql/render-grants.js'
import { renderCreateIndexConcurrently } from './sql/render-index.js'
import { enqueueFunctionBody } from './sql/render-queue.js'
import { triggerFunctionSource } from './sql/render-trigger.js'
import { runtimeInstallSql } from './runtime/assets.js'
import {
  COUNT_QUEUED_JOBS, MISSING_RUNTIME_RELATIONS, PGML_EMBED_EXISTS, READ_CATALOG, READ_COLUMNS, READ_RUNTIME_VERSION, READ_FUNCTION, READ_TRIGGERS, READ_TRIGGER_FUNCTIONS,
  RUNTIME_RELATIONS, renderCountMissingVectors, renderDropColumnDefault, renderDropColumnNotNull,
} from './sql/render-drift.js'

/**
 * `pgml-kit status --drift`: what the live database has that the last generated state (the
 * snapshot) does not say, or lacks that it says, for the objects pgml-kit manages. Each finding
 * carries the statement(s) that put it right. Read-only.
 */
export interface DriftItem {
  /** What kind of object: column, table (a chunk table), trigger, index, catalog, runtime, grant, migrations. */
  readonly kind: 'column' | 'table' | 'trigger' | 'index' | 'catalog' | 'runtime' | 'grant' | 'migrations'
  /** The object (`schema.table.column`, a trigger or index name). */
  readonly object: string
  readonly problem: string
  /** SQL (or a command) that fixes it. */
  readonly fix: string
  /**
   * `warning`: nothing is broken, but searches miss rows (vectors not written yet, or never);
   * `status --drift` prints it and still exits 0. Absent: writes, searches or workers are broken.
   */
  readonly severity?: 'warning'
}


function catalogDifferences(row: CatalogRow, c: EmbeddingColumnNode): string[] {
  const m = c.model
  const later: [string, unknown, unknown][] = [
    ['pooling', row.pooling, m.pooling], ['distance', row.distance, c.distance],
    ['rollout role', row.rollout_role, c.rollout?.role ?? null], ['rollout of', row.rollout_of, c.rollout?.of ?? null],
  ]
  const pairs: [string, unknown, unknown][] = [
    ...later.filter(([, live]) => live !== undefined),
    ['model', row.model_id, m.id], ['revision', row.model_revision, m.revision], ['dimensions', row.dimensions, m.dimensions],
    ['vector type', row.vector_type, c.vectorType], ['mode', row.mode, c.mode], ['source', row.source_columns.join(', '), c.sourceColumns.join(', ')],
    ['separator', row.source_separator, c.separator],
    // Rows recorded before the concatenation was qualified describe the same expression.
    ['source expression', row.source_expression === renderUnqualifiedSourceText(c) ? renderSourceText(c) : row.source_expression, renderSourceText(c)],
    ['document prefix', row.document_prefix, m.documentPrefix], ['query prefix', row.query_prefix, m.queryPrefix],
    ['normalize', row.normalize, m.normalize], ['key', (row.key_columns ?? []).join(', '), c.keyColumns.join(', ')],
  ]
  return pairs.filter(([, live, wanted]) => live !== wanted).map(([what, live, wanted]) => `${what} ${JSON.stringify(live)}, the snapshot says ${JSON.stringify(wanted)}`)
}

interface ExpectedTrigger {
  readonly column: EmbeddingColumnNode
  readonly name: string
  readonly create: string[]
  /** The function's source when it is not the column mode's own (a chunked column's queue). */
  readonly source?: string
}

/** A chunked column's queue triggers (mode `queue`), checked like a queue column's. */
function expectedChunkTriggers(node: ChunkedColumnNode): ExpectedTrigger[] {
  if (node.mode !== 'queue') return []
  const column = asQueueColumn(node)
  const [write, remove] = renderCreateChunkEnqueueTriggers(node)
  const create = renderCreateChunkEnqueueFunction(node)
  const source = chunkEnqueueSource(node)
  return [
    { column, name: chunkTriggerName(node, 'write'), create: [create, write!], source },
    { column, name: chunkTriggerName(node, 'delete'), create: [create, remove!], source },
  ]
}

function expectedTriggers(column: EmbeddingColumnNode): ExpectedTrigger[] {
  if (column.mode === 'trigger') return [{ column, name: embedTriggerName(column), create: [renderCreateEmbedFunction(column), renderCreateEmbedTrigger(column)] }]
  if (column.mode === 'queue') {
    const [write, remove] = renderCreateEnqueueTriggers(column)
    return [
      { column, name: enqueueTriggerName(column, 'write'), create: [renderCreateEnqueueFunction(column), write!] },
      { column, name: enqueueTriggerName(column, 'delete'), create: [renderCreateEnqueueFunction(column), remove!] },
    ]
  }
  return []
}

/** Compares the live database with `state` (the snapshot's). */
export async function readDrift(client: pg.ClientBase, state: DesiredState): Promise<DriftItem[]> {
  const out: DriftItem[] = []
  const columns = state.embeddingColumns
  const chunked = state.chunkedColumns ?? []
  const tables = [...new Map([...columns, ...chunked].map((c) => [objectKey(c.schema, c.table), { schema: c.schema, table: c.table }])).values()]
  // Fixes name pgvector's types qualified: they run wherever a DBA pastes them.
  const vectorSchema = (await client.query<{ schema: string }>(VECTOR_SCHEMA)).rows[0]?.schema

  // Columns: present, of the declared type, generated when the mode says so.
  const { rows: live } = await client.query<{ n: number; table_exists: boolean; type: string | null; generated: string | null; not_null: boolean | null; default_expr: string | null }>(READ_COLUMNS, [
    columns.map((c) => c.schema), columns.map((c) => c.table), columns.map((c) => c.column)])
  const present = new Set<string>()
  /** Columns whose fix drops and adds them again, with their indexes: not judged further here. */
  const recreated = new Set<string>()
  columns.forEach((c, i) => {
    const row = live[i]
    const key = columnLabel(c)
    const wanted = `${c.vectorType}(${c.model.dimensions})`
    if (!row?.table_exists) return void out.push({ kind: 'column', object: key, problem: `table ${c.schema}.${c.table} does not exist`, fix: 'pgml-kit migrate (or restore the table)' })
    if (row.type === null) {
      return void out.push({ kind: 'column', object: key, problem: 'column is missing', fix: `${renderAddEmbeddingColumn(c, vectorSchema)}  -- then backfill: pgml-kit backfill ${c.table}.${c.column}` })
    }
    present.add(columnKey(c))
    const generated = row.generated === 's'
    if (row.type !== wanted || generated !== (c.mode === 'generated')) {
      const what = row.type !== wanted ? `type is ${row.type}, the snapshot says ${wanted}` : generated ? 'column is generated, the snapshot says it is not' : 'column is not generated, the snapshot says it is'
      // All of it in one round: the column's indexes and the worker's column grants go with the column.
      const indexes = state.indexes.filter((i) => columnKey(i) === columnKey(c)).map((i) => renderCreateIndexConcurrently(i, c.vectorType, i.name, vectorSchema ?? null))
      const grants = renderGrants(grantsFor(state).filter((g) => g.on.kind === 'table' && g.on.schema === c.schema && g.on.table === c.table && g.column === c.column))
      recreated.add(columnKey(c))
      out.push({ kind: 'column', object: key, problem: what, fix: [`${renderDropEmbeddingColumn(c)} ${renderAddEmbeddingColumn(c, vectorSchema)}`, ...grants, ...indexes, `-- the stored vectors are lost: pgml-kit backfill ${c.table}.${c.column}`].join('\n') })
    }
    // A default gives new rows a vector that is not their text's; NOT NULL refuses every write made before the vector is.
    if (row.default_expr !== null && c.mode !== 'generated') {
      out.push({ kind: 'column', object: key, problem: `has a default (${row.default_expr}): new rows start with a vector that is not their text's`, fix: renderDropColumnDefault(c) })
    }
    if (row.not_null && c.mode === 'queue') {
      out.push({ kind: 'column', object: key, problem: 'is NOT NULL: every insert fails, the worker writes the vector after it', fix: renderDropColumnNotNull(c) })
    }
  })

  // In-database embedding: the function trigger and generated columns call.
  if (columns.some(needsPgml) && !(await client.query<{ ok: boolean }>(PGML_EMBED_EXISTS)).rows[0]?.ok) {
    const which = columns.filter(needsPgml).map((c) => `${columnLabel(c)} (mode ${c.mode})`).join(', ')
    out.push({ kind: 'runtime', object: 'pgml.embed(text, text, jsonb)', problem: `missing: every write to ${which} fails`,
      fix: 'a superuser puts it back: with pgml_compat, pgml-kit extension install on the server and re-run the function\'s CREATE from its script (DROP EXTENSION … CASCADE would also drop generated columns and trained models); with PostgresML, reinstall the extension' })
  }

  // Triggers: the mode's triggers exist, are enabled and call the column's function; no other pgml-kit trigger.
  const { rows: triggers } = await client.query<{ schema_name: string; table_name: string; name: string; enabled: string; function_schema: string; function_name: string }>(READ_TRIGGERS, [
    tables.map((t) => t.schema), tables.map((t) => t.table)])
  // A chunked column's chunk table: present (its triggers are checked with the others).
  const chunkTables = chunked.length === 0 ? [] : (await client.query<{ ok: boolean }>(CHUNK_TABLES_PRESENT, [chunked.map((n) => n.schema), chunked.map((n) => n.chunkTable)])).rows
  chunked.forEach((node, i) => {
    if (chunkTables[i]?.ok) return
    out.push({ kind: 'table', object: `${node.schema}.${node.chunkTable}`, problem: `missing: the chunk table of ${columnLabel(node)} (its chunks and vectors)`, fix: 'pgml-kit migrate down to before the migration that created it, then pgml-kit migrate (the rows are queued and chunked again)' })
  })
  const expected = [...columns.filter((c) => present.has(columnKey(c))).flatMap(expectedTriggers), ...chunked.filter((_, i) => chunkTables[i]?.ok).flatMap(expectedChunkTriggers)]
  for (const want of expected) {
    const { column } = want
    const table = quoteQualified(column.schema, column.table)
    const found = triggers.find((t) => t.schema_name === column.schema && t.table_name === column.table && t.name === want.name)
    const object = `${want.name} on ${column.schema}.${column.table}`
    if (!found) {
      out.push({ kind: 'trigger', object, problem: `missing: ${columnLabel(column)} (mode ${column.mode}) is not kept in sync`, fix: want.create.join('\n') })
    } else if (found.function_schema !== 'pgml_kit' || found.function_name !== column.triggerFunction) {
      out.push({ kind: 'trigger', object, problem: `calls ${found.function_schema}.${found.function_name}(), the snapshot says pgml_kit.${column.triggerFunction}()`, fix: [`DROP TRIGGER ${quoteIdent(want.name)} ON ${table};`, ...want.create].join('\n') })
    } else if (found.enabled === 'D') {
      out.push({ kind: 'trigger', object, problem: 'disabled: writes are not embedded or queued', fix: `ALTER TABLE ${table} ENABLE TRIGGER ${quoteIdent(want.name)};` })
    }
  }
  // The trigger functions: the body, SECURITY DEFINER and the pinned search_path pgml-kit generated.
  const withFunctions = [...new Map(expected.map((e) => [e.column.triggerFunction, e])).values()]
  const { rows: functions } = await client.query<{ name: string; source: string; definer: boolean; config: string[] | null }>(READ_TRIGGER_FUNCTIONS, [withFunctions.map((e) => e.column.triggerFunction)])
  for (const want of withFunctions) {
    const { column } = want
    const source = want.source ?? triggerFunctionSource(column, enqueueFunctionBody)
    const live = functions.find((f) => f.name === column.triggerFunction)
    const object = `pgml_kit.${column.triggerFunction}()`
    const create = want.create[0]!
    if (!live) {
      // A trigger cannot outlive its function: reported above as a missing trigger.
      continue
    }
    const differences = [
      ...(source !== null && live.source !== source ? ['its body is not the one pgml-kit generated for it'] : []),
      ...(!live.definer ? ['it is not SECURITY DEFINER'] : []),
      ...(!(live.config ?? []).includes('search_path=pg_catalog, pg_temp') ? [`its search_path is ${live.config?.find((x) => x.startsWith('search_path='))?.slice('search_path='.length) ?? 'not pinned'}, not pg_catalog, pg_temp`] : []),
    ]
    if (differences.length > 0) out.push({ kind: 'trigger', object, problem: `${differences.join('; ')} (of ${columnLabel(column)}, mode ${column.mode}): writes may not be embedded or queued`, fix: create })
  }
  // Feature views' change capture: each source's four triggers exist, are enabled and call the view's function.
  const captured = state.featureViews.filter((v) => v.changeCapture === 'trigger' && v.source.kind === 'table')
  const sources = captured.map((v) => v.source as { schema: string; table: string })
  const { rows: captureLive } = sources.length === 0 ? { rows: [] } : await client.query<{ schema_name: string; table_name: string; name: string; enabled: string; function_schema: string; function_name: string }>(READ_TRIGGERS, [
    sources.map((t) => t.schema), sources.map((t) => t.table)])
  const captureNames = new Set<string>()
  for (const view of captured) {
    const source = view.source as { schema: string; table: string }
    for (const want of captureTriggers(view)) {
      captureNames.add(JSON.stringify([source.schema, source.table, want.name]))
      const found = captureLive.find((t) => t.schema_name === source.schema && t.table_name === source.table && t.name === want.name)
      const object = `${want.name} on ${source.schema}.${source.table}`
      const lost = `changes of ${source.schema}.${source.table} are not logged for feature view ${view.name}: materialize misses them`
      const refresh = `-- then: pgml-kit materialize ${view.name} --full`
      if (!found) out.push({ kind: 'trigger', object, problem: `missing: ${lost}`, fix: `${want.create}\n${refresh}` })
      else if (found.function_schema !== view.schema || found.function_name !== view.captureFunction) {
        out.push({ kind: 'trigger', object, problem: `calls ${found.function_schema}.${found.function_name}(), the snapshot says ${view.schema}.${view.captureFunction}()`, fix: `${want.drop}\n${want.create}\n${refresh}` })
      } else if (found.enabled !== 'O' && found.enabled !== 'A') {
        // D: disabled; R: fires only when session_replication_role = replica, so not for ordinary writes.
        out.push({ kind: 'trigger', object, problem: `${found.enabled === 'D' ? 'disabled' : 'enabled for replica sessions only'}: ${lost}`, fix: `${want.enable}\n${refresh}` })
      }
    }
    // The capture function: the body, SECURITY DEFINER and the settings pgml-kit generated.
    const fn = `${quoteQualified(view.schema, view.captureFunction!)}()`
    const { rows: [live] } = await client.query<{ source: string; definer: boolean; config: string[] | null }>(READ_FUNCTION, [fn])
    if (live) {
      const differences = [
        ...(live.source !== captureFunctionBody(view) ? ['its body is not the one pgml-kit generated for it'] : []),
        ...(!live.definer ? ['it is not SECURITY DEFINER (writers without a grant on the change log fail)'] : []),
        ...(!(live.config ?? []).includes('search_path=pg_catalog, pg_temp') ? ['its search_path is not pinned to pg_catalog, pg_temp'] : []),
      ]
      if (differences.length > 0) {
        out.push({ kind: 'trigger', object: `${view.schema}.${view.captureFunction}()`, problem: `${differences.join('; ')}: changes of ${source.schema}.${source.table} may not be logged for feature view ${view.name}`,
          fix: `${renderCaptureFunction(view, true)}\nREVOKE EXECUTE ON FUNCTION ${fn} FROM PUBLIC;\n-- then: pgml-kit materialize ${view.name} --full` })
      }
    }
  }
  for (const t of triggers) {
    if (captureNames.has(JSON.stringify([t.schema_name, t.table_name, t.name]))) continue
    if (expected.some((e) => e.column.schema === t.schema_name && e.column.table === t.table_name && e.name === t.name)) continue
    out.push({ kind: 'trigger', object: `${t.name} on ${t.schema_name}.${t.table_name}`, problem: 'extra: a pgml-kit trigger the snapshot does not declare', fix: `DROP TRIGGER ${quoteIdent(t.name)} ON ${quoteQualified(t.schema_name, t.table_name)};` })
  }

  // Vector indexes: missing, INVALID, or built with other parameters or operator class.
  const indexes = state.indexes.filter((i) => present.has(columnKey(i)) && !recreated.has(columnKey(i)))
  const health = await readIndexHealth(client, { ...state, indexes })
  indexes.forEach((index, i) => {
    const h = health[i]
    if (!h || h.state === 'ok') return
    const column = index.schema === 'public' ? `${index.table}.${index.column}` : columnLabel(index)
    out.push({ kind: 'index', object: h.index, problem: `${h.state}: ${h.detail}`, fix: `pgml-kit index repair ${JSON.stringify(column)}  (rebuilds it concurrently: writes go on)` })
  })

  // Coverage: rows whose text is there and whose vector is not (a warning: searches miss them).
  const { rows: hasQueue } = await client.query<{ ok: boolean }>(RELATION_EXISTS, ['pgml_kit', 'embedding_jobs'])
  for (const c of columns.filter((c) => present.has(columnKey(c)) && !recreated.has(columnKey(c)) && c.rollout === undefined)) {
    const counted = await client.query<{ missing: string; total: string }>(renderCountMissingVectors(c))
      .catch((error: unknown) => {
        // A role that may not read the table: coverage is not counted, the rest of the drift is still read.
        if ((error as { code?: string }).code === '42501') return null
        throw error
      })
    if (counted === null) {
      out.push({ kind: 'column', object: columnLabel(c), severity: 'warning', problem: `rows without vectors not counted: this role may not read ${c.schema}.${c.table}`, fix: `run status --drift as the table's owner` })
      continue
    }
    const counts = counted.rows
    const missing = BigInt(counts[0]?.missing ?? '0')
    if (missing === 0n) continue
    const queued = c.mode === 'queue' && hasQueue[0]?.ok
      ? BigInt((await client.query<{ n: string }>(
        COUNT_QUEUED_JOBS, [c.schema, c.table, c.column]).catch((error: unknown) => {
          if ((error as { code?: string }).code === '42501') return { rows: [{ n: '0' }] }
          throw error
        })).rows[0]?.n ?? '0')
      : 0n
    const waiting = queued >= missing
    out.push({
      kind: 'column', object: columnLabel(c), severity: 'warning',
      problem: `${missing} of ${counts[0]?.total} rows with text have no vector${queued > 0n ? ` (${queued} queued for the worker)` : ''}: searches do not find them`,
      fix: waiting ? `pgml-kit worker  (drains the queue)` : `pgml-kit backfill ${c.schema === 'public' ? `${c.table}.${c.column}` : JSON.stringify(columnLabel(c))}`,
    })
  }

  // The catalog and the runtime schema.
  const { rows: hasCatalog } = await client.query<{ ok: boolean }>(RELATION_EXISTS, ['pgml_kit', 'embedding_columns'])
  if (columns.length > 0 && !hasCatalog[0]?.ok) {
    out.push({ kind: 'runtime', object: 'pgml_kit', problem: 'the pgml_kit runtime schema is missing', fix: 'restore it: pgml-kit migrate down, then up (its first migration installs it)' })
    return out
  }
  if (hasCatalog[0]?.ok) {
    const { rows: gone } = await client.query<{ name: string }>(MISSING_RUNTIME_RELATIONS, [RUNTIME_RELATIONS])
    if (columns.length > 0 && gone.length > 0) {
      // The runtime's scripts are idempotent: run again, they create only what is missing. The grants follow.
      const fix = [...Array.from({ length: state.runtimeVersion }, (_, i) => runtimeInstallSql(i + 1)), ...renderGrants(grantsFor(state).filter((g) => g.on.kind === 'table' && g.on.schema === 'pgml_kit'))].join('\n')
      out.push({ kind: 'runtime', object: 'pgml_kit', problem: `missing: ${gone.map((g) => `pgml_kit.${g.name}`).join(', ')}${gone.some((g) => g.name === 'embedding_jobs') ? ' (every write to a queue-mode column fails)' : ''}`, fix })
      if (gone.some((g) => g.name === 'runtime_version')) return out
    }
    const { rows: version } = await client.query<{ v: number | null }>(READ_RUNTIME_VERSION)
    if ((version[0]?.v ?? 0) < state.runtimeVersion) {
      out.push({ kind: 'runtime', object: 'pgml_kit', problem: `runtime schema version ${version[0]?.v ?? 0}, the snapshot needs ${state.runtimeVersion}`, fix: 'pgml-kit migrate (a generated migration upgrades it)' })
    }
    const catalog = (await client.query<{ row: string }>(READ_CATALOG)).rows.map((r) => JSON.parse(r.row) as CatalogRow)
    const ours = new Set(tables.map((t) => objectKey(t.schema, t.table)))
    for (const c of columns) {
      const row = catalog.find((r) => r.table_schema === c.schema && r.table_name === c.table && r.column_name === c.column)
      if (!row) {
        out.push({ kind: 'catalog', object: columnLabel(c), problem: 'not recorded in pgml_kit.embedding_columns (searches and workers cannot find it)', fix: renderRegisterEmbeddingColumn(c) })
        continue
      }
      const differences = catalogDifferences(row, c)
      if (differences.length > 0) out.push({ kind: 'catalog', object: columnLabel(c), problem: `out of date: ${differences.join('; ')}`, fix: `${renderUnregisterEmbeddingColumn(c)}\n${renderRegisterEmbeddingColumn(c)}` })
    }
    // Rows for this project's tables that the snapshot does not declare (other tables may be another project's).
    for (const row of catalog) {
      if (!ours.has(objectKey(row.table_schema, row.table_name))) continue
      if (columns.some((c) => c.schema === row.table_schema && c.table === row.table_name && c.column === row.column_name)) continue
      const key = `${row.table_schema}.${row.table_name}.${row.column_name}`
      out.push({ kind: 'catalog', object: key, problem: 'recorded in pgml_kit.embedding_columns, but the snapshot has no such column', fix: `DELETE FROM pgml_kit.embedding_columns WHERE table_schema = ${quoteLiteral(row.table_schema)} AND table_name = ${quoteLiteral(row.table_name)} AND column_name = ${quoteLiteral(row.column_name)};` })
    }
  }
  return out
}
