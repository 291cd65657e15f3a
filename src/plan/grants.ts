import { SERVING_RUNTIME_VERSION, needsPgml, type DesiredState } from '../model/ir.js'
import { LINEAGE_TABLE, RUNS_TABLE } from '../sql/render-features.js'

/**
 * What the roles declared in the config are granted, as atoms: one privilege of one role on one
 * object (or one column of it). Plans diff the atoms of two states, so a removed embedding column
 * revokes only what no other column still needs, and every grant has its revoke as its down.
 *
 * pgml-kit grants on what it creates or runs: the pgml_kit schema and tables, the embedding
 * columns, and the key and source columns the worker reads; USAGE on schema pgml when the config
 * uses it; the feature schema and the online feature tables to app roles (online predictions). It never changes privileges on your schemas (status reports what is missing there).
 */
export interface GrantAtom {
  readonly role: string
  readonly on: { readonly kind: 'schema'; readonly schema: string } | { readonly kind: 'table'; readonly schema: string; readonly table: string }
  readonly privilege: 'USAGE' | 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE'
  /** A column privilege, or null for the whole table (or schema). */
  readonly column: string | null
  /** Who needs it, for the plan's summary. */
  readonly purpose: 'app' | 'worker' | 'trainer'
}

export function grantKey(atom: GrantAtom): string {
  const on = atom.on.kind === 'schema' ? ['schema', atom.on.schema] : ['table', atom.on.schema, atom.on.table]
  return JSON.stringify([atom.role, ...on, atom.privilege, atom.column])
}

const RUNTIME = 'pgml_kit'

/** What resolving an alias reads. */
const REGISTRY_READ = ['model_versions', 'model_aliases'] as const
/**
 * What train, deploy, `models` and `monitor` write, column by column: never an id, an actor or a
 * time (the registry's trigger sets those), and never an event (the registry writes its own).
 */
const REGISTRY_WRITE: readonly (readonly [string, GrantAtom['privilege'], readonly (string | null)[]])[] = [
  ['model_versions', 'SELECT', [null]],
  ['model_versions', 'INSERT', ['project', 'version', 'model_id']],
  ['model_versions', 'UPDATE', ['description', 'tags', 'archived_at', 'archive_reason']],
  ['model_aliases', 'SELECT', [null]],
  ['model_aliases', 'INSERT', ['project', 'alias', 'version']],
  ['model_aliases', 'UPDATE', ['version']],
  ['model_aliases', 'DELETE', [null]],
  ['model_events', 'SELECT', [null]],
  ['model_lineage', 'SELECT', [null]],
  ['model_lineage', 'INSERT', ['model_id', 'project', 'relation', 'row_count', 'rows_sha256', 'training_config', 'feature_views', 'environment', 'train_sql', 'baseline']],
  ['lineage_edges', 'SELECT', [null]],
  ['monitor_runs', 'SELECT', [null]],
  ['monitor_runs', 'INSERT', ['project', 'version', 'model_id', 'current_rows', 'alarms', 'metrics']],
]

/** What pgml_kit.predict reads and writes as the application (runtime 7): the routes, the log's settings, a logged request (never its time). */
const SERVING_APP: readonly (readonly [string, GrantAtom['privilege'], readonly (string | null)[]])[] = [
  ['model_routes', 'SELECT', [null]],
  ['prediction_log_settings', 'SELECT', [null]],
  ['prediction_log', 'INSERT', ['request_id', 'project', 'model_id', 'version', 'arm', 'entity_key', 'features', 'prediction', 'error']],
]

/** What `models route`, `models compare` and `monitor` need (runtime 7): routes written column by column (never who or when), the log read. */
const SERVING_TRAINER: readonly (readonly [string, GrantAtom['privilege'], readonly (string | null)[]])[] = [
  ['model_routes', 'SELECT', [null]],
  ['model_routes', 'INSERT', ['project', 'alias', 'mode', 'share']],
  ['model_routes', 'UPDATE', ['alias', 'mode', 'share']],
  ['model_routes', 'DELETE', [null]],
  ['prediction_log_settings', 'SELECT', [null]],
  ['prediction_log', 'SELECT', [null]],
]

