import type pg from 'pg'
import { PgmlKitError } from '../errors.js'
import { TEMPORARY_SEQ, renderApplyChunks, renderSourceExists, renderReadChunks, type ChunkStore } from '../sql/render-chunks.js'
import { chunkHash, planChunks, type ChunkPlan } from './plan.js'
import { checkChunkSettings, type ChunkSettingsGuard } from './served.js'

/**
 * Brings one document's stored chunks to `texts` (its chunks as embedded, in order), embedding
 * only the texts that are new . The vectors are computed outside any
 * transaction; the plan is then applied in one short transaction that first checks the stored
 * chunks are still those it was planned from (another writer may have synced the document
 * meanwhile: then it plans again, up to `attempts` times) and that the source row still exists
 * (the chunks' foreign key checks it again as they are written).
 */
export interface SyncResult {
  /** How many texts were embedded. */
  readonly embedded: number
  readonly kept: number
  readonly removed: number
  /** The source row is gone: nothing was written. */
  readonly gone: boolean
  /** Plans made (more than one when a concurrent sync changed the chunks in between). */
  readonly attempts: number
  /** The row changed since its text was read (`source`): nothing was written; a newer job syncs it. */
  readonly changed?: boolean
  /** The chunk table's settings changed since they were read (a staged change's switch, `guard`): nothing was written. */
  readonly settingsChanged?: boolean
}

/** One chunk of a document: its text (stored, shown to readers) and what is embedded for it (the text as the column's template formats it). */
export interface DocumentChunk {
  readonly chunk: string
  readonly embedded: string
}

export interface SyncOptions {
  readonly model: string
  readonly embed: (texts: readonly string[]) => Promise<readonly (ArrayLike<number>)[]>
  readonly attempts?: number
  /**
   * Runs in the sync's transaction after the chunks are written and before the commit (the worker
   * completes the document's job there, so the chunks and the job's end commit together).
   */
  readonly beforeCommit?: (client: pg.ClientBase) => Promise<void>
  /**
   * What the chunks were made from: `sql` ($1 the key) reads the row's fingerprint now, `fingerprint`
   * is the one read with its text. When they differ the sync writes nothing (`changed`).
   */
  readonly source?: { readonly sql: string; readonly fingerprint: string }
  /** The chunk table's settings, checked first in the transaction (served.ts): a switch since they were read writes nothing (`settingsChanged`). */
  readonly guard?: ChunkSettingsGuard
}

/**
 * A row's key: its key columns' values, or the jsonb text of them as the database wrote it (a
 * queue job's row_key: keys such as a bigint beyond 2^53 stay exact).
 */
export type RowKey = Readonly<Record<string, unknown>> | { readonly json: string }

/** The key as the one jsonb parameter the chunk statements take. */
function keyParam(store: ChunkStore, key: RowKey): string {
  if ('json' in key && typeof key.json === 'string' && Object.keys(key).length === 1) return key.json
  const values = key as Readonly<Record<string, unknown>>
  for (const k of store.keyColumns) if (!Object.hasOwn(values, k) || values[k] === null || values[k] === undefined) throw new RangeError(`the key of a ${store.table} row needs a value for ${k}`)
  return JSON.stringify(Object.fromEntries(store.keyColumns.map((k) => [k, values[k]])))
}

const nextOf = (chunks: readonly DocumentChunk[]) => chunks.map((c) => ({ text: c.embedded, hash: chunkHash(c.embedded), chunk: c.chunk }))

