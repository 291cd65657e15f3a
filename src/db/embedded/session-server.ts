import { createServer, type Server, type Socket } from 'node:net'
import type { PgliteHost } from './pglite-host.js'
import {
  COPY_FAIL_MESSAGE, FrontendReader, MAX_MESSAGE_BYTES, ReadyForQueryScanner, SYNC_MESSAGE, authenticationSasl,
  authenticationSaslContinue, authenticationSaslFinal, errorResponse, parseSaslInitialResponse, queryMessage,
  saslResponseData, startupUser, type FrontendMessage,
} from './protocol.js'
import { SCRAM_MECHANISM, ScramExchange, ScramSyntaxError, scramCredentials, type ScramCredentials } from './scram.js'

/**
 * Serves the one PGlite session to many client connections over TCP, so `pg`, node-pg-migrate,
 * Kysely and psql use the embedded database as they would a server.
 *
 * PGlite has a single backend session, so connections take turns. A connection holds the session
 * from its first message until the backend says it is idle again (ReadyForQuery with status `I`):
 * a whole extended-protocol cycle (Parse/Bind/Describe/Execute/Sync, however the bytes arrive), a
 * simple query, and an entire transaction. No other connection's message can land between them,
 * so no query sees another connection's unnamed statement, portal or result. (Upstream
 * pglite-socket interleaves single messages; electric-sql/pglite#1046.)
 *
 * What a single session still shares between connections: session settings (SET), named prepared
 * statements, temporary tables and advisory locks.
 *
 * Every connection authenticates first, by SCRAM-SHA-256 with the server's password: the port is
 * open to every local user, and the session is a superuser's. Until then nothing of the connection
 * (not even its startup message) reaches PGlite, and its messages are at most a few kilobytes.
 */
export interface SessionServerOptions {
  readonly host: string
  readonly port: number
  /** The password every client must give (the embedded database's; see password-file.ts). */
  readonly password: string
  readonly maxConnections?: number
  /** A connection that has not authenticated this long after connecting is closed (as PostgreSQL's authentication_timeout). */
  readonly authenticationTimeoutMs?: number
}

/** PostgreSQL's default authentication_timeout. */
const AUTHENTICATION_TIMEOUT_MS = 60_000

type AuthenticationState =
  | { readonly stage: 'startup' }
  | { readonly stage: 'sasl-initial'; readonly startup: Uint8Array; readonly user: string }
  | { readonly stage: 'sasl-final'; readonly startup: Uint8Array; readonly user: string; readonly exchange: ScramExchange }
  | { readonly stage: 'done' }

class Connection {
  readonly socket: Socket
  readonly reader = new FrontendReader()
  /** Complete messages received and not yet sent to the session. */
  readonly inbox: Uint8Array[] = []
  /** True while this connection holds the session: from its first message until the backend is idle. */
  holding = false
  closed = false
  authentication: AuthenticationState = { stage: 'startup' }
  /** Refused (an error is on its way to the client): whatever else it sends is ignored. */
  refused = false

  constructor(socket: Socket) {
    this.socket = socket
  }

  write(chunks: readonly Uint8Array[]): void {
    if (this.closed || this.refused || this.socket.destroyed) return
    for (const chunk of chunks) if (chunk.length > 0) this.socket.write(chunk)
  }
}

export class SessionServer {
  readonly #db: PgliteHost
  readonly #options: SessionServerOptions
  readonly #connections = new Set<Connection>()
  /** Connections with messages waiting for the session, in arrival order. */
  readonly #waiting: Connection[] = []
  readonly #scanner = new ReadyForQueryScanner()
  readonly #credentials: ScramCredentials
  #holder: Connection | undefined
  #server: Server | undefined
  #tail: Promise<void> = Promise.resolve()
  #draining = false
  #stopped = false

  constructor(db: PgliteHost, options: SessionServerOptions) {
    this.#db = db
    this.#options = options
    this.#credentials = scramCredentials(options.password)
  }

  get connectionCount(): number {
    return this.#connections.size
  }

