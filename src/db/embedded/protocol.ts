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

/** The startup message, and every message before authentication succeeds, is at most this long. */
export const MAX_STARTUP_MESSAGE_BYTES = 10_000
/**
 * Any later message is at most this long (PostgreSQL itself allows 1 GB): enough for a batch of
 * thousands of vectors in one statement, and a bound on what one connection makes the server hold.
 */
export const MAX_MESSAGE_BYTES = 128 * 1024 * 1024

/**
 * Splits a connection's incoming bytes into complete messages, across reads of any size. Before
 * the startup message, messages carry no type byte. A message's length is checked against the
 * limit as soon as its header arrives, before any of its body is kept.
 */
export class FrontendReader {
  /** Received bytes not yet split off, in arrival order (joined only once a whole message is there). */
  #pending: Buffer[] = []
  #pendingBytes = 0
  #started = false
  /** The longest message accepted now: small until the connection has authenticated. */
  maxMessageBytes = MAX_STARTUP_MESSAGE_BYTES

  /** Adds received bytes; `next()` then splits them. */
  push(data: Buffer): void {
    if (data.length === 0) return
    this.#pending.push(data)
    this.#pendingBytes += data.length
  }

  /** The first `bytes` received bytes as one buffer (possibly longer), or undefined if fewer have arrived. */
  #peek(bytes: number): Buffer | undefined {
    if (this.#pendingBytes < bytes) return undefined
    if (this.#pending[0]!.length < bytes) this.#pending = [Buffer.concat(this.#pending, this.#pendingBytes)]
    return this.#pending[0]
  }

  /** Removes the first `bytes` bytes, which `#peek(bytes)` returned, and copies them out. */
  #take(bytes: number): Uint8Array {
    const first = this.#pending[0]!
    const taken = new Uint8Array(first.subarray(0, bytes))
    if (first.length === bytes) this.#pending.shift()
    else this.#pending[0] = first.subarray(bytes)
    this.#pendingBytes -= bytes
    return taken
  }

  #checkLength(length: number, minimum: number, what: string): void {
    if (length < minimum) throw new Error(`invalid ${what} length ${length}`)
    if (length > this.maxMessageBytes) {
      throw new Error(`${what} of ${length} bytes is longer than the ${this.maxMessageBytes} bytes the embedded server accepts here`)
    }
  }

  /**
   * The next complete message, or undefined until more bytes arrive. One at a time, so a limit
   * changed after a message (authentication done) applies to the very next one.
   */
  next(): FrontendMessage | undefined {
    if (!this.#started) {
      const header = this.#peek(8)
      if (!header) return undefined
      const length = header.readInt32BE(0)
      this.#checkLength(length, 8, 'startup packet')
      const code = header.readInt32BE(4)
      if (!this.#peek(length)) return undefined
      const bytes = this.#take(length)
      if (code === SSL_REQUEST_CODE) return { kind: 'ssl-request' }
      if (code === GSS_ENC_REQUEST_CODE) return { kind: 'gss-request' }
      if (code === CANCEL_REQUEST_CODE) return { kind: 'cancel-request' }
      if (code !== PROTOCOL_V3) throw new Error(`unsupported frontend protocol ${code >> 16}.${code & 0xffff}`)
      this.#started = true
      return { kind: 'startup', bytes }
    }
    const header = this.#peek(5)
    if (!header) return undefined
    const length = header.readInt32BE(1)
    this.#checkLength(length, 4, 'message')
    if (!this.#peek(1 + length)) return undefined
    const bytes = this.#take(1 + length)
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

/** AuthenticationSASL: the server asks for a password, by one of these mechanisms. */
export function authenticationSasl(mechanisms: readonly string[]): Uint8Array {
  const names = Buffer.from(`${mechanisms.map((m) => `${m}\0`).join('')}\0`, 'utf8')
  return message('R', Buffer.concat([int32(10), names]))
}

/** AuthenticationSASLContinue (with the server-first-message). */
export function authenticationSaslContinue(data: string): Uint8Array {
  return message('R', Buffer.concat([int32(11), Buffer.from(data, 'utf8')]))
}

/** AuthenticationSASLFinal (with the server-final-message). */
export function authenticationSaslFinal(data: string): Uint8Array {
  return message('R', Buffer.concat([int32(12), Buffer.from(data, 'utf8')]))
}

function int32(value: number): Buffer {
  const out = Buffer.alloc(4)
  out.writeInt32BE(value)
  return out
}

/** The mechanism and data of a SASLInitialResponse ('p' after AuthenticationSASL); undefined if malformed. */
export function parseSaslInitialResponse(bytes: Uint8Array): { mechanism: string; data: string } | undefined {
  const body = Buffer.from(bytes.buffer, bytes.byteOffset + 5, bytes.length - 5)
  const end = body.indexOf(0)
  if (end < 0 || body.length < end + 5) return undefined
  const length = body.readInt32BE(end + 1)
  if (length !== body.length - end - 5) return undefined
  return { mechanism: body.subarray(0, end).toString('utf8'), data: body.subarray(end + 5).toString('utf8') }
}

/** The data of a SASLResponse ('p' after AuthenticationSASLContinue). */
export function saslResponseData(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + 5, bytes.length - 5).toString('utf8')
}

/** The user a startup message names (for error messages). */
export function startupUser(bytes: Uint8Array): string {
  const fields = Buffer.from(bytes.buffer, bytes.byteOffset + 8, bytes.length - 8).toString('utf8').split('\0')
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'user') return fields[i + 1]!
  return ''
}
