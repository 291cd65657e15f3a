/**
 * One step of a plan. Its up and down travel together, so every generated migration is
 * reversible by construction (a down that cannot restore data says so in `notes`).
 */
/**
 * What a reviewer must know about a step, from least to most attention:
 * - `safe`: no data changes meaning, no lock held for longer than an instant, no special privilege;
 * - `slows-writes`: every later write to the table does more work (a trigger that runs the model);
 * - `needs-backfill`: stored data is stale or missing until a backfill runs;
 * - `privileged`: needs a superuser (an untrusted extension or language may be installed);
 * - `rewrites-or-locks`: rewrites the table or holds a strong lock for as long as the table is large;
 * - `destructive`: deletes data a down cannot bring back.
 */
export type SafetyClass = 'safe' | 'slows-writes' | 'needs-backfill' | 'privileged' | 'rewrites-or-locks' | 'destructive'

export const SAFETY_CLASSES: readonly SafetyClass[] = ['safe', 'slows-writes', 'needs-backfill', 'privileged', 'rewrites-or-locks', 'destructive']

export const OPERATION_KINDS = [
  'preflight',
  'grant-privileges',
  'revoke-privileges',
  'create-vector-extension',
  'ensure-pgml',
  'install-runtime',
  'release-runtime',
  'release-vector-extension',
  'add-embedding-column',
  'drop-embedding-column',
  'create-embed-trigger',
  'create-queue-triggers',
  'drop-queue-triggers',
  'replace-queue-triggers',
  'drop-embed-trigger',
  'replace-embed-trigger',
  'register-embedding-column',
  'unregister-embedding-column',
  'update-embedding-source',
  'update-query-settings',
  'update-embedding-mode',
  'switch-embedding-column',
  'check-embedding-filled',
  'rename-table',
  'rename-embedding-column',
  'rename-vector-index',
  'create-vector-index',
  'drop-vector-index',
  'rebuild-vector-index',
  'add-full-text-column',
  'drop-full-text-column',
  'create-gin-index',
  'drop-gin-index',
  'create-feature-schema',
  'drop-feature-schema',
  'create-feature-view',
  'upgrade-feature-view',
  'guard-trigger-function',
  'drop-feature-view',
  'create-training-set',
  'drop-training-set',
  'set-prediction-log',
  'create-chunked-column',
  'drop-chunked-column',
  'check-chunks-filled',
  'switch-chunked-column',
  'prepare-live-chunks',
  'remove-prediction-log',
] as const

export type OperationKind = (typeof OPERATION_KINDS)[number]

export interface Operation {
  readonly kind: OperationKind
  /** One line for humans: what changes and on which object. */
  readonly summary: string
  /** False for steps PostgreSQL refuses inside a transaction block (`CONCURRENTLY`). */
  readonly transactional: boolean
  readonly safety: SafetyClass
  /** Whether the up and the down SQL call `pgml.*`, so the target must have pgml or pgml_compat to run them. */
  readonly requiresPgml: { readonly up: boolean; readonly down: boolean }
  /** Statements, each complete and terminated; comments may precede a statement. */
  readonly up: readonly string[]
  /** Statements that undo `up`, in the order they must run. */
  readonly down: readonly string[]
  /** What a reviewer should know: backfills, data a down cannot bring back, locks. */
  readonly notes: readonly string[]
  /** The index a vector-index step builds, drops or rebuilds (`schema.name`). */
  readonly index?: string
  /** The table a step's checks scan (`schema.table`): how long they take depends on its rows. */
  readonly table?: string
  /**
   * The config object the step comes from (`tables.documents.fullText`), written above its
   * statements in the migration file, so that `migrate` can say which one a failing statement came from.
   */
  readonly origin?: string
}

/** `pgml` needed in both directions, in neither, or as given. */
export const PGML = { both: { up: true, down: true }, none: { up: false, down: false } } as const

export function defineOperation(op: Operation): Operation {
  return Object.freeze({
    ...op, requiresPgml: Object.freeze({ ...op.requiresPgml }),
    up: Object.freeze([...op.up]), down: Object.freeze([...op.down]), notes: Object.freeze([...op.notes]),
  })
}