  async listen(): Promise<{ host: string; port: number }> {
    const server = createServer((socket) => this.#accept(socket))
    server.maxConnections = this.#options.maxConnections ?? 100
    this.#server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.#options.port, this.#options.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    server.on('error', () => undefined)
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('the embedded server has no TCP address')
    return { host: this.#options.host, port: address.port }
  }

  /** Stops accepting connections; open ones are closed. */
  async stop(): Promise<void> {
    this.#stopped = true
    for (const connection of this.#connections) connection.socket.destroy()
    const server = this.#server
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  #accept(socket: Socket): void {
    if (this.#stopped) {
      socket.destroy()
      return
    }
    socket.setNoDelay(true)
    const connection = new Connection(socket)
    this.#connections.add(connection)
    const timeout = setTimeout(() => {
      if (connection.authentication.stage !== 'done') socket.destroy()
    }, this.#options.authenticationTimeoutMs ?? AUTHENTICATION_TIMEOUT_MS)
    timeout.unref()
    socket.on('data', (data: Buffer) => this.#receive(connection, data))
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(timeout)
      this.#disconnect(connection)
    })
  }

  /** Sends the client an ErrorResponse and closes the connection once it is written. */
  #refuse(connection: Connection, code: string, text: string): void {
    connection.refused = true
    connection.inbox.length = 0
    if (connection.socket.destroyed) return
    connection.socket.end(errorResponse(code, text), () => connection.socket.destroy())
  }

  #receive(connection: Connection, data: Buffer): void {
    if (connection.refused) return
    connection.reader.push(data)
    for (;;) {
      let message: FrontendMessage | undefined
      try {
        message = connection.reader.next()
      } catch (error) {
        this.#refuse(connection, '08P01', `pgml-kit embedded server: ${(error as Error).message}`)
        return
      }
      if (!message) break
      if (message.kind === 'ssl-request' || message.kind === 'gss-request') {
        // No encryption on a loopback socket: "N", and the client goes on in plain text.
        connection.socket.write('N')
      } else if (message.kind === 'cancel-request') {
        // PGlite cannot interrupt a running statement; the protocol expects no answer.
        connection.socket.destroy()
        return
      } else if (message.kind === 'message' && message.type === 'X') {
        connection.socket.end()
        return
      } else if (connection.authentication.stage !== 'done') {
        this.#authenticate(connection, message)
        if (connection.refused) return
      } else {
        connection.inbox.push(message.bytes)
      }
    }
    if (connection.inbox.length > 0 && !connection.holding && !this.#waiting.includes(connection)) this.#waiting.push(connection)
    this.#pump()
  }

  /**
   * The server's side of the SCRAM exchange. The startup message is kept back until the client has
   * proven it knows the password; then it goes to PGlite, which answers AuthenticationOk and the
   * rest of a normal start.
   */
  #authenticate(connection: Connection, message: FrontendMessage): void {
    const state = connection.authentication
    if (message.kind === 'startup') {
      connection.authentication = { stage: 'sasl-initial', startup: message.bytes, user: startupUser(message.bytes) }
      connection.write([authenticationSasl([SCRAM_MECHANISM])])
      return
    }
    if (state.stage === 'startup' || state.stage === 'done') return
    const failed = () => this.#refuse(connection, '28P01', `password authentication failed for user ${JSON.stringify(state.user)}`)
    // Anything but a password message: the client has no password to give.
    if (message.kind !== 'message' || message.type !== 'p') return failed()
    try {
      if (state.stage === 'sasl-initial') {
        const initial = parseSaslInitialResponse(message.bytes)
        if (!initial) throw new ScramSyntaxError('malformed SASLInitialResponse')
        if (initial.mechanism !== SCRAM_MECHANISM) throw new ScramSyntaxError(`SASL mechanism ${JSON.stringify(initial.mechanism)} is not supported (only ${SCRAM_MECHANISM})`)
        const exchange = new ScramExchange(this.#credentials)
        const serverFirst = exchange.first(initial.data)
        connection.authentication = { ...state, stage: 'sasl-final', exchange }
        connection.write([authenticationSaslContinue(serverFirst)])
        return
      }
      const serverFinal = state.exchange.final(saslResponseData(message.bytes))
      if (serverFinal === undefined) return failed()
      connection.authentication = { stage: 'done' }
      connection.reader.maxMessageBytes = MAX_MESSAGE_BYTES
      connection.write([authenticationSaslFinal(serverFinal)])
      connection.inbox.push(state.startup)
    } catch (error) {
      // A malformed exchange (ScramSyntaxError), or anything else it made go wrong: never the process.
      this.#refuse(connection, '08P01', `pgml-kit embedded server: ${(error as Error).message}`)
    }
  }

  /**
   * All work on the session runs one task at a time on this chain: draining inboxes, and cleaning
   * up after a connection that left while it held the session.
   */
  #enqueue(task: () => Promise<void>): void {
    this.#tail = this.#tail.then(task).catch(() => undefined)
  }

  #pump(): void {
    if (this.#draining) return
    this.#draining = true
    this.#enqueue(async () => {
      try {
        await this.#drain()
      } finally {
        this.#draining = false
      }
    })
  }

  #nextRunnable(): Connection | undefined {
    if (this.#holder) return this.#holder.inbox.length > 0 ? this.#holder : undefined
    return this.#waiting[0]
  }

  /** Runs the holder's messages, and hands the session to the next waiting connection when it is idle. */
  async #drain(): Promise<void> {
    for (;;) {
      const connection = this.#nextRunnable()
      if (!connection) return
      if (!this.#holder) {
        this.#waiting.shift()
        this.#holder = connection
        connection.holding = true
      }
      const messages = connection.inbox.splice(0)
      let output: Uint8Array[]
      try {
        output = await this.#db.run(messages)
      } catch (error) {
        connection.write([errorResponse('XX000', (error as Error).message)])
        connection.socket.destroy()
        await this.#cleanUp(connection)
        continue
      }
      for (const chunk of output) this.#scanner.scan(chunk)
      connection.write(output)
      // The conversation is complete when the backend waits for a command outside any transaction.
      if (this.#scanner.atReadyForQuery && this.#scanner.status === 'I' && connection.inbox.length === 0) {
        connection.holding = false
        this.#holder = undefined
      }
    }
  }

  #disconnect(connection: Connection): void {
    connection.closed = true
    this.#connections.delete(connection)
    const queued = this.#waiting.indexOf(connection)
    if (queued >= 0) this.#waiting.splice(queued, 1)
    connection.inbox.length = 0
    if (connection.holding) {
      this.#enqueue(() => this.#cleanUp(connection))
      this.#pump()
    }
  }

  /**
   * A connection that goes away while holding the session leaves it clean for the next one: any
   * COPY and extended-protocol cycle ended, any open transaction rolled back.
   */
  async #cleanUp(connection: Connection): Promise<void> {
    if (this.#holder !== connection) return
    try {
      for (const chunk of await this.#db.run([COPY_FAIL_MESSAGE, SYNC_MESSAGE])) this.#scanner.scan(chunk)
      if (this.#scanner.status !== 'I') {
        for (const chunk of await this.#db.run([queryMessage('ROLLBACK')])) this.#scanner.scan(chunk)
      }
    } catch {
      // The database thread is gone; nothing left to clean.
    } finally {
      connection.holding = false
      this.#holder = undefined
      // Connections that waited while this one held the session go on (a no-op inside a drain).
      this.#pump()
    }
  }
}
