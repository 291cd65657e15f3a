import { randomUUID } from 'node:crypto'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { TargetError } from '../errors.js'
import { tryLock, type HeldLock, type LockHolder } from './embedded/owner-lock.js'
import { readOrCreatePassword } from './embedded/password-file.js'
import { startPgliteHost } from './embedded/pglite-host.js'
import { PRIVATE_FILE_MODE, ensurePrivateDirectory } from './embedded/private-directory.js'
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
export function embeddedPaths(projectDir: string): {
  readonly base: string; readonly dataDir: string; readonly passwordFile: string; readonly lockDir: string; readonly portFile: string
} {
  const base = join(projectDir, EMBEDDED_DIR)
  // portFile: the port the last owner served on (no secret in it), which the next owner tries first.
  return { base, dataDir: join(base, 'data'), passwordFile: join(base, 'password'), lockDir: join(base, 'owner'), portFile: join(base, 'port') }
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
  /** The process that serves it: this one when `owner`. */
  readonly ownerPid: number
  readonly dataDir: string
  /** For an owner: called once if its database stops unexpectedly (the thread died, or the lock was lost). */
  onFailure(listener: (error: Error) => void): void
  close(): Promise<void>
}

export interface OpenEmbeddedOptions {
  /** Port for the owner to listen on (0: any free port); taken by something else, opening fails (PORT_IN_USE). */
  readonly port?: number
  /**
   * Without `port`: the port to try first, any free one if it is taken. Default: the port the last
   * owner served on, so the URL an application or psql was given keeps working across takeovers.
   */
  readonly preferredPort?: number
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

/** The URL the lock's holder publishes (undefined while it starts or drains). */
export function publishedUrl(holder: LockHolder | null): string | undefined {
  const url = holder?.details.url
  return typeof url === 'string' ? url : undefined
}

export async function openEmbedded(projectDir: string, options: OpenEmbeddedOptions = {}): Promise<EmbeddedServer> {
  const paths = embeddedPaths(projectDir)
  const { base, dataDir, lockDir } = paths
  await ensureEmbeddedDir(projectDir)
  const deadline = Date.now() + (options.waitMs ?? 30_000)

  for (;;) {
    const attempt = await tryLock(lockDir)
    if (!('held' in attempt)) {
      const port = options.port !== undefined ? { exact: options.port } : { preferred: options.preferredPort ?? (await readLastPort(paths.portFile)) }
      return startOwner(paths, attempt, port)
    }
    // Somebody else owns it: use their server once it has published its address.
    const url = publishedUrl(attempt.held)
    if (url && attempt.held && (await canConnect(url))) {
      return { url, owner: false, ownerPid: attempt.held.pid, dataDir, onFailure: () => undefined, close: async () => undefined }
    }
    if (Date.now() > deadline) {
      const holder = attempt.held
      throw new TargetError('EMBEDDED_BUSY',
        `the embedded database in ${base} is owned by another process that does not answer${holder ? ` (pid ${holder.pid} on ${holder.host})` : ''}`,
        { where: base, hint: 'wait for the other pgml-kit command to finish, or stop it; the database is taken over as soon as its owner has exited' })
    }
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 100))
  }
}

/** The port the last owner served on, if it recorded a valid one. */
async function readLastPort(portFile: string): Promise<number | undefined> {
  const text = await readFile(portFile, 'utf8').catch(() => '')
  const port = Number(text.trim())
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined
}

async function recordPort(portFile: string, port: number): Promise<void> {
  const temporary = `${portFile}.${randomUUID()}.tmp`
  try {
    await writeFile(temporary, `${port}\n`, { flag: 'wx', mode: PRIVATE_FILE_MODE })
    await rename(temporary, portFile)
  } catch {
    // Only a preference for the next owner: the database is served all the same.
    await rm(temporary, { force: true }).catch(() => undefined)
  }
}

const isAddressInUse = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE'

type PortChoice = { readonly exact: number } | { readonly preferred: number | undefined }

async function startOwner(paths: ReturnType<typeof embeddedPaths>, lock: HeldLock, port: PortChoice): Promise<EmbeddedServer> {
  const { dataDir, passwordFile } = paths
  let host
  let server: SessionServer | undefined
  let url: string
  try {
    const password = await readOrCreatePassword(passwordFile)
    // PGlite makes what it creates world-readable; the data directory, at least, it need not.
    await ensurePrivateDirectory(dataDir)
    host = await startPgliteHost(dataDir)
    const db = host
    const listen = async (p: number) => {
      server = new SessionServer(db, { host: '127.0.0.1', port: p, password, maxConnections: 100 })
      return server.listen()
    }
    let address
    if ('exact' in port) address = await listen(port.exact)
    else {
      // The previous owner's port keeps the URL clients were given; taken by something else meanwhile, any port does.
      try {
        address = await listen(port.preferred ?? 0)
      } catch (error) {
        if (port.preferred === undefined || !isAddressInUse(error)) throw error
        address = await listen(0)
      }
    }
    url = urlFor(address.host, address.port, password)
    await lock.publish({ url })
    await recordPort(paths.portFile, address.port)
  } catch (error) {
    await server?.stop().catch(() => undefined)
    await host?.close().catch(() => undefined)
    await lock.release()
    if (error instanceof TargetError) throw error
    const inUse = isAddressInUse(error)
    throw new TargetError(inUse ? 'PORT_IN_USE' : 'EMBEDDED_START_FAILED',
      inUse ? `port ${'exact' in port ? port.exact : port.preferred} on 127.0.0.1 is already in use` : `could not start the embedded database in ${dataDir}: ${(error as Error).message}`,
      { where: dataDir, cause: error, hint: inUse ? 'choose another --port' : undefined })
  }
  const db = host
  const sessions: SessionServer = server!
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
    ownerPid: process.pid,
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
