import { servedChunkedColumns, type ServedChunks } from './chunking/served.js'
import type pg from 'pg'
import { detectCapabilities, type Capabilities } from './db/capabilities.js'
import { openTarget, type TargetOptions } from './db/target.js'
import type { DesiredState, EmbeddingColumnNode, MigrationSettings } from './model/ir.js'
import { renderBackfillProgress } from './sql/render-backfill.js'
import { listMigrations } from './migrations/files.js'
import { readApplied, type AppliedMigration } from './migrations/run.js'
import { privilegeNeeds, type PrivilegeNeed } from './plan/grants.js'
import { renderPlainGrant } from './sql/render-grants.js'
import { CATALOG_COLUMNS, CHECK_PRIVILEGES, PGML_GRANTABLE_BY_MIGRATOR, RELATION_EXISTS } from './sql/render-introspection.js'
import { readQueueStats, type QueueStats } from './worker/queue.js'
import { readIndexHealth, type IndexHealth } from './indexes/health.js'
import { readLastChecks, type LastCheck } from './indexes/check.js'
import { readDrift, type DriftItem } from './drift.js'
import { readRowEstimates } from './indexes/sizing.js'
import { readLiveColumns } from './db/live-catalog.js'
import { columnsOfConfig } from './model/catalog-column.js'
import { readFeatureLag, type FeatureLag } from './features/check.js'
import { RUNS_TABLE } from './sql/render-features.js'
import { quoteQualified } from './sql/quote.js'
import { registryInstalled } from './features/registry.js'
import { servingInstalled } from './features/serving.js'
import { renderModelsStatus } from './sql/render-serving.js'
import { renderChunkProgress } from './sql/render-chunks.js'
import { countTruncated, type Truncation } from './embed/truncation.js'
import type { Embedder } from './embed/embedder.js'

export interface CatalogEntry {
  readonly table: string
  readonly column: string
  readonly model: string
  readonly dimensions: number
  readonly vectorType: string
  readonly mode: string
  readonly sourceColumns: readonly string[]
  /**
   * For the extra column of a staged model change: `next` (the new model's column being filled)
   * or `previous` (the old model's, kept after the switch), and the live column it belongs to.
   */
  readonly rollout: { readonly role: 'next' | 'previous'; readonly of: string } | null
  /**
   * For the config's columns and the extra columns of their staged model changes: rows with text
   * to embed and how many of them have no vector yet (counted on tables below a million rows; null
   * on larger ones, or for other projects' columns).
   */
  readonly progress: { readonly withText: number; readonly missing: number } | null
  /** With `truncation`: rows whose text is longer than the model's window (the model saw only its start); null when the model cannot count tokens. */
  readonly truncation?: Truncation | null
}

/** A chunked column of the config: its chunk table, documents with and without chunks, and chunks. */
export interface ChunkedStatus {
  readonly table: string
  readonly column: string
  readonly chunkTable: string
  readonly mode: string
  readonly model: string
  /** A staged chunking change's copy: `next` (filling) or `previous` (the chunks before the switch); absent for the live table. */
  readonly role?: 'next' | 'previous'
  /** The splitter settings its chunks are made with (the table's own, during a staged change). */
  readonly chunking: string
  /** Why the chunk tables could not be read as the worker reads them (settings unknown, another model): the worker and writer stop on it. */
  readonly problem?: string
  /** Null until migrated (or when this role may not read the chunk table). */
  readonly counts: { readonly rowsWithText: number; readonly rowsWithoutChunks: number; readonly chunks: number; readonly chunksOfOtherModels: number } | null
}

/** Tables up to this many rows (pg_class.reltuples) get an exact backfill count in `status`. */
const COUNT_LIMIT = 1_000_000

/** A privilege a role declared in the config does not have. */
export interface MissingPrivilege {
  readonly role: string
  /** What the role is for. */
  readonly purpose: 'app' | 'worker' | 'trainer'
  /** `USAGE on schema pgml_kit`, `SELECT (title) on public.documents`, or `role does not exist`. */
  readonly missing: string
  /**
   * `pgml-kit`: a migration grants it (not applied yet, or revoked since); `you`: it is on your
   * objects; `administrator`: USAGE on schema pgml, which the role that migrates may not pass on
   * (it holds no USAGE WITH GRANT OPTION there).
   */
  readonly grantedBy: 'pgml-kit' | 'you' | 'administrator'
  /** The statement that fixes it. */
  readonly fix: string
}

