import { createServer, type Server, type Socket } from 'node:net'
import type { PgliteHost } from './pglite-host.js'
import {
  COPY_FAIL_MESSAGE, FrontendReader, ReadyForQueryScanner, SYNC_MESSAGE, errorResponse, queryMessage,
  type FrontendMessage,
} from './protocol.js'

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
 */
export interface SessionServerOptions {
  readonly host: string
  readonly port: number
  readonly maxConnections?: number
}

class Connection {
  readonly socket: Socket
  readonly reader = new FrontendReader()
  /** Complete messages received and not yet sent to the session. */
  readonly inbox: Uint8Array[] = []
  /** True while this connection holds the session: from its first message until the backend is idle. */
  holding = false
  closed = false

  constructor(socket: Socket) {
    this.socket = socket
  }

  write(chunks: readonly Uint8Array[]): void {
    if (this.closed || this.socket.destroyed) return
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
  #holder: Connection | undefined
  #server: Server | undefined
  #tail: Promise<void> = Promise.resolve()
  #draining = false
  #stopped = false

  constructor(db: PgliteHost, options: SessionServerOptions) {
    this.#db = db
    this.#options = options
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
    socket.on('data', (data: Buffer) => this.#receive(connection, data))
    socket.on('error', () => undefined)
    socket.on('close', () => this.#disconnect(connection))
  }

  #receive(connection: Connection, data: Buffer): void {
    let messages: FrontendMessage[]
    try {
      messages = connection.reader.push(data)
    } catch (error) {
      connection.write([errorResponse('08P01', `pgml-kit embedded server: ${(error as Error).message}`)])
      connection.socket.destroy()
      return
    }
    for (const message of messages) {
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
      } else {
        connection.inbox.push(message.bytes)
      }
    }
    if (connection.inbox.length > 0 && !connection.holding && !this.#waiting.includes(connection)) this.#waiting.push(connection)
    this.#pump()
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
