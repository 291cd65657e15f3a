import { join } from 'node:path'
import pg from 'pg'
import { TargetError } from '../errors.js'
import { tryLock, type HeldLock, type LockHolder } from './embedded/owner-lock.js'
import { readOrCreatePassword } from './embedded/password-file.js'
import { startPgliteHost } from './embedded/pglite-host.js'
import { ensurePrivateDirectory } from './embedded/private-directory.js'
import { SessionServer } from './embedded/session-server.js'

/**
 * The embedded default: PostgreSQL (PGlite, compiled to WASM) with pgvector, persisted under
 * `.pgml-kit/` and served on a loopback port, so `pg`, node-pg-migrate and Kysely use the same
 * code path as against a server.
 *
 * PGlite is single-process: one pgml-kit process owns the data directory at a time. The owner
 * holds the lock in `.pgml-kit/owner/` and publishes its address there; every other process connects to
 * that address instead of opening the directory. When the owner exits — or is killed — the next
 * process that needs the database takes ownership (the data is on disk; PostgreSQL recovers it).
 *
 * Only the user who runs pgml-kit can use it: `.pgml-kit/` is 0700 (private-directory.ts), and the
 * server asks every connection for the password in `.pgml-kit/password` (0600), which the URL it
 * hands out carries.
 */
export const EMBEDDED_DIR = '.pgml-kit'
/** How long a closing owner waits for its clients to disconnect. */
const DRAIN_MS = 10_000

/** Where the embedded database keeps its files, under a project directory. */
export function embeddedPaths(projectDir: string): { readonly base: string; readonly dataDir: string; readonly passwordFile: string } {
  const base = join(projectDir, EMBEDDED_DIR)
  return { base, dataDir: join(base, 'data'), passwordFile: join(base, 'password') }
}

/** Creates `.pgml-kit/` private to the current user, or checks and tightens an existing one; returns its path. */
export async function ensureEmbeddedDir(projectDir: string): Promise<string> {
  const { base } = embeddedPaths(projectDir)
  await ensurePrivateDirectory(base)
  return base
}

export interface EmbeddedServer {
  /** The server's address with its password: hand it to clients, never print it (print `redactUrl(url)`). */
  readonly url: string
  /** True when this process opened the data directory (and will close it). */
  readonly owner: boolean
  readonly dataDir: string
  /** For an owner: called once if its database stops unexpectedly (the thread died, or the lock was lost). */
  onFailure(listener: (error: Error) => void): void
  close(): Promise<void>
}

export interface OpenEmbeddedOptions {
  /** Port for the owner to listen on (0: any free port). */
  readonly port?: number
  /** How long to wait for an owner that is starting (or draining) before giving up. */
  readonly waitMs?: number
}

function urlFor(host: string, port: number, password: string): string {
  return `postgres://postgres:${password}@${host}:${port}/postgres`
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 })
  client.on('error', () => undefined)
  try {
    await client.connect()
    await client.query('SELECT 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => undefined)
  }
}

function publishedUrl(holder: LockHolder | null): string | undefined {
  const url = holder?.details.url
  return typeof url === 'string' ? url : undefined
}

export async function openEmbedded(projectDir: string, options: OpenEmbeddedOptions = {}): Promise<EmbeddedServer> {
  const { base, dataDir, passwordFile } = embeddedPaths(projectDir)
  const lockPath = join(base, 'owner')
  await ensureEmbeddedDir(projectDir)
  const deadline = Date.now() + (options.waitMs ?? 30_000)

  for (;;) {
    const attempt = await tryLock(lockPath)
    if (!('held' in attempt)) return startOwner(dataDir, passwordFile, attempt, options.port ?? 0)
    // Somebody else owns it: use their server once it has published its address.
    const url = publishedUrl(attempt.held)
    if (url && (await canConnect(url))) return { url, owner: false, dataDir, onFailure: () => undefined, close: async () => undefined }
    if (Date.now() > deadline) {
      const holder = attempt.held
      throw new TargetError('EMBEDDED_BUSY',
        `the embedded database in ${base} is owned by another process that does not answer${holder ? ` (pid ${holder.pid} on ${holder.host})` : ''}`,
        { where: base, hint: 'wait for the other pgml-kit command to finish, or stop it; the database is taken over as soon as its owner has exited' })
    }
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 100))
  }
}

async function startOwner(dataDir: string, passwordFile: string, lock: HeldLock, port: number): Promise<EmbeddedServer> {
  let host
  let server: SessionServer | undefined
  let url: string
  try {
    const password = await readOrCreatePassword(passwordFile)
    // PGlite makes what it creates world-readable; the data directory, at least, it need not.
    await ensurePrivateDirectory(dataDir)
    host = await startPgliteHost(dataDir)
    server = new SessionServer(host, { host: '127.0.0.1', port, password, maxConnections: 100 })
    const address = await server.listen()
    url = urlFor(address.host, address.port, password)
    await lock.publish({ url })
  } catch (error) {
    await server?.stop().catch(() => undefined)
    await host?.close().catch(() => undefined)
    await lock.release()
    if (error instanceof TargetError) throw error
    const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE'
    throw new TargetError(inUse ? 'PORT_IN_USE' : 'EMBEDDED_START_FAILED',
      inUse ? `port ${port} on 127.0.0.1 is already in use` : `could not start the embedded database in ${dataDir}: ${(error as Error).message}`,
      { where: dataDir, cause: error, hint: inUse ? 'choose another --port' : undefined })
  }
  const db = host
  const sessions = server
  const failureListeners: ((error: Error) => void)[] = []
  let failure: Error | undefined
  let closed = false
  const fail = (error: Error) => {
    if (closed || failure) return
    failure = error
    void sessions.stop()
    for (const listener of failureListeners) listener(error)
  }
  db.onExit(fail)
  lock.onLost(() => {
    // Another process believes it owns the directory: stop touching it at once.
    fail(new TargetError('EMBEDDED_LOCK_LOST', `another process took over the embedded database in ${dataDir}`, { where: dataDir }))
    void db.close()
  })
  return {
    url,
    owner: true,
    dataDir,
    onFailure(listener) {
      if (failure) listener(failure)
      else failureListeners.push(listener)
    },
    async close() {
      if (closed) return
      closed = true
      // Stop advertising first, then let connected clients (another command, psql) finish.
      await lock.publish({ url: null }).catch(() => undefined)
      const drainUntil = Date.now() + DRAIN_MS
      while (sessions.connectionCount > 0 && Date.now() < drainUntil) await new Promise((resolve) => setTimeout(resolve, 50))
      await sessions.stop()
      await db.close()
      await lock.release()
    },
  }
}
