import pg from 'pg'
import { TargetError } from '../errors.js'

/**
 * Every connection pgml-kit opens goes through here: the URL is checked before use, a failure to
 * connect becomes a one-line `TargetError` naming the URL (password masked) and the likely fix,
 * and every client has an `'error'` listener, so a backend that is terminated or a server that
 * goes away makes the next query fail instead of crashing the process.
 */

/** Something that hands out connections: a database URL, or a `Target` (which can reconnect). */
export interface Connector {
  /** For humans: the URL without its password, or the embedded data directory. */
  readonly description: string
  connect(applicationName?: string): Promise<pg.Client>
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

/** Refuses strings that are not PostgreSQL URLs before a driver misreads them (`postgres//x` became a socket path). */
export function assertDatabaseUrl(url: string): void {
  let parsed: URL | undefined
  try {
    parsed = new URL(url)
  } catch {
    parsed = undefined
  }
  if (!parsed || (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') || (!parsed.hostname && !parsed.searchParams.has('host'))) {
    const masked = url.replace(/(\/\/[^:/@]*:)[^@/]*@/, '$1***@')
    throw new TargetError('DATABASE_URL_INVALID', `${JSON.stringify(masked)} is not a PostgreSQL URL`, {
      hint: 'write it as postgres://user:password@host:5432/database (DATABASE_URL or --database-url)',
    })
  }
}

/** Error codes of a connection that is gone (the server or its owner went away, or the backend was terminated). */
const CONNECTION_LOST = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', '57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004'])

/** True for errors meaning the connection is unusable and a new one may work (as opposed to an SQL error). */
export function isConnectionLost(error: unknown): boolean {
  const e = error as { code?: string; message?: string } | undefined
  if (!e) return false
  if (e.code && CONNECTION_LOST.has(e.code)) return true
  return /Connection terminated|connection (?:is )?closed|Client has encountered a connection error|not queryable|socket hang up/i.test(e.message ?? '')
}

/** Translates a failure to connect into what to do about it. */
export function describeConnectError(error: unknown, url: string): TargetError {
  const e = error as { code?: string; message?: string; hostname?: string }
  const shown = redactUrl(url)
  let where = ''
  try {
    const parsed = new URL(url)
    where = `${parsed.hostname}:${parsed.port || '5432'}`
  } catch { /* shown as is */ }
  const user = (() => { try { return decodeURIComponent(new URL(url).username) || 'the default user' } catch { return 'the user' } })()
  const database = (() => { try { return decodeURIComponent(new URL(url).pathname.slice(1)) || user } catch { return 'the database' } })()
  const known: Record<string, [string, string]> = {
    ECONNREFUSED: [`nothing is listening at ${where}`, 'start PostgreSQL, or check the host and port in the URL'],
    ENOTFOUND: [`the host in the URL cannot be found (${e.hostname ?? where})`, 'check the host name in the URL'],
    EAI_AGAIN: [`the host in the URL cannot be resolved right now (${e.hostname ?? where})`, 'check the network and the host name'],
    ETIMEDOUT: [`${where} did not answer in time`, 'check that the server is reachable from here (firewall, host, port)'],
    '28P01': [`password authentication failed for ${user}`, 'check the user and password in the URL'],
    '28000': [`the server refuses ${user}: ${e.message ?? ''}`, 'check the user name, and the server\'s pg_hba.conf'],
    '3D000': [`database "${database}" does not exist`, `create it (createdb ${JSON.stringify(database)}), or fix the database name in the URL`],
    '57P03': ['the server is starting up or shutting down', 'wait a moment and try again'],
    '53300': ['the server has no connection slots left', 'close idle connections or raise max_connections'],
  }
  const timedOut = /timeout/i.test(e.message ?? '') && e.code === undefined
  const [what, hint] = (e.code && known[e.code]) ?? (timedOut ? known.ETIMEDOUT! : [e.message ?? String(error), 'check DATABASE_URL / --database-url'])
  return new TargetError('CONNECTION_FAILED', `cannot connect to ${shown}: ${what}`, { where: shown, hint, cause: error })
}

/** A connected client with an `'error'` listener (the next query reports a lost connection). */
export async function connectClient(url: string, applicationName = 'pgml-kit'): Promise<pg.Client> {
  assertDatabaseUrl(url)
  const client = new pg.Client({ connectionString: url, application_name: applicationName, connectionTimeoutMillis: 15_000 })
  client.on('error', () => undefined)
  try {
    await client.connect()
  } catch (error) {
    await client.end().catch(() => undefined)
    throw describeConnectError(error, url)
  }
  return client
}

/** A connector for a plain URL. */
export function urlConnector(url: string): Connector {
  return { description: redactUrl(url), connect: (name) => connectClient(url, name) }
}

export function toConnector(source: string | Connector): Connector {
  return typeof source === 'string' ? urlConnector(source) : source
}

/** Runs `fn` with a client from `source`, and always closes it. */
export async function withClient<T>(source: string | Connector, applicationName: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await toConnector(source).connect(applicationName)
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => undefined)
  }
}
