import { join } from 'node:path'
import { MigrationError } from '../errors.js'
import { assertDatabaseUrl, connectClient, isConnectionLost, redactUrl, type Connector } from './connect.js'
import { ensureEmbeddedDir, openEmbedded, type EmbeddedServer } from './embedded.js'
import { lock } from './embedded/owner-lock.js'

export { redactUrl } from './connect.js'

export interface TargetOptions {
  /** A PostgreSQL URL; when undefined, `DATABASE_URL`; when that is unset (or this is ''), the embedded database. */
  readonly databaseUrl?: string | undefined
  /** Project directory (where `.pgml-kit/` lives for the embedded database). */
  readonly cwd?: string
  /** Port for the embedded server when this process becomes its owner. */
  readonly port?: number
}

/**
 * Where pgml-kit runs its SQL: a server, or the embedded database. `connect()` hands out clients;
 * on the embedded database it survives the owner process going away (it connects to the next
 * owner, or becomes the owner itself).
 */
export interface Target extends Connector {
  readonly kind: 'server' | 'embedded'
  /**
   * A URL other tools can use now (the embedded owner's address can change after a takeover). It
   * carries the password: print `description` or `redactUrl(url)`, never the URL itself.
   */
  readonly url: string
  close(): Promise<void>
}

/** How long `connect()` keeps trying to reach (or become) a new embedded owner after the old one left. */
const TAKEOVER_WAIT_MS = 30_000

function targetUrl(options: TargetOptions): string | undefined {
  return options.databaseUrl ?? process.env.DATABASE_URL
}

export async function openTarget(options: TargetOptions = {}): Promise<Target> {
  const url = targetUrl(options)
  if (url) {
    assertDatabaseUrl(url)
    return { kind: 'server', url, description: redactUrl(url), connect: (name) => connectClient(url, name), close: async () => undefined }
  }
  const cwd = options.cwd ?? process.cwd()
  const open = () => openEmbedded(cwd, options.port === undefined ? {} : { port: options.port })
  let server: EmbeddedServer = await open()
  const describe = (s: EmbeddedServer) => `embedded PGlite + pgvector in ${s.dataDir}${s.owner ? '' : ' (served by another pgml-kit process)'}`
  return {
    kind: 'embedded',
    get url() {
      return server.url
    },
    get description() {
      return describe(server)
    },
    async connect(name) {
      const deadline = Date.now() + TAKEOVER_WAIT_MS
      for (;;) {
        try {
          return await connectClient(server.url, name)
        } catch (error) {
          // The owner went away: find the next one, or take the data directory over.
          if (server.owner || !isConnectionLost((error as { cause?: unknown }).cause) || Date.now() > deadline) throw error
          server = await open()
        }
      }
    },
    close: () => server.close(),
  }
}

/** Whether `openTarget(options)` would use the embedded database. */
export function isEmbedded(options: TargetOptions): boolean {
  return !targetUrl(options)
}

/**
 * Serialises migration runs. On a server node-pg-migrate's advisory lock does it (this is a
 * no-op). On the embedded database all clients share one backend session, so advisory locks are
 * re-entrant between them; a lock beside the data does it instead. It is taken before the
 * database is opened, so a waiting run opens it afresh (possibly as the new owner) once the
 * previous run has finished and closed it.
 */
export async function lockMigrations(options: TargetOptions, waitMs: number): Promise<() => Promise<void>> {
  if (!isEmbedded(options)) return async () => undefined
  const base = await ensureEmbeddedDir(options.cwd ?? process.cwd())
  const held = await lock(join(base, 'migrate'), waitMs, (holder) => new MigrationError('MIGRATION_LOCKED',
    `another pgml-kit migrate${holder ? ` (pid ${holder.pid})` : ''} is still running on the embedded database`,
    { hint: 'wait for it to finish and run migrate again, or raise --lock-wait' }))
  return () => held.release()
}

export type { Connector } from './connect.js'
