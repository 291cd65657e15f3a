import pg from 'pg'
import { parse as parseConnectionString } from 'pg-connection-string'
import { TargetError } from '../errors.js'
import { connectionSecrets, maskConnectionString, redactSecrets } from './secrets.js'

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

/** A connection string for humans: its password masked (every form libpq takes; see secrets.ts). */
export function redactUrl(url: string): string {
  return maskConnectionString(url)
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
    const masked = redactSecrets(maskConnectionString(url), connectionSecrets(url))
    const keywords = !/^\s*[a-z][a-z0-9+.-]*:/i.test(url) && /^\s*\w+\s*=/.test(url)
    throw new TargetError('DATABASE_URL_INVALID', `${JSON.stringify(masked)} is not a PostgreSQL URL`, {
      hint: `${keywords ? 'keyword/value connection strings are not read here: ' : ''}write it as postgres://user:<password>@host:5432/database (DATABASE_URL or --database-url), with @ / ? # : in the password percent-encoded`,
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

/** Node's codes for a server certificate that does not verify. */
const UNTRUSTED_CERTIFICATE = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID'])

/** Host, port, user and database as pg read them from the URL (query parameters included). */
function connectionParts(url: string): { where: string; user: string; database: string } {
  let config: ReturnType<typeof parseConnectionString> | undefined
  try {
    config = parseConnectionString(url)
  } catch { /* a URL pg could not read: the defaults below */ }
  // pg's defaults: $PGUSER, else the login name; the database defaults to the user's name.
  const user = config?.user || process.env.PGUSER || process.env.USER || 'the default user'
  const host = config?.host || process.env.PGHOST || 'localhost'
  const port = config?.port || process.env.PGPORT || '5432'
  return { where: host.startsWith('/') ? host : `${host.includes(':') ? `[${host}]` : host}:${port}`, user, database: config?.database || process.env.PGDATABASE || user }
}

/**
 * Translates a failure to connect into one line (`CONNECTION_FAILED`): the target, its password
 * masked, what went wrong, and what to do. No password reaches the message, not even from a
 * driver text that echoes the URL.
 */
export function describeConnectError(error: unknown, url: string): TargetError {
  const e = error as { code?: string; message?: string; hostname?: string; path?: string }
  const secrets = connectionSecrets(url)
  const shown = maskConnectionString(url)
  const said = redactSecrets(e?.message ?? String(error), secrets)
  const { where, user, database } = connectionParts(url)
  const sslRequired = /no encryption/i.test(said)
  const known: Record<string, [string, string]> = {
    ECONNREFUSED: [`nothing is listening at ${where}`, 'start PostgreSQL, or check the host and port in the URL'],
    ENOTFOUND: [`the host in the URL cannot be found (${e.hostname ?? where})`, 'check the host name in the URL'],
    EAI_AGAIN: [`the host in the URL cannot be resolved right now (${e.hostname ?? where})`, 'check the network and the host name'],
    ETIMEDOUT: [`${where} did not answer in time`, 'check that the server is reachable from here (firewall, host, port)'],
    EHOSTUNREACH: [`there is no route to ${where}`, 'check the network and the host in the URL'],
    ENETUNREACH: [`the network of ${where} cannot be reached`, 'check the network and the host in the URL'],
    ECONNRESET: [`${where} closed the connection while it was being set up`, 'check that it is PostgreSQL and look at its log; if it only takes SSL, add ?sslmode=require to the URL'],
    ENOENT: [`cannot read ${redactSecrets(e.path ?? 'a file the URL names', secrets)}`, 'check sslrootcert, sslcert and sslkey in the URL'],
    '28P01': [`password authentication failed for ${user}`, 'check the user and password in the URL (or $PGPASSWORD)'],
    '28000': sslRequired
      ? [`the server takes ${user} only over SSL: ${said}`, 'add ?sslmode=require to the URL (or sslmode=no-verify for a self-signed certificate)']
      : [`the server refuses ${user}: ${said}`, 'check the user name, and the server\'s pg_hba.conf'],
    '3D000': [`database "${database}" does not exist`, `create it (createdb ${JSON.stringify(database)}), or fix the database name in the URL`],
    '57P03': [`the server is starting up or shutting down (${said})`, 'wait a moment and try again'],
    '57P01': ['the server is shutting down', 'wait until it is back and try again'],
    '53300': ['the server has no connection slots left', 'close idle connections or raise max_connections'],
  }
  const byMessage: [RegExp, [string, string]][] = [
    [/timeout/i, known.ETIMEDOUT!],
    [/does not support SSL/i, [`${where} does not take SSL connections`, 'remove sslmode (or set sslmode=disable) in the URL, or turn ssl on in the server']],
    [/client password must be a string|password must be a string/i, [`the server asks ${user} for a password and none was given`, 'put the password in the URL (or in $PGPASSWORD)']],
    [/Connection terminated unexpectedly/i, known.ECONNRESET!],
  ]
  const code = e?.code ?? ''
  const [what, hint]: [string, string] = known[code]
    ?? (UNTRUSTED_CERTIFICATE.has(code) ? [`the server's certificate is not trusted (${said})`, 'give its CA with sslrootcert=<file> in the URL, or use sslmode=no-verify to skip the check'] : undefined)
    ?? byMessage.find(([pattern]) => pattern.test(said))?.[1]
    ?? [said, 'check DATABASE_URL / --database-url']
  return new TargetError('CONNECTION_FAILED', `cannot connect to ${shown}: ${redactSecrets(what, secrets)}`, { where: shown, hint, cause: error })
}

/** A connected client with an `'error'` listener (the next query reports a lost connection). */
export async function connectClient(url: string, applicationName = 'pgml-kit'): Promise<pg.Client> {
  assertDatabaseUrl(url)
  let client: pg.Client | undefined
  try {
    // pg reads the URL here, certificate files it names included.
    client = new pg.Client({ connectionString: url, application_name: applicationName, connectionTimeoutMillis: 15_000 })
    client.on('error', () => undefined)
    await client.connect()
  } catch (error) {
    await client?.end().catch(() => undefined)
    throw describeConnectError(error, url)
  }
  return client
}

/**
 * A pool of one connection, for code that takes a pg.Pool (Kysely's PostgresDialect): the
 * connection comes from `connector`, so a failure to connect is the same `TargetError` as
 * everywhere else. Whoever asks while it is lent out waits for its release.
 */
export function oneConnectionPool(connector: Connector, applicationName: string): { connect(): Promise<pg.Client & { release(): void }>; end(): Promise<void> } {
  let client: Promise<pg.Client> | undefined
  let free: Promise<void> = Promise.resolve()
  return {
    async connect() {
      const previous = free
      let release!: () => void
      free = new Promise((resolve) => { release = resolve })
      await previous
      try {
        client ??= connector.connect(applicationName)
        return Object.assign(await client, { release })
      } catch (error) {
        client = undefined
        release()
        throw error
      }
    },
    async end() {
      const open = await client?.catch(() => undefined)
      client = undefined
      await open?.end().catch(() => undefined)
    },
  }
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
