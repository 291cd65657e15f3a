import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import lockfile from 'proper-lockfile'
import { EMBEDDED_DIR, openEmbedded } from './embedded.js'

export interface TargetOptions {
  /** A PostgreSQL URL; when undefined, `DATABASE_URL`; when that is unset (or this is ''), the embedded database. */
  readonly databaseUrl?: string | undefined
  /** Project directory (where `.pgml-kit/` lives for the embedded database). */
  readonly cwd?: string
  /** Port for the embedded server when this process becomes its owner. */
  readonly port?: number
}

export interface Target {
  readonly kind: 'server' | 'embedded'
  readonly url: string
  /** For humans: the URL without its password, or the embedded data directory. */
  readonly description: string
  close(): Promise<void>
}

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(unparsable database URL)'
  }
}

export async function openTarget(options: TargetOptions = {}): Promise<Target> {
  const url = options.databaseUrl ?? process.env.DATABASE_URL
  if (url) {
    return {
      kind: 'server', url, description: redactUrl(url),
      close: async () => undefined,
    }
  }
  const cwd = options.cwd ?? process.cwd()
  const embedded = await openEmbedded(cwd, options.port === undefined ? {} : { port: options.port })
  return {
    kind: 'embedded',
    url: embedded.url,
    description: `embedded PGlite + pgvector in ${embedded.dataDir}${embedded.owner ? '' : ' (served by another pgml-kit process)'}`,
    close: () => embedded.close(),
  }
}

/**
 * Serialises migration runs. On a server node-pg-migrate's advisory lock does it (this is a
 * no-op). On the embedded database all clients share one backend session, so advisory locks are
 * re-entrant between them; a lock file beside the data does it instead. It is taken before the
 * database is opened, so a waiting run opens it afresh (possibly as the new owner) once the
 * previous run has finished and closed it.
 */
export async function lockMigrations(options: TargetOptions, waitMs: number): Promise<() => Promise<void>> {
  if (options.databaseUrl ?? process.env.DATABASE_URL) return async () => undefined
  const base = join(options.cwd ?? process.cwd(), EMBEDDED_DIR)
  await mkdir(base, { recursive: true })
  // proper-lockfile tracks locks per path, so the migrate lock and the owner lock use different paths.
  return lockfile.lock(join(base, 'migrate'), {
    stale: 10_000, update: 5_000, realpath: false,
    retries: { retries: Math.max(0, Math.ceil(waitMs / 250)), factor: 1, minTimeout: 250, maxTimeout: 250 },
  })
}