/** The atoms a state asks for. */
export function grantsFor(state: DesiredState): GrantAtom[] {
  const atoms = new Map<string, GrantAtom>()
  const add = (atom: GrantAtom) => atoms.set(grantKey(atom), atom)
  // Online features, for kit.predictOnline: the feature schema and each view's online table.
  for (const role of state.roles.app) {
    for (const view of state.featureViews ?? []) {
      add({ role, on: { kind: 'schema', schema: view.schema }, privilege: 'USAGE', column: null, purpose: 'app' })
      add({ role, on: { kind: 'table', schema: view.schema, table: view.onlineTable }, privilege: 'SELECT', column: null, purpose: 'app' })
    }
  }
  const table = (name: string) => ({ kind: 'table', schema: RUNTIME, table: name }) as const
  // The model registry: applications resolve aliases (pgml_kit.model_id); trainers move them.
  if ((state.models ?? []).length > 0) {
    for (const role of state.roles.app) {
      add({ role, on: { kind: 'schema', schema: RUNTIME }, privilege: 'USAGE', column: null, purpose: 'app' })
      for (const name of REGISTRY_READ) add({ role, on: table(name), privilege: 'SELECT', column: null, purpose: 'app' })
      if (state.runtimeVersion >= SERVING_RUNTIME_VERSION) for (const [name, privilege, columns] of SERVING_APP) for (const column of columns) add({ role, on: table(name), privilege, column, purpose: 'app' })
    }
    for (const role of state.roles.trainer ?? []) {
      add({ role, on: { kind: 'schema', schema: RUNTIME }, privilege: 'USAGE', column: null, purpose: 'trainer' })
      for (const [name, privilege, columns] of REGISTRY_WRITE) for (const column of columns) add({ role, on: table(name), privilege, column, purpose: 'trainer' })
      if (state.runtimeVersion >= SERVING_RUNTIME_VERSION) for (const [name, privilege, columns] of SERVING_TRAINER) for (const column of columns) add({ role, on: table(name), privilege, column, purpose: 'trainer' })
    }
    // Training on a training set: the set's view (its rows, read with the view owner's rights), the
    // materialisation marks the lineage records, and the feature schema's lineage table.
    for (const role of state.roles.trainer ?? []) {
      for (const set of state.trainingSets ?? []) {
        const on = (name: string) => ({ kind: 'table', schema: set.schema, table: name }) as const
        add({ role, on: { kind: 'schema', schema: set.schema }, privilege: 'USAGE', column: null, purpose: 'trainer' })
        add({ role, on: on(set.name), privilege: 'SELECT', column: null, purpose: 'trainer' })
        add({ role, on: on(RUNS_TABLE), privilege: 'SELECT', column: null, purpose: 'trainer' })
        add({ role, on: on(LINEAGE_TABLE), privilege: 'SELECT', column: null, purpose: 'trainer' })
        for (const column of ['model_id', 'project', 'relation', 'training_set', 'definition_sha256', 'feature_views', 'train_sql']) add({ role, on: on(LINEAGE_TABLE), privilege: 'INSERT', column, purpose: 'trainer' })
        for (const column of ['gate_verdict', 'gate_overrides']) add({ role, on: on(LINEAGE_TABLE), privilege: 'UPDATE', column, purpose: 'trainer' })
      }
    }
  }
  if (state.embeddingColumns.length === 0 && (state.chunkedColumns ?? []).length === 0) return [...atoms.values()].sort((a, b) => grantKey(a).localeCompare(grantKey(b)))
  const usesPgml = state.embeddingColumns.some(needsPgml)

  for (const role of state.roles.app) {
    // The catalog: which model and prefixes produced each column.
    add({ role, on: { kind: 'schema', schema: RUNTIME }, privilege: 'USAGE', column: null, purpose: 'app' })
    add({ role, on: table('embedding_columns'), privilege: 'SELECT', column: null, purpose: 'app' })
    // Query embedding and predictions in the database.
    if (usesPgml) add({ role, on: { kind: 'schema', schema: 'pgml' }, privilege: 'USAGE', column: null, purpose: 'app' })
  }
  for (const role of state.roles.worker) {
    const runtime = (name: string, privileges: GrantAtom['privilege'][]) => {
      for (const privilege of privileges) add({ role, on: table(name), privilege, column: null, purpose: 'worker' })
    }
    add({ role, on: { kind: 'schema', schema: RUNTIME }, privilege: 'USAGE', column: null, purpose: 'worker' })
    runtime('embedding_columns', ['SELECT'])
    // Claim, complete, fail; INSERT for `queue retry`.
    runtime('embedding_jobs', ['SELECT', 'INSERT', 'UPDATE', 'DELETE'])
    runtime('embedding_dead_letters', ['SELECT', 'INSERT', 'DELETE'])
    runtime('backfill_checkpoints', ['SELECT', 'INSERT', 'UPDATE', 'DELETE'])
    if (usesPgml) add({ role, on: { kind: 'schema', schema: 'pgml' }, privilege: 'USAGE', column: null, purpose: 'worker' })
    for (const c of state.embeddingColumns) {
      const on = { kind: 'table', schema: c.schema, table: c.table } as const
      for (const column of [...c.keyColumns, ...c.sourceColumns, c.column]) add({ role, on, privilege: 'SELECT', column, purpose: 'worker' })
      add({ role, on, privilege: 'UPDATE', column: c.column, purpose: 'worker' })
      // A generated column is recomputed by rewriting its first source column with itself.
      if (c.mode === 'generated' && c.sourceColumns[0]) add({ role, on, privilege: 'UPDATE', column: c.sourceColumns[0], purpose: 'worker' })
    }
  }
  // Chunked columns: applications search the chunk table (and write it in mode `app`, through the
  // embedding writer); workers read the rows' key, source and template columns and write chunks.
  for (const node of state.chunkedColumns ?? []) {
    const chunks = { kind: 'table', schema: node.schema, table: node.chunkTable } as const
    const writes: GrantAtom['privilege'][] = ['SELECT', 'INSERT', 'UPDATE', 'DELETE']
    for (const role of state.roles.app) {
      for (const privilege of node.mode === 'app' ? writes : ['SELECT' as const]) add({ role, on: chunks, privilege, column: null, purpose: 'app' })
    }
    if (node.mode !== 'queue') continue
    for (const role of state.roles.worker) {
      const source = { kind: 'table', schema: node.schema, table: node.table } as const
      for (const column of new Set([...node.keyColumns, ...node.sourceColumns, ...node.templateColumns])) add({ role, on: source, privilege: 'SELECT', column, purpose: 'worker' })
      for (const privilege of writes) add({ role, on: chunks, privilege, column: null, purpose: 'worker' })
    }
  }
  return [...atoms.values()].sort((a, b) => grantKey(a).localeCompare(grantKey(b)))
}