export interface ModelStatus {
  readonly project: string
  readonly champion: number | null
  readonly versions: number
  readonly route: { readonly alias: string; readonly mode: 'shadow' | 'canary'; readonly share: number } | null
  readonly log: { readonly sample: number; readonly retentionDays: number } | null
  readonly lastMonitor: { readonly at: string; readonly alarms: readonly string[] } | null
}

export interface Status {
  readonly target: { readonly kind: 'server' | 'embedded'; readonly description: string }
  readonly capabilities: Capabilities
  readonly applied: readonly AppliedMigration[]
  readonly pending: readonly string[]
  /** Applied migrations whose file is no longer in the migrations directory. */
  readonly missing: readonly string[]
  readonly embeddingColumns: readonly CatalogEntry[]
  /** The config's chunked columns. */
  readonly chunkedColumns: readonly ChunkedStatus[]
  /** Per queue-mode column: depth, leased, retrying, oldest job age, dead letters. */
  readonly queues: readonly QueueStats[]
  /** Privileges the roles declared in the config lack (empty when none are declared, or all are there). */
  readonly missingPrivileges: readonly MissingPrivilege[]
  /** Each vector index the config declares: ok, missing, INVALID or differing, and its size (given the config's state). */
  readonly indexes: readonly (IndexHealth & { readonly lastCheck: LastCheck | null })[]
  /** With `drift`: how the live database differs from the snapshot (empty: no drift); else null. */
  readonly drift: readonly DriftItem[] | null
  /** Each model of the config: its champion version, versions, route, prediction log and latest monitor run (empty without a registry, or when this role may not read it). */
  readonly models: readonly ModelStatus[]
  /** Each feature view of the config: its last materialisation and lag (null until migrated with change capture). */
  readonly featureViews: readonly { readonly view: string; readonly lag: FeatureLag | null }[]
}

async function readFeatureViews(client: pg.ClientBase, state: DesiredState | undefined): Promise<Status['featureViews']> {
  const out: { view: string; lag: FeatureLag | null }[] = []
  for (const view of state?.featureViews ?? []) {
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_catalog.to_regprocedure($1) IS NOT NULL AND pg_catalog.to_regclass($2) IS NOT NULL AS ok', [
      `${quoteQualified(view.schema, view.materializeFunction)}(boolean)`, quoteQualified(view.schema, RUNS_TABLE),
    ])
    out.push({ view: view.name, lag: rows[0]?.ok ? await readFeatureLag(client, view, 0).catch(() => null) : null })
  }
  return out
}

function describeNeed(need: PrivilegeNeed): string {
  const on = need.on.kind === 'schema' ? `schema ${need.on.schema}` : `${need.on.schema}.${need.on.table}`
  return `${need.privilege}${need.column === null ? '' : ` (${need.column})`} on ${on}`
}

async function checkPrivileges(client: pg.ClientBase, needs: readonly PrivilegeNeed[]): Promise<MissingPrivilege[]> {
  if (needs.length === 0) return []
  const { rows } = await client.query<{ n: number; state: 'ok' | 'missing' | 'no role' | 'no object' }>(CHECK_PRIVILEGES, [
    needs.map((n) => n.role), needs.map((n) => n.on.kind), needs.map((n) => n.on.schema),
    needs.map((n) => (n.on.kind === 'table' ? n.on.table : null)), needs.map((n) => n.column), needs.map((n) => n.privilege),
  ])
  const out: MissingPrivilege[] = []
  const reportedRoles = new Set<string>()
  const pgmlGrantable = needs.some((n) => n.on.kind === 'schema' && n.on.schema === 'pgml')
    ? (await client.query<{ ok: boolean | null }>(PGML_GRANTABLE_BY_MIGRATOR)).rows[0]?.ok !== false
    : true
  for (const row of rows) {
    const need = needs[row.n - 1]
    // An object that does not exist yet is the business of pending migrations, not of privileges.
    if (!need || row.state === 'ok' || row.state === 'no object') continue
    if (row.state === 'no role') {
      if (reportedRoles.has(need.role)) continue
      reportedRoles.add(need.role)
      out.push({ role: need.role, purpose: need.purpose, missing: 'role does not exist', grantedBy: 'you', fix: `CREATE ROLE ${need.role} LOGIN` })
      continue
    }
    const grantedBy = need.on.kind === 'schema' && need.on.schema === 'pgml' && !pgmlGrantable ? 'administrator' : need.grantedBy
    out.push({ role: need.role, purpose: need.purpose, missing: describeNeed(need), grantedBy, fix: renderPlainGrant(need) })
  }
  return out
}

