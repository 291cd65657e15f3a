import { isConnectionLost } from '../db/connect.js'

/**
 * How the worker and backfill treat database errors, so that no row, deadlock or disconnect can
 * stop the queue:
 * - transient (deadlock, serialisation failure, lock timeout): the same statement again, after a
 *   jittered pause;
 * - connection lost: up to the caller (reconnect, release leases, go on);
 * - anything else on a write is about the data of some row (a constraint, a user trigger): the
 *   batch is split until the rows at fault are alone, and only they fail.
 */
const TRANSIENT = new Set(['40001', '40P01', '55P03'])

export function isTransient(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code
  return code !== undefined && TRANSIENT.has(code)
}

export function errorText(error: unknown): string {
  const e = error as { message?: string; code?: string; detail?: string } | undefined
  const message = e?.message ?? String(error)
  const code = e?.code && /^[0-9A-Z]{5}$/.test(e.code) ? ` [${e.code}]` : ''
  return `${message}${code}${e?.detail ? `: ${e.detail}` : ''}`.slice(0, 2000)
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** Full jitter: a random pause up to base × 2^attempt, capped. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.random() * Math.min(maxMs, baseMs * 2 ** attempt)
}

/** Runs `fn`, again after deadlocks, serialisation failures and lock timeouts (up to `attempts` times). */
export async function retryTransient<T>(fn: () => Promise<T>, attempts = 6): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn()
    } catch (error) {
      if (!isTransient(error) || attempt + 1 >= attempts) throw error
      await sleep(backoffMs(attempt, 25, 2_000))
    }
  }
}

/**
 * The column a write names is not what the catalog said when the batch was read: a migration
 * renamed or changed it meanwhile (the switch of a staged model change). Not about any row: the
 * whole batch stops, and the caller reads the catalog again.
 */
export class CatalogChanged extends Error {
  constructor(cause?: unknown) {
    super('the column\'s catalog row changed while the batch was embedded (a migration switched or changed it)', cause === undefined ? undefined : { cause })
  }
}

/** Undefined column or table (42703, 42P01): with a column taken from the catalog, it was renamed or dropped meanwhile. */
export function isRenamedAway(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code
  return code === '42703' || code === '42P01'
}

export interface IsolatedResult<T, R> {
  /** What each successful write returned. */
  readonly results: readonly R[]
  /** Items refused on their own, with the error. */
  readonly failed: readonly { readonly item: T; readonly error: string }[]
}

/**
 * Writes `items` with one call; if the database refuses the call for a reason other than a lost
 * connection, splits the items in halves and tries again, down to single items, so the items at
 * fault fail alone and every other one is written. Costs O(k log n) calls for k bad items.
 */
export async function writeIsolating<T, R>(items: readonly T[], write: (items: readonly T[]) => Promise<R>): Promise<IsolatedResult<T, R>> {
  if (items.length === 0) return { results: [], failed: [] }
  try {
    return { results: [await retryTransient(() => write(items))], failed: [] }
  } catch (error) {
    if (isConnectionLost(error) || error instanceof CatalogChanged) throw error
    const [only] = items
    if (items.length === 1 && only !== undefined) return { results: [], failed: [{ item: only, error: errorText(error) }] }
    const middle = Math.ceil(items.length / 2)
    const left = await writeIsolating(items.slice(0, middle), write)
    const right = await writeIsolating(items.slice(middle), write)
    return { results: [...left.results, ...right.results], failed: [...left.failed, ...right.failed] }
  }
}
