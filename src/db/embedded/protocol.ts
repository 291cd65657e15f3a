/**
 * Just enough of the PostgreSQL wire protocol (v3) to route whole client conversations to the one
 * PGlite session: splitting the frontend byte stream into messages, and spotting ReadyForQuery in
 * the backend's output, which tells whether the session is idle, in a transaction, or in a failed
 * one.
 */

export const SSL_REQUEST_CODE = 80877103
export const GSS_ENC_REQUEST_CODE = 80877104
export const CANCEL_REQUEST_CODE = 80877102
const PROTOCOL_V3 = 196608

export type FrontendMessage =
  | { readonly kind: 'startup'; readonly bytes: Uint8Array }
  | { readonly kind: 'ssl-request' }
  | { readonly kind: 'gss-request' }
  | { readonly kind: 'cancel-request' }
  | { readonly kind: 'message'; readonly type: string; readonly bytes: Uint8Array }

/**
 * Splits a connection's incoming bytes into complete messages, across reads of any size. Before
 * the startup message, messages carry no type byte.
 */
export class FrontendReader {
  #buffer: Buffer = Buffer.alloc(0)
  #started = false

  push(data: Buffer): FrontendMessage[] {
    this.#buffer = this.#buffer.length === 0 ? data : Buffer.concat([this.#buffer, data])
    const out: FrontendMessage[] = []
    for (;;) {
      const message = this.#next()
      if (!message) return out
      out.push(message)
    }
  }

  #next(): FrontendMessage | undefined {
    const buffer = this.#buffer
    if (!this.#started) {
      if (buffer.length < 8) return undefined
      const length = buffer.readInt32BE(0)
      if (length < 8 || length > 10_000) throw new Error(`invalid startup packet length ${length}`)
      if (buffer.length < length) return undefined
      const code = buffer.readInt32BE(4)
      const bytes = new Uint8Array(buffer.subarray(0, length))
      this.#buffer = buffer.subarray(length)
      if (code === SSL_REQUEST_CODE) return { kind: 'ssl-request' }
      if (code === GSS_ENC_REQUEST_CODE) return { kind: 'gss-request' }
      if (code === CANCEL_REQUEST_CODE) return { kind: 'cancel-request' }
      if (code !== PROTOCOL_V3) throw new Error(`unsupported frontend protocol ${code >> 16}.${code & 0xffff}`)
      this.#started = true
      return { kind: 'startup', bytes }
    }
    if (buffer.length < 5) return undefined
    const length = buffer.readInt32BE(1)
    if (length < 4) throw new Error(`invalid message length ${length}`)
    if (buffer.length < 1 + length) return undefined
    const bytes = new Uint8Array(buffer.subarray(0, 1 + length))
    this.#buffer = buffer.subarray(1 + length)
    return { kind: 'message', type: String.fromCharCode(bytes[0] as number), bytes }
  }
}

/** Transaction status from ReadyForQuery: idle, in a transaction block, or in a failed one. */
export type TransactionStatus = 'I' | 'T' | 'E'

/**
 * Follows the backend's output, which arrives in chunks that may split messages: the status of the
 * last ReadyForQuery, and whether the output so far ends right after it (the session is waiting for
 * the next command, so the conversation that held it is complete).
 */
export class ReadyForQueryScanner {
  /** Bytes of the current message's 5-byte header seen so far. */
  readonly #header = Buffer.alloc(5)
  #headerLength = 0
  /** Payload bytes of the current message still to come. */
  #remaining = 0
  #type = 0
  #status: TransactionStatus = 'I'
  #atReady = true

  get status(): TransactionStatus {
    return this.#status
  }

  /** True when the last complete backend message was ReadyForQuery and nothing followed it. */
  get atReadyForQuery(): boolean {
    return this.#atReady
  }

  scan(chunk: Uint8Array): void {
    let i = 0
    while (i < chunk.length) {
      this.#atReady = false
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - i)
        this.#remaining -= take
        i += take
        if (this.#remaining === 0) this.#complete(chunk[i - 1] as number)
        continue
      }
      this.#header[this.#headerLength++] = chunk[i++] as number
      if (this.#headerLength === 5) {
        this.#type = this.#header[0] as number
        this.#remaining = this.#header.readInt32BE(1) - 4
        this.#headerLength = 0
        if (this.#remaining === 0) this.#complete(0)
      }
    }
  }

  #complete(lastByte: number): void {
    if (this.#type !== 0x5a) return
    this.#status = String.fromCharCode(lastByte) as TransactionStatus
    this.#atReady = true
  }
}

function message(type: string, payload: Buffer): Uint8Array {
  const out = Buffer.alloc(5 + payload.length)
  out.write(type, 0, 'latin1')
  out.writeInt32BE(4 + payload.length, 1)
  payload.copy(out, 5)
  return new Uint8Array(out)
}

/** Simple-protocol Query. */
export function queryMessage(sql: string): Uint8Array {
  return message('Q', Buffer.from(`${sql}\0`, 'utf8'))
}

/** Ends an extended-protocol cycle (and discards what an error left behind). */
export const SYNC_MESSAGE: Uint8Array = message('S', Buffer.alloc(0))

/** Ends COPY FROM STDIN if one was in progress; outside COPY the backend ignores it. */
export const COPY_FAIL_MESSAGE: Uint8Array = message('f', Buffer.from('client disconnected\0', 'utf8'))

/** An ErrorResponse, for refusing a connection before it reaches the database. */
export function errorResponse(code: string, text: string): Uint8Array {
  return message('E', Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${text}\0\0`, 'utf8'))
}