/**
 * Applied and pending migrations, what the target can do, the embedding columns its `pgml_kit`
 * catalog records, the queues, and — given the config's state — the privileges its declared roles lack.
 */
export async function readStatus(options: TargetOptions & {
  dir: string; settings: MigrationSettings; state?: DesiredState; drift?: DesiredState
  /** Count the rows each embedding column's model truncates (reads every text longer than the window; loads the models). */
  truncation?: { readonly loadEmbedder: (column: EmbeddingColumnNode) => Promise<Embedder> }
}): Promise<Status> {
  const target = await openTarget(options)
  try {
    const client = await target.connect('pgml-kit status')
    try {
      const [files, applied, capabilities] = await Promise.all([
        listMigrations(options.dir), readApplied(client, options.settings), detectCapabilities(client),
      ])
      const done = new Set(applied.map((a) => a.name))
      const onDisk = new Set(files.map((f) => f.name))
      const { rows: hasCatalog } = await client.query<{ ok: boolean }>(RELATION_EXISTS, ['pgml_kit', 'embedding_columns'])
      const embeddingColumns: CatalogEntry[] = []
      if (hasCatalog[0]?.ok) {
        const { rows } = await client.query<{ table_schema: string; table_name: string; column_name: string; model_id: string; dimensions: number; vector_type: string; mode: string; source_columns: string[]; row: string }>(CATALOG_COLUMNS)
        const declared = options.state?.embeddingColumns ?? []
        const estimates = await readRowEstimates(client, declared)
        // This project's columns as the catalog has them (a staged model change's extra columns included).
        const live = declared.length > 0 ? columnsOfConfig(declared, await readLiveColumns(client, declared) ?? []) : []
        for (const r of rows) {
          const { rollout_role: role, rollout_of: of } = JSON.parse(r.row) as { rollout_role?: 'next' | 'previous' | null; rollout_of?: string | null }
          const ours = live.find((l) => l.node.schema === r.table_schema && l.node.table === r.table_name && l.node.column === r.column_name)?.node
          embeddingColumns.push({
            table: `${r.table_schema}.${r.table_name}`, column: r.column_name, model: r.model_id, dimensions: r.dimensions, vectorType: r.vector_type, mode: r.mode, sourceColumns: r.source_columns,
            rollout: role ? { role, of: of ?? r.column_name } : null,
            progress: ours && (estimates.get(`${ours.schema}.${ours.table}`)?.reltuples ?? 0) <= COUNT_LIMIT ? await readProgress(client, ours) : null,
            ...(options.truncation && ours ? { truncation: await countTruncated(client, ours, await options.truncation.loadEmbedder(ours)) } : {}),
          })
        }
      }
      const pending = files.filter((f) => !done.has(f.name)).map((f) => f.name)
      const missingPrivileges = options.state ? await checkPrivileges(client, privilegeNeeds(options.state, capabilities.vector.schema)) : []
      let drift: DriftItem[] | null = null
      if (options.drift) {
        drift = []
        // Until every migration is applied the database is behind the snapshot by design: that is the drift to fix first.
        if (pending.length > 0) drift.push({ kind: 'migrations', object: `${pending.length} pending`, problem: `not applied: ${pending.join(', ')}`, fix: 'pgml-kit migrate' })
        else {
          drift.push(...await readDrift(client, options.drift))
          const snapshotPrivileges = await checkPrivileges(client, privilegeNeeds(options.drift))
          // Only what the migrations granted: privileges on your own tables are yours to give (plain status lists them).
          for (const m of snapshotPrivileges.filter((p) => p.grantedBy === 'pgml-kit')) drift.push({ kind: 'grant', object: `${m.role} (${m.purpose})`, problem: `lacks ${m.missing}`, fix: m.fix })
        }
      }
      return {
        target: { kind: target.kind, description: target.description },
        capabilities,
        applied,
        pending,
        missing: applied.filter((a) => !onDisk.has(a.name)).map((a) => a.name),
        embeddingColumns,
        chunkedColumns: await readChunked(client, options.state),
        queues: await readQueueStats(client),
        missingPrivileges,
        indexes: options.state ? await withLastChecks(client, await readIndexHealth(client, options.state)) : [],
        drift,
        featureViews: await readFeatureViews(client, options.state),
        models: await readModels(client, options.state),
      }
    } finally {
      await client.end()
    }
  } finally {
    await target.close()
  }
}

