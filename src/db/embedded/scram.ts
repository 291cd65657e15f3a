import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * The server's side of SCRAM-SHA-256 (RFC 5802, RFC 7677), PostgreSQL's default password
 * authentication, which `pg`, psql and every other PostgreSQL client speak. The password itself
 * never crosses the socket, and what does cannot be replayed: a process that listens on the port
 * in the server's place learns nothing it could log in with.
 *
 * Channel binding (SCRAM-SHA-256-PLUS) needs TLS, which a loopback server does not have, so it is
 * not offered; a client that demands it is refused.
 */
export const SCRAM_MECHANISM = 'SCRAM-SHA-256'
const ITERATIONS = 4096

/** What the server keeps instead of the password (the PBKDF2 runs once, not per connection). */
export interface ScramCredentials {
  readonly salt: Buffer
  readonly iterations: number
  readonly storedKey: Buffer
  readonly serverKey: Buffer
}

const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text, 'utf8').digest()
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest()

/** `salt` and `iterations` are for tests that replay a published exchange. */
export function scramCredentials(password: string, options: { salt?: Buffer; iterations?: number } = {}): ScramCredentials {
  const salt = options.salt ?? randomBytes(16)
  const iterations = options.iterations ?? ITERATIONS
  // SASLprep is the identity on the passwords pgml-kit makes (hexadecimal digits).
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256')
  return { salt, iterations, storedKey: sha256(hmac(salted, 'Client Key')), serverKey: hmac(salted, 'Server Key') }
}

/** A client message that is not SCRAM as the RFC writes it (a protocol violation, not a wrong password). */
export class ScramSyntaxError extends Error {}

/** `name=value` attributes of a SCRAM message, in order. */
function attributes(text: string): [string, string][] {
  return text.split(',').map((part) => {
    if (!/^[A-Za-z]=/.test(part)) throw new ScramSyntaxError(`malformed SCRAM attribute ${JSON.stringify(part.slice(0, 40))}`)
    return [part[0]!, part.slice(2)]
  })
}

/** One connection's exchange: client-first → server-first, client-final → server-final. */
export class ScramExchange {
  readonly #credentials: ScramCredentials
  readonly #serverNonce: string
  #gs2Header = ''
  #clientFirstBare = ''
  #serverFirst = ''
  #nonce = ''

  /** `serverNonce` is for tests that replay a published exchange. */
  constructor(credentials: ScramCredentials, serverNonce: string = randomBytes(18).toString('base64')) {
    this.#credentials = credentials
    this.#serverNonce = serverNonce
  }

  /** Takes the client-first-message; returns the server-first-message. */
  first(clientFirst: string): string {
    const match = /^([ny]|p=[^,]*),(a=[^,]*)?,(.*)$/s.exec(clientFirst)
    if (!match) throw new ScramSyntaxError('malformed SCRAM client-first-message')
    if (match[1]!.startsWith('p=')) throw new ScramSyntaxError('channel binding is not supported (no TLS on a loopback socket)')
    if (match[2]) throw new ScramSyntaxError('a SCRAM authorization identity is not supported')
    const bare = attributes(match[3]!)
    // The user name is the startup message's; PostgreSQL clients send "*" here.
    if (bare[0]?.[0] !== 'n' || bare[1]?.[0] !== 'r') throw new ScramSyntaxError('malformed SCRAM client-first-message')
    const clientNonce = bare[1][1]
    if (!/^[\x21-\x2b\x2d-\x7e]+$/.test(clientNonce)) throw new ScramSyntaxError('malformed SCRAM client nonce')
    this.#gs2Header = `${match[1]},,`
    this.#clientFirstBare = match[3]!
    this.#nonce = clientNonce + this.#serverNonce
    this.#serverFirst = `r=${this.#nonce},s=${this.#credentials.salt.toString('base64')},i=${this.#credentials.iterations}`
    return this.#serverFirst
  }

  /** Takes the client-final-message; returns the server-final-message, or undefined for a wrong password. */
  final(clientFinal: string): string | undefined {
    if (!this.#serverFirst) throw new ScramSyntaxError('SCRAM client-final-message before client-first-message')
    const proofAt = clientFinal.lastIndexOf(',p=')
    if (proofAt < 0) throw new ScramSyntaxError('SCRAM client-final-message without a proof')
    const withoutProof = clientFinal.slice(0, proofAt)
    const fields = attributes(withoutProof)
    if (fields[0]?.[0] !== 'c' || fields[1]?.[0] !== 'r') throw new ScramSyntaxError('malformed SCRAM client-final-message')
    if (fields[0][1] !== Buffer.from(this.#gs2Header, 'utf8').toString('base64')) throw new ScramSyntaxError('SCRAM channel binding does not match the client-first-message')
    if (fields[1][1] !== this.#nonce) throw new ScramSyntaxError('SCRAM nonce does not match')
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64')
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`
    const { storedKey, serverKey } = this.#credentials
    const signature = hmac(storedKey, authMessage)
    if (proof.length !== signature.length) return undefined
    const clientKey = Buffer.alloc(signature.length)
    for (let i = 0; i < signature.length; i++) clientKey[i] = proof[i]! ^ signature[i]!
    if (!timingSafeEqual(sha256(clientKey), storedKey)) return undefined
    return `v=${hmac(serverKey, authMessage).toString('base64')}`
  }
}