export async function syncDocument(client: pg.ClientBase, store: ChunkStore, key: RowKey, chunks: readonly DocumentChunk[], options: SyncOptions): Promise<SyncResult> {
  const k = keyParam(store, key)
  const next = nextOf(chunks)
  const attempts = options.attempts ?? 3
  for (let attempt = 1; ; attempt++) {
    const stored = (await client.query<{ seq: number; hash: string }>(renderReadChunks(store, false), [k])).rows
    const plan = planChunks(stored, next)
    const vectors = plan.embed.length > 0 ? await options.embed(plan.embed.map((e) => e.text)) : []
    if (vectors.length !== plan.embed.length) throw new PgmlKitError('EMBED_FAILED', `the embedder returned ${vectors.length} vectors for ${plan.embed.length} chunks of ${store.table}`)
    await client.query('BEGIN')
    try {
      // The row as it is now: gone, or changed since its text was split (another sync, of a newer
      // change, may have written its chunks already: this one must not overwrite them).
      const source = options.source
      const found = (await client.query<{ fingerprint?: string }>(source ? source.sql : renderSourceExists(store), [k])).rows
      if (found.length === 0) {
        await client.query('ROLLBACK')
        return { embedded: 0, kept: 0, removed: 0, gone: true, attempts: attempt }
      }
      if (source && found[0]!.fingerprint !== source.fingerprint) {
        await client.query('ROLLBACK')
        return { embedded: 0, kept: 0, removed: 0, gone: false, changed: true, attempts: attempt }
      }
      // The chunk table's settings, after the source table is read: every transaction that writes
      // both (the application's, whose cascades reach the chunk table; this one) locks the source
      // table first, as a switch does, so none of them waits for another in the other order.
      if (options.guard && !(await checkChunkSettings(client, options.guard))) {
        await client.query('ROLLBACK')
        return { embedded: 0, kept: 0, removed: 0, gone: false, changed: true, settingsChanged: true, attempts: attempt }
      }
      // A placeholder first (no text, no vector, below every position): its foreign key check locks
      // the row (KEY SHARE) before any chunk row is locked, so a DELETE or key change of the row by
      // the application — which locks the row, then its chunks — waits for this transaction instead
      // of deadlocking with it. (Only a sync that inserts checks the foreign key, and so waits.)
      const sql = renderApplyChunks(store)
      const inserts = plan.embed.length > 0
      try {
        if (inserts) await client.query(sql.lock, [k])
      } catch (error) {
        // The row went (or took another key) after it was found: its chunks went or moved with it.
        if ((error as { code?: unknown }).code !== '23503') throw error
        await client.query('ROLLBACK')
        return { embedded: 0, kept: 0, removed: 0, gone: true, attempts: attempt }
      }
      const now = (await client.query<{ seq: number; hash: string }>(renderReadChunks(store, true), [k])).rows.filter((r) => r.seq >= 0)
      if (!sameChunks(stored, now)) {
        await client.query('ROLLBACK')
        if (attempt >= attempts) throw new PgmlKitError('CHUNKS_CHANGING', `the chunks of one ${store.table} row changed under ${attempt} syncs in a row`, { hint: 'another writer syncs the same row: run again' })
        continue
      }
      await apply(client, store, k, plan, next, vectors, options.model)
      if (inserts) await client.query(sql.unlock, [k])
      if (options.beforeCommit) await options.beforeCommit(client)
      await client.query('COMMIT')
      return { embedded: plan.embed.length, kept: plan.keep.length, removed: plan.remove.length, gone: false, attempts: attempt }
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw error
    }
  }
}

/**
 * The same inside the caller's transaction (the embedding writer's): the caller holds the source
 * row locked; the stored chunks are locked, planned against and brought to `chunks`, embedding only
 * what is new.
 */
export async function syncDocumentHere(client: pg.ClientBase, store: ChunkStore, key: RowKey, chunks: readonly DocumentChunk[], options: Omit<SyncOptions, 'attempts' | 'beforeCommit' | 'guard' | 'source'>): Promise<SyncResult> {
  const k = keyParam(store, key)
  const next = nextOf(chunks)
  const stored = (await client.query<{ seq: number; hash: string }>(renderReadChunks(store, true), [k])).rows
  const plan = planChunks(stored, next)
  const vectors = plan.embed.length > 0 ? await options.embed(plan.embed.map((e) => e.text)) : []
  if (vectors.length !== plan.embed.length) throw new PgmlKitError('EMBED_FAILED', `the embedder returned ${vectors.length} vectors for ${plan.embed.length} chunks of ${store.table}`)
  await apply(client, store, k, plan, next, vectors, options.model)
  return { embedded: plan.embed.length, kept: plan.keep.length, removed: plan.remove.length, gone: false, attempts: 1 }
}

function sameChunks(a: readonly { seq: number; hash: string }[], b: readonly { seq: number; hash: string }[]): boolean {
  return a.length === b.length && a.every((x, i) => x.seq === b[i]!.seq && x.hash === b[i]!.hash)
}

/** The plan applied: chunks that go, kept chunks moved to their positions, new ones inserted at theirs. */
async function apply(client: pg.ClientBase, store: ChunkStore, key: string, plan: ChunkPlan, next: readonly { chunk: string }[], vectors: readonly ArrayLike<number>[], model: string): Promise<void> {
  const sql = renderApplyChunks(store)
  const moved = plan.keep.filter((k) => k.from !== k.to)
  const vector = (v: ArrayLike<number>) => {
    const values = Array.from(v)
    if (values.some((x) => !Number.isFinite(x))) throw new PgmlKitError('EMBED_FAILED', `the embedder returned a vector with a value that is not a finite number for ${store.table}`)
    return `[${values.join(',')}]`
  }
  if (plan.remove.length > 0) await client.query(sql.remove, [key, plan.remove])
  if (moved.length > 0) {
    await client.query(sql.hide, [key, moved.map((m) => m.from)])
    await client.query(sql.move, [key, moved.map((m) => m.from), moved.map((m) => m.to)])
  }
  if (plan.embed.length > 0) {
    await client.query(sql.insert, [key, plan.embed.map((e) => e.seq), plan.embed.map((e) => next[e.seq]!.chunk), plan.embed.map((e) => e.hash), vectors.map(vector), model])
  }
}