async function readChunked(client: pg.ClientBase, state: DesiredState | undefined): Promise<ChunkedStatus[]> {
  const out: ChunkedStatus[] = []
  let served: ServedChunks[]
  let problem: string | undefined
  try {
    served = await servedChunkedColumns(client, state?.chunkedColumns ?? [])
  } catch (error) {
    if (!['CHUNK_MODEL_MISMATCH', 'CHUNK_SETTINGS_UNKNOWN'].includes(String((error as { code?: unknown }).code))) throw error
    problem = (error as Error).message
    served = (state?.chunkedColumns ?? []).map((node) => ({ node, comment: null, present: false }))
  }
  for (const { node } of served) {
    let counts: ChunkedStatus['counts'] = null
    try {
      const { rows } = await client.query<{ with_text: string; without: string; chunks: string; other: string }>(renderChunkProgress(node), [node.model.id])
      const r = rows[0]
      if (r) counts = { rowsWithText: Number(r.with_text), rowsWithoutChunks: Number(r.without), chunks: Number(r.chunks), chunksOfOtherModels: Number(r.other) }
    } catch (error) {
      // Not migrated yet (no such table or column), or not readable by this role: null. Anything else is an error.
      if (!['42P01', '42703', '42501'].includes(String((error as { code?: unknown }).code))) throw error
      counts = null
    }
    const k = node.chunking
    const chunking = `${k.splitter} ${k.size ?? 'window'}/${k.overlap}${k.template === '{chunk}' ? '' : ` ${k.template}`}`
    out.push({ table: `${node.schema}.${node.table}`, column: node.column, chunkTable: `${node.schema}.${node.chunkTable}`, mode: node.mode, model: node.model.id, ...(node.rollout ? { role: node.rollout.role } : {}), ...(problem ? { problem } : {}), chunking, counts })
  }
  return out
}

/** Exact backfill progress of a column (a full scan); null when its columns differ from the config's. */
async function readProgress(client: pg.ClientBase, column: EmbeddingColumnNode): Promise<{ withText: number; missing: number } | null> {
  try {
    const { rows } = await client.query<{ with_text: string; missing: string }>(renderBackfillProgress(column))
    return { withText: Number(rows[0]?.with_text ?? 0), missing: Number(rows[0]?.missing ?? 0) }
  } catch {
    return null
  }
}

async function withLastChecks(client: pg.ClientBase, health: readonly IndexHealth[]): Promise<(IndexHealth & { lastCheck: LastCheck | null })[]> {
  const checks = health.length > 0 ? await readLastChecks(client) : new Map<string, LastCheck>()
  return health.map((h) => ({ ...h, lastCheck: checks.get(h.index) ?? null }))
}

async function readModels(client: pg.ClientBase, state: DesiredState | undefined): Promise<ModelStatus[]> {
  const projects = state?.models ?? []
  if (projects.length === 0 || !(await registryInstalled(client))) return []
  try {
    const { rows } = await client.query<{ project: string; champion: number | null; versions: number; route: ModelStatus['route']; log: ModelStatus['log']; last_monitor: { at: string; alarms: string[] } | null }>(
      renderModelsStatus(await servingInstalled(client)), [[...projects]])
    return rows.map((r) => ({ project: r.project, champion: r.champion, versions: r.versions, route: r.route, log: r.log, lastMonitor: r.last_monitor ? { at: new Date(r.last_monitor.at).toISOString(), alarms: r.last_monitor.alarms } : null }))
  } catch (error) {
    // A role that may not read the registry sees no models in status (its grants section says what it lacks).
    if ((error as { code?: unknown }).code === '42501') return []
    throw error
  }
}
