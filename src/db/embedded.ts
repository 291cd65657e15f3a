import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import lockfile from 'proper-lockfile'
import pg from 'pg'
import { TargetError } from '../errors.js'

/**
 * The embedded default: PostgreSQL (PGlite, compiled to WASM) with pgvector, persisted under
 * `.pgml-kit/` and served on a loopback port, so `pg`, node-pg-migrate and Kysely use the same
 * code path as against a server.
 *
 * PGlite is single-process: one pgml-kit process owns the data directory at a time. The owner
 * holds a lock file (kept fresh while it lives, stale soon after it dies) and records its address
 * in `owner.json`; every other process connects to that address instead of opening the directory.
 */
export const EMBEDDED_DIR = '.pgml-kit'
const STALE_MS = 5_000
/** How long a closing owner waits for its clients to disconnect. */
const DRAIN_MS = 10_000

export interface EmbeddedServer {
  readonly url: string
  /** True when this process opened the data directory (and will close it). */
  readonly owner: boolean
  readonly dataDir: string
  close(): Promise<void>
}

export interface OpenEmbeddedOptions {
  /** Port for the owner to listen on (0: any free port). */
  readonly port?: number
  /** How long a non-owner waits for a starting owner to publish its address. */
  readonly waitMs?: number
}

interface OwnerRecord {
  pid: number
  host: string
  port: number
}

function urlFor(record: OwnerRecord): string {
  return `postgres://postgres@${record.host}:${record.port}/postgres`
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 })
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

export async function openEmbedded(projectDir: string, options: OpenEmbeddedOptions = {}): Promise<EmbeddedServer> {
  const base = join(projectDir, EMBEDDED_DIR)
  const dataDir = join(base, 'data')
  const ownerFile = join(base, 'owner.json')
  await mkdir(base, { recursive: true })
  const deadline = Date.now() + (options.waitMs ?? 15_000)

  for (;;) {
    let release: (() => Promise<void>) | undefined
    try {
      release = await lockfile.lock(join(base, 'owner'), { stale: STALE_MS, update: STALE_MS / 2, realpath: false })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error
    }
    if (release) return startOwner(dataDir, ownerFile, release, options.port ?? 0)

    // Somebody else owns it: use their server once it has published its address.
    const record = await readFile(ownerFile, 'utf8').then((t) => JSON.parse(t) as OwnerRecord).catch(() => undefined)
    if (record && (await canConnect(urlFor(record)))) {
      return { url: urlFor(record), owner: false, dataDir, close: async () => undefined }
    }
    if (Date.now() > deadline) {
      throw new TargetError('EMBEDDED_BUSY',
        `the embedded database in ${base} is locked by another process that does not answer${record ? ` (pid ${record.pid}, port ${record.port})` : ''}`,
        { where: base, hint: 'wait for the other pgml-kit command to finish, or stop it; a lock left by a crashed process expires within seconds' })
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

async function startOwner(dataDir: string, ownerFile: string, release: () => Promise<void>, port: number): Promise<EmbeddedServer> {
  // Imported here so server targets never load the WASM build.
  const [{ PGlite }, { vector }, { PGLiteSocketServer }] = await Promise.all([
    import('@electric-sql/pglite'), import('@electric-sql/pglite-pgvector'), import('@electric-sql/pglite-socket'),
  ])
  let db: InstanceType<typeof PGlite> | undefined
  let server: InstanceType<typeof PGLiteSocketServer> | undefined
  try {
    db = await PGlite.create({ dataDir, extensions: { vector } })
    server = new PGLiteSocketServer({ db, host: '127.0.0.1', port, maxConnections: 32 })
    await server.start()
  } catch (error) {
    await server?.stop().catch(() => undefined)
    await db?.close().catch(() => undefined)
    await release()
    const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE'
    throw new TargetError(inUse ? 'PORT_IN_USE' : 'EMBEDDED_START_FAILED',
      inUse ? `port ${port} on 127.0.0.1 is already in use` : `could not start the embedded database in ${dataDir}: ${(error as Error).message}`,
      { where: dataDir, cause: error, hint: inUse ? 'choose another --port' : undefined })
  }
  const [host, portText] = server.getServerConn().split(':')
  const record: OwnerRecord = { pid: process.pid, host: host ?? '127.0.0.1', port: Number(portText) }
  await writeFile(ownerFile, JSON.stringify(record))
  let closed = false
  return {
    url: urlFor(record),
    owner: true,
    dataDir,
    async close() {
      if (closed) return
      closed = true
      // Stop advertising first, then let connected clients (another command, psql) finish.
      await rm(ownerFile, { force: true })
      const drainUntil = Date.now() + DRAIN_MS
      while (server && server.getStats().activeConnections > 0 && Date.now() < drainUntil) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      await server?.stop().catch(() => undefined)
      await db?.close()
      await release()
    },
  }
}
