import { createRequire } from 'node:module'
import { Socket } from 'node:net'

const require = createRequire(import.meta.url)
/** node-postgres' own SCRAM client: the server's side is checked against an implementation it did not write. */
const sasl = require('pg/lib/crypto/sasl.js') as {
  startSession(mechanisms: string[]): { mechanism: string; response: string }
  continueSession(session: object, password: string, serverData: string): Promise<void>
  finalizeSession(session: object, serverData: string): void
}

export interface BackendMessage {
  readonly type: string
  readonly body: Buffer
}

/**
 * A raw PostgreSQL protocol client for tests that need to control exactly which bytes reach the
 * server and when (half a message, a cycle without Sync, a connection that vanishes, a client
 * that does not authenticate).
 */
export class WireClient {
  readonly #socket = new Socket()
  #received = Buffer.alloc(0)
  #waiters: (() => void)[] = []
  #ended = false
  /** Resolves when the server has closed the connection. */
  readonly closed: Promise<void>

  private constructor() {
    this.closed = new Promise((resolve) => this.#socket.once('close', () => resolve()))
  }

  /** Opens a socket to the URL's host and port and sends nothing. */
  static async open(url: string): Promise<WireClient> {
    const client = new WireClient()
    const parsed = new URL(url)
    await new Promise<void>((resolve, reject) => {
      client.#socket.once('error', reject)
      client.#socket.connect(Number(parsed.port), parsed.hostname, resolve)
    })
    client.#socket.on('error', () => undefined)
    client.#socket.on('data', (data: Buffer) => {
      client.#received = Buffer.concat([client.#received, data])
      client.#wake()
    })
    client.#socket.on('end', () => { client.#ended = true; client.#wake() })
    client.#socket.on('close', () => { client.#ended = true; client.#wake() })
    return client
  }

  /**
   * Connects and logs in with the URL's user and password (SCRAM-SHA-256), up to the first
   * ReadyForQuery. `pipelined` is sent in the same write as the password's last message.
   */
  static async connect(url: string, pipelined: Uint8Array = new Uint8Array()): Promise<WireClient> {
    const client = await WireClient.open(url)
    const parsed = new URL(url)
    client.send(wire.startup(decodeURIComponent(parsed.username) || 'postgres'))
    const password = decodeURIComponent(parsed.password)
    let session: { mechanism: string; response: string } | undefined
    for (;;) {
      const message = await client.readMessage()
      if (!message) throw new Error('the server closed the connection during authentication')
      if (message.type === 'E') throw new Error(`refused: ${errorText(message.body)}`)
      if (message.type === 'Z') return client
      if (message.type !== 'R') continue
      const kind = message.body.readInt32BE(0)
      const data = message.body.subarray(4)
      if (kind === 10) {
        session = sasl.startSession(data.toString('utf8').split('\0').filter(Boolean))
        client.send(wire.saslInitialResponse(session.mechanism, session.response))
      } else if (kind === 11) {
        await sasl.continueSession(session!, password, data.toString('utf8'))
        client.send(Buffer.concat([wire.saslResponse(session!.response), pipelined]))
      } else if (kind === 12) {
        sasl.finalizeSession(session!, data.toString('utf8'))
      } else if (kind !== 0) {
        throw new Error(`unexpected authentication request ${kind}`)
      }
    }
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter()
  }

  send(bytes: Uint8Array): void {
    this.#socket.write(bytes)
  }

  destroy(): void {
    this.#socket.destroy()
  }

  /** The next backend message, or undefined once the server has closed the connection. */
  async readMessage(): Promise<BackendMessage | undefined> {
    for (;;) {
      if (this.#received.length >= 5 && this.#received.length >= 1 + this.#received.readInt32BE(1)) {
        const length = this.#received.readInt32BE(1)
        const type = String.fromCharCode(this.#received[0]!)
        const body = this.#received.subarray(5, 1 + length)
        this.#received = this.#received.subarray(1 + length)
        return { type, body }
      }
      if (this.#ended) return undefined
      await new Promise<void>((resolve) => this.#waiters.push(resolve))
    }
  }

  /** Every message until the server closes the connection. */
  async readToEnd(): Promise<BackendMessage[]> {
    const messages: BackendMessage[] = []
    for (let message = await this.readMessage(); message; message = await this.readMessage()) messages.push(message)
    return messages
  }

  /** Reads backend messages up to and including the next ReadyForQuery; returns the text of DataRow columns and error messages. */
  async readUntilReady(): Promise<{ rows: (string | null)[][]; errors: string[] }> {
    const rows: (string | null)[][] = []
    const errors: string[] = []
    for (;;) {
      const message = await this.readMessage()
      if (!message) throw new Error('the server closed the connection')
      const { type, body } = message
      if (type === 'D') {
        const row: (string | null)[] = []
        let at = 2
        for (let i = 0; i < body.readInt16BE(0); i++) {
          const size = body.readInt32BE(at)
          at += 4
          row.push(size < 0 ? null : body.subarray(at, at + size).toString('utf8'))
          at += Math.max(size, 0)
        }
        rows.push(row)
      } else if (type === 'E') {
        errors.push(errorText(body))
      } else if (type === 'Z') {
        return { rows, errors }
      }
    }
  }
}

/** The fields of an ErrorResponse body, by their one-letter codes (C: SQLSTATE, M: message). */
export function errorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const field of body.toString('utf8').split('\0')) if (field) fields[field[0]!] = field.slice(1)
  return fields
}

const errorText = (body: Buffer) => errorFields(body).M ?? 'error'

function frame(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts)
  const out = Buffer.alloc(5 + body.length)
  out.write(type, 0, 'latin1')
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}

const cstring = (s: string) => Buffer.from(`${s}\0`, 'utf8')
const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b }
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b }

export const wire = {
  startup: (user: string) => {
    const params = Buffer.from(`user\0${user}\0database\0postgres\0\0`, 'utf8')
    return Buffer.concat([int32(8 + params.length), int32(196608), params])
  },
  saslInitialResponse: (mechanism: string, data: string) => {
    const bytes = Buffer.from(data, 'utf8')
    return frame('p', cstring(mechanism), int32(bytes.length), bytes)
  },
  saslResponse: (data: string) => frame('p', Buffer.from(data, 'utf8')),
  query: (sql: string) => frame('Q', cstring(sql)),
  parse: (sql: string) => frame('P', cstring(''), cstring(sql), int16(0)),
  /** Binds the unnamed statement with text parameters. */
  bind: (params: readonly string[]) => frame('B', cstring(''), cstring(''), int16(0), int16(params.length),
    ...params.flatMap((p) => { const v = Buffer.from(p, 'utf8'); return [int32(v.length), v] }), int16(0)),
  execute: () => frame('E', cstring(''), int32(0)),
  sync: () => frame('S'),
}
