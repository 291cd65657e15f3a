import type pg from 'pg'
import { PgmlKitError } from '../errors.js'
import { renderApplyChunks, renderLockSource, renderReadChunks, type ChunkStore } from '../sql/render-chunks.js'
import { chunkHash, planChunks, type ChunkPlan } from './plan.js'

/**
 * Brings one document's stored chunks to `texts` (its chunks as embedded, in order), embedding
 * only the texts that are new (issue 29, in progress). The vectors are computed outside any
 * transaction; the plan is then applied in one short transaction that first checks the stored
 * chunks are still those it was planned from (another writer may have synced the document
 * meanwhile: then it plans again, up to `attempts` times) and that the source row still exists
 * (locked against a delete or key change until the commit).
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
}

export async function syncDocument(client: pg.ClientBase, store: ChunkStore, key: readonly unknown[], texts: readonly string[], options: {
  readonly model: string
  readonly embed: (texts: readonly string[]) => Promise<readonly (ArrayLike<number>)[]>
  readonly attempts?: number
}): Promise<SyncResult> {
  if (key.length !== store.key.length) throw new RangeError(`${store.table} has ${store.key.length} key column(s), got ${key.length} value(s)`)
  const next = texts.map((text) => ({ text, hash: chunkHash(text) }))
  const attempts = options.attempts ?? 3
  for (let attempt = 1; ; attempt++) {
    const stored = (await client.query<{ seq: number; hash: string }>(renderReadChunks(store, false), [...key])).rows
    const plan = planChunks(stored, next)
    const vectors = plan.embed.length > 0 ? await options.embed(plan.embed.map((e) => e.text)) : []
    if (vectors.length !== plan.embed.length) throw new PgmlKitError('EMBED_FAILED', `the embedder returned ${vectors.length} vectors for ${plan.embed.length} chunks of ${store.table}`)
    await client.query('BEGIN')
    try {
      const present = (await client.query(renderLockSource(store), [...key])).rows.length > 0
      if (!present) {
        await client.query('ROLLBACK')
        return { embedded: 0, kept: 0, removed: 0, gone: true, attempts: attempt }
      }
      const now = (await client.query<{ seq: number; hash: string }>(renderReadChunks(store, true), [...key])).rows
      if (!sameChunks(stored, now)) {
        await client.query('ROLLBACK')
        if (attempt >= attempts) throw new PgmlKitError('CHUNKS_CHANGING', `the chunks of one ${store.table} row changed under ${attempt} syncs in a row`, { hint: 'another writer syncs the same row: run again' })
        continue
      }
      await apply(client, store, key, plan, vectors, options.model)
      await client.query('COMMIT')
      return { embedded: plan.embed.length, kept: plan.keep.length, removed: plan.remove.length, gone: false, attempts: attempt }
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw error
    }
  }
}

function sameChunks(a: readonly { seq: number; hash: string }[], b: readonly { seq: number; hash: string }[]): boolean {
  return a.length === b.length && a.every((x, i) => x.seq === b[i]!.seq && x.hash === b[i]!.hash)
}

async function apply(client: pg.ClientBase, store: ChunkStore, key: readonly unknown[], plan: ChunkPlan, vectors: readonly ArrayLike<number>[], model: string): Promise<void> {
  const sql = renderApplyChunks(store)
  const moved = plan.keep.filter((k) => k.from !== k.to)
  const vector = (v: ArrayLike<number>) => {
    const values = Array.from(v)
    if (values.some((x) => !Number.isFinite(x))) throw new PgmlKitError('EMBED_FAILED', `the embedder returned a vector with a value that is not a finite number for ${store.table}`)
    return `[${values.join(',')}]`
  }
  const params = (...rest: unknown[]) => [...key, ...rest]
  if (plan.remove.length > 0) await client.query(sql.remove, params(plan.remove))
  if (moved.length > 0) {
    await client.query(sql.hide, params(moved.map((m) => m.from)))
    await client.query(sql.move, params(moved.map((m) => m.from), moved.map((m) => m.to)))
  }
  if (plan.embed.length > 0) {
    await client.query(sql.insert, params(plan.embed.map((e) => e.seq), plan.embed.map((e) => e.text), plan.embed.map((e) => e.hash), vectors.map(vector), model))
  }
}
