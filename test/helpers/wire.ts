import { Socket } from 'node:net'

/**
 * A raw PostgreSQL protocol client for tests that need to control exactly which bytes reach the
 * server and when (half a message, a cycle without Sync, a connection that vanishes).
 */
export class WireClient {
  readonly #socket = new Socket()
  #received = Buffer.alloc(0)
  #waiters: (() => void)[] = []

  static async connect(url: string): Promise<WireClient> {
    const client = new WireClient()
    const parsed = new URL(url)
    await new Promise<void>((resolve, reject) => {
      client.#socket.once('error', reject)
      client.#socket.connect(Number(parsed.port), parsed.hostname, resolve)
    })
    client.#socket.on('error', () => undefined)
    client.#socket.on('data', (data: Buffer) => {
      client.#received = Buffer.concat([client.#received, data])
      for (const waiter of client.#waiters.splice(0)) waiter()
    })
    const params = Buffer.from('user\0postgres\0database\0postgres\0\0', 'latin1')
    const startup = Buffer.alloc(8 + params.length)
    startup.writeInt32BE(startup.length, 0)
    startup.writeInt32BE(196608, 4)
    params.copy(startup, 8)
    client.send(startup)
    await client.readUntilReady()
    return client
  }

  send(bytes: Uint8Array): void {
    this.#socket.write(bytes)
  }

  destroy(): void {
    this.#socket.destroy()
  }

  /** Reads backend messages up to and including the next ReadyForQuery; returns the text of DataRow columns and error messages. */
  async readUntilReady(): Promise<{ rows: (string | null)[][]; errors: string[] }> {
    const rows: (string | null)[][] = []
    const errors: string[] = []
    for (;;) {
      while (this.#received.length >= 5 && this.#received.length >= 1 + this.#received.readInt32BE(1)) {
        const length = this.#received.readInt32BE(1)
        const type = String.fromCharCode(this.#received[0]!)
        const body = this.#received.subarray(5, 1 + length)
        this.#received = this.#received.subarray(1 + length)
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
          const field = body.toString('utf8').split('\0').find((f) => f.startsWith('M'))
          errors.push(field?.slice(1) ?? 'error')
        } else if (type === 'Z') {
          return { rows, errors }
        }
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve))
    }
  }
}

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
  query: (sql: string) => frame('Q', cstring(sql)),
  parse: (sql: string) => frame('P', cstring(''), cstring(sql), int16(0)),
  /** Binds the unnamed statement with text parameters. */
  bind: (params: readonly string[]) => frame('B', cstring(''), cstring(''), int16(0), int16(params.length),
    ...params.flatMap((p) => { const v = Buffer.from(p, 'utf8'); return [int32(v.length), v] }), int16(0)),
  execute: () => frame('E', cstring(''), int32(0)),
  sync: () => frame('S'),
}
