import { TargetError } from '../errors.js'
import { embeddedPaths, openEmbedded, publishedUrl, type EmbeddedServer } from './embedded.js'
import { currentHolder } from './embedded/owner-lock.js'

/**
 * Keeps the embedded database served until stopped, whoever owns it: what `pgml-kit dev` does.
 *
 * A process that finds the database owned by another connects to that owner; when the owner exits
 * (stopped, or killed), the database must not go unserved because nothing else happens to need it
 * then: this process takes it over, on the port the owner served on, so the URL it handed out keeps
 * working. If another process (a worker) wins the takeover, this one follows the new owner.
 */
export interface ServedState {
  /** The URL with the password: hand it to clients, print `redactUrl(url)`. */
  readonly url: string
  /** This process serves it. */
  readonly owner: boolean
  /** The process that serves it. */
  readonly ownerPid: number
}

export interface ServedChange extends ServedState {
  /** Who served it before, and why that ended. */
  readonly previous: { readonly pid: number; readonly ended: 'exited' | 'failed'; readonly error?: Error }
  /** The URL is the one handed out before (the new owner listens on the same port). */
  readonly sameUrl: boolean
}

export interface KeepServedOptions {
  /** The project directory (where `.pgml-kit/` is). */
  readonly cwd: string
  /** The port to listen on if this process becomes the first owner (0: any free port). */
  readonly port: number
  readonly signal: AbortSignal
  readonly onServed: (state: ServedState) => void
  readonly onChange: (change: ServedChange) => void
  /** A takeover that has to wait (an owner still draining, or not answering): said once, and tried until it succeeds. */
  readonly onWaiting?: (error: TargetError) => void
}

/** How often a client looks whether its owner is still there (a file read). */
const WATCH_MS = 250

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}

const portOf = (url: string) => Number(new URL(url).port)

/** Serves (or follows) the embedded database of `cwd` until `signal` aborts; then closes what it opened. */
export async function keepEmbeddedServed(options: KeepServedOptions): Promise<void> {
  const { lockDir } = embeddedPaths(options.cwd)
  let server = await openEmbedded(options.cwd, { port: options.port })
  let failure: Error | undefined
  const watchFailure = (s: EmbeddedServer) => s.onFailure((error) => { if (s === server) failure = error })
  watchFailure(server)
  options.onServed({ url: server.url, owner: server.owner, ownerPid: server.ownerPid })
  try {
    while (!options.signal.aborted) {
      await pause(WATCH_MS, options.signal)
      if (options.signal.aborted) break
      let ended: 'exited' | 'failed'
      if (server.owner) {
        if (failure === undefined) continue
        ended = 'failed'
      } else {
        // Still served: the same process holds the lock and still advertises the URL (it withdraws it when it starts closing).
        const holder = await currentHolder(lockDir)
        if (holder !== null && holder.pid === server.ownerPid && publishedUrl(holder) === server.url) continue
        ended = 'exited'
      }
      const before = server
      const error = failure
      failure = undefined
      await before.close().catch(() => undefined)
      const next = await reopen(options, portOf(before.url))
      if (next === undefined) return
      server = next
      watchFailure(server)
      options.onChange({
        url: server.url, owner: server.owner, ownerPid: server.ownerPid, sameUrl: server.url === before.url,
        previous: { pid: before.ownerPid, ended, ...(error ? { error } : {}) },
      })
    }
  } finally {
    await server.close()
  }
}

/** Takes the database over on `port` (any port if it is taken), or connects to whoever did; undefined if stopped meanwhile. */
async function reopen(options: KeepServedOptions, port: number): Promise<EmbeddedServer | undefined> {
  for (let attempt = 0; ; attempt++) {
    if (options.signal.aborted) return undefined
    try {
      // Short waits, so Ctrl-C is heard while an old owner drains its clients.
      return await openEmbedded(options.cwd, { preferredPort: port, waitMs: 2_000 })
    } catch (error) {
      if (!(error instanceof TargetError && error.code === 'EMBEDDED_BUSY')) throw error
      if (attempt === 0) options.onWaiting?.(error)
    }
  }
}