/** Atoms in `a` and not in `b`. */
export function grantsMissingFrom(a: readonly GrantAtom[], b: readonly GrantAtom[]): GrantAtom[] {
  const keys = new Set(b.map(grantKey))
  return a.filter((atom) => !keys.has(grantKey(atom)))
}

/** A privilege a declared role needs: granted by pgml-kit's migrations, or yours to grant (on your schemas and tables). */
export interface PrivilegeNeed extends GrantAtom {
  readonly grantedBy: 'pgml-kit' | 'you'
}

/**
 * Everything the declared roles need, for `status`: what the migrations grant, and what they leave
 * to you — USAGE on the schemas of the tables, and (for app roles) SELECT on them for searches;
 * given the schema pgvector is installed in, USAGE on it (searches and the worker name its
 * operators and types qualified with it).
 */
export function privilegeNeeds(state: DesiredState, vectorSchema: string | null = null): PrivilegeNeed[] {
  const needs = new Map<string, PrivilegeNeed>()
  for (const atom of grantsFor(state)) needs.set(grantKey(atom), { ...atom, grantedBy: 'pgml-kit' })
  const yours = (atom: GrantAtom) => { if (!needs.has(grantKey(atom))) needs.set(grantKey(atom), { ...atom, grantedBy: 'you' }) }
  for (const c of state.embeddingColumns) {
    for (const role of state.roles.app) {
      yours({ role, on: { kind: 'schema', schema: c.schema }, privilege: 'USAGE', column: null, purpose: 'app' })
      yours({ role, on: { kind: 'table', schema: c.schema, table: c.table }, privilege: 'SELECT', column: null, purpose: 'app' })
    }
    for (const role of state.roles.worker) yours({ role, on: { kind: 'schema', schema: c.schema }, privilege: 'USAGE', column: null, purpose: 'worker' })
  }
  for (const c of state.chunkedColumns ?? []) {
    for (const role of state.roles.app) {
      yours({ role, on: { kind: 'schema', schema: c.schema }, privilege: 'USAGE', column: null, purpose: 'app' })
      yours({ role, on: { kind: 'table', schema: c.schema, table: c.table }, privilege: 'SELECT', column: null, purpose: 'app' })
    }
    if (c.mode === 'queue') for (const role of state.roles.worker) yours({ role, on: { kind: 'schema', schema: c.schema }, privilege: 'USAGE', column: null, purpose: 'worker' })
  }
  if (vectorSchema !== null && (state.embeddingColumns.length > 0 || (state.chunkedColumns ?? []).length > 0)) {
    for (const role of state.roles.app) yours({ role, on: { kind: 'schema', schema: vectorSchema }, privilege: 'USAGE', column: null, purpose: 'app' })
    for (const role of state.roles.worker) yours({ role, on: { kind: 'schema', schema: vectorSchema }, privilege: 'USAGE', column: null, purpose: 'worker' })
  }
  // Predictions from training sets call pgml.predict; pgml is not pgml-kit's to grant when no embedding column uses it.
  if ((state.trainingSets ?? []).length > 0) {
    for (const role of state.roles.app) yours({ role, on: { kind: 'schema', schema: 'pgml' }, privilege: 'USAGE', column: null, purpose: 'app' })
  }
  return [...needs.values()].sort((a, b) => grantKey(a).localeCompare(grantKey(b)))
}
