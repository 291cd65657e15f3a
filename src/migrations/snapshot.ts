import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { MigrationError } from '../errors.js'
import { EMPTY_STATE, deepFreeze, type DesiredState } from '../model/ir.js'
import { deriveIdentifier } from '../sql/quote.js'

/**
 * The snapshot records the desired state as of the last `generate`, and which files that
 * generate wrote (with a hash of each), beside the migrations. The next `generate` diffs against
 * it; `generate --check` uses it to tell whether the config and the migrations agree. Its name
 * starts with a dot, which node-pg-migrate skips when it loads migrations.
 */
export const SNAPSHOT_FILE = '.pgml-kit-snapshot.json'

export interface SnapshotFileEntry {
  readonly name: string
  readonly sha256: string
}

export interface Snapshot {
  readonly formatVersion: 1
  readonly state: DesiredState
  readonly files: readonly SnapshotFileEntry[]
  /** Indexes the config declares that were left out of the migrations until their column has data (`schema.name` and why). */
  readonly deferred?: readonly { readonly index: string; readonly reason: string }[]
}

export const EMPTY_SNAPSHOT: Snapshot = deepFreeze({ formatVersion: 1, state: EMPTY_STATE, files: [] })

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

export function snapshotPath(migrationsDir: string): string {
  return join(migrationsDir, SNAPSHOT_FILE)
}

export async function readSnapshot(migrationsDir: string): Promise<Snapshot> {
  const path = snapshotPath(migrationsDir)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_SNAPSHOT
    throw error
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new MigrationError('SNAPSHOT_UNREADABLE', `${path} is not valid JSON`, { where: path, cause: error, hint: 'restore it from version control' })
  }
  const snapshot = parsed as Partial<Snapshot>
  if (snapshot.formatVersion !== 1 || !snapshot.state || !Array.isArray(snapshot.files)) {
    throw new MigrationError('SNAPSHOT_UNREADABLE', `${path} is not a pgml-kit snapshot of a format this version reads`, { where: path, hint: 'restore it from version control' })
  }
  return deepFreeze(upgradeSnapshot(snapshot as Snapshot))
}

/** Fills fields that snapshots written by earlier versions do not have, with the values they implied. */
function upgradeSnapshot(snapshot: Snapshot): Snapshot {
  const columns = snapshot.state.embeddingColumns.map((c) => ({
    ...c,
    keyColumns: c.keyColumns ?? ['id'],
    model: { ...c.model, pooling: c.model.pooling ?? null },
    // pgml-kit 0.1 searched by the first index in name order, and named trigger functions by joining the names.
    distance: c.distance ?? snapshot.state.indexes.find((i) => i.schema === c.schema && i.table === c.table && i.column === c.column)?.distance ?? 'cosine',
    triggerFunction: c.triggerFunction !== undefined ? c.triggerFunction
      : c.mode === 'trigger' || c.mode === 'queue' ? deriveIdentifier([c.mode === 'trigger' ? 'embed' : 'enqueue', c.schema, c.table, c.column], '__') : null,
  }))
  // Indexes written before 'auto', build settings and query defaults existed had none of them.
  const indexes = snapshot.state.indexes.map((i) => ({ ...i, auto: i.auto ?? [], build: i.build ?? null, search: i.search ?? { efSearch: null, probes: null } }))
  return { ...snapshot, state: { ...snapshot.state, embeddingColumns: columns, indexes, fullText: snapshot.state.fullText ?? [], roles: snapshot.state.roles ?? { app: [], worker: [] }, featureViews: snapshot.state.featureViews ?? [], trainingSets: snapshot.state.trainingSets ?? [] } }
}

/**
 * The desired state with the names of objects that already exist taken from the previous state:
 * a column that keeps its mode keeps the trigger function it was created with.
 */
export function keepExistingNames(previous: DesiredState, next: DesiredState): DesiredState {
  const key = (schema: string, table: string, column: string) => `${schema}\0${table}\0${column}`
  const before = new Map(previous.embeddingColumns.map((c) => [key(c.schema, c.table, c.column), c]))
  return deepFreeze({
    ...next,
    embeddingColumns: next.embeddingColumns.map((c) => {
      const here = key(c.schema, c.table, c.column)
      // A column being renamed gets the trigger function name of its new name (the rename renames the
      // function); one renamed before, recorded under its new name, keeps the name it has.
      const old = before.get(here)
      return old && old.mode === c.mode ? { ...c, triggerFunction: old.triggerFunction } : c
    }),
  })
}

/** Serialises with sorted structure already guaranteed by the IR, so equal states give equal bytes. */
export function renderSnapshot(snapshot: Snapshot): string {
  return `${JSON.stringify(snapshot, null, 2)}\n`
}

export async function writeSnapshot(migrationsDir: string, snapshot: Snapshot): Promise<void> {
  const path = snapshotPath(migrationsDir)
  await mkdir(dirname(path), { recursive: true })
  const temporary = `${path}.tmp-${process.pid}`
  await writeFile(temporary, renderSnapshot(snapshot))
  await rename(temporary, path)
}
