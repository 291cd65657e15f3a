import { Worker } from 'node:worker_threads'

/**
 * PGlite (PostgreSQL compiled to WASM) runs on a worker thread of the owning process. A query
 * blocks the thread that runs it for its whole duration; on a worker thread that leaves the
 * owner's main thread free to keep its ownership lock fresh, serve other connections' sockets and
 * do its own work (a worker process embeds while it serves the database to other processes).
 *
 * The thread's code is plain JavaScript in a string (it must load as-is from the TypeScript
 * sources in tests and from dist/ in the package); it only feeds protocol messages to PGlite and
 * returns the raw output.
 */
const HOST_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { createRequire } = require('node:module')
const load = createRequire(workerData.base)
let db
async function start() {
  const { PGlite } = load('@electric-sql/pglite')
  const { vector } = load('@electric-sql/pglite-pgvector')
  db = await PGlite.create({ dataDir: workerData.dataDir, extensions: { vector } })
}
start().then(
  () => parentPort.postMessage({ ready: true }),
  (error) => parentPort.postMessage({ startError: String(error && error.stack || error) }),
)
parentPort.on('message', async (request) => {
  if (request.op === 'close') {
    try { await db.close() } catch (error) { /* closing anyway */ }
    parentPort.postMessage({ id: request.id, chunks: [] })
    return
  }
  const chunks = []
  try {
    for (const message of request.messages) {
      await db.execProtocolRawStream(message, { onRawData: (data) => { chunks.push(data.slice()) } })
    }
    parentPort.postMessage({ id: request.id, chunks }, chunks.map((c) => c.buffer))
  } catch (error) {
    parentPort.postMessage({ id: request.id, chunks, error: String(error && error.message || error) })
  }
})
`

interface HostReply {
  readonly id?: number
  readonly chunks?: Uint8Array[]
  readonly error?: string
  readonly ready?: boolean
  readonly startError?: string
}

export interface PgliteHost {
  /** Feeds protocol messages to the session, in order; returns everything PGlite wrote back. */
  run(messages: readonly Uint8Array[]): Promise<Uint8Array[]>
  /** Closes the database (flushing it to disk) and ends the thread. */
  close(): Promise<void>
  /** Called once if the thread dies (a crash of the WASM runtime); the data directory stays as it is on disk. */
  onExit(listener: (error: Error) => void): void
}

export async function startPgliteHost(dataDir: string): Promise<PgliteHost> {
  const worker = new Worker(HOST_SOURCE, { eval: true, workerData: { dataDir, base: import.meta.url } })
  const pending = new Map<number, { resolve: (chunks: Uint8Array[]) => void; reject: (error: Error) => void }>()
  let nextId = 0
  let exited: Error | undefined
  const exitListeners: ((error: Error) => void)[] = []

  await new Promise<void>((resolve, reject) => {
    const onMessage = (reply: HostReply) => {
      worker.off('error', onError)
      if (reply.ready) resolve()
      else reject(new Error(reply.startError ?? 'the embedded database did not start'))
    }
    const onError = (error: Error) => reject(error)
    worker.once('message', onMessage)
    worker.once('error', onError)
  }).catch(async (error: unknown) => {
    await worker.terminate()
    throw error
  })

  worker.on('message', (reply: HostReply) => {
    if (reply.id === undefined) return
    const waiter = pending.get(reply.id)
    pending.delete(reply.id)
    if (!waiter) return
    if (reply.error !== undefined) waiter.reject(new Error(`embedded database: ${reply.error}`))
    else waiter.resolve(reply.chunks ?? [])
  })
  const die = (error: Error) => {
    if (exited) return
    exited = error
    for (const waiter of pending.values()) waiter.reject(error)
    pending.clear()
    for (const listener of exitListeners) listener(error)
  }
  worker.on('error', (error) => die(error))
  worker.on('exit', (code) => die(new Error(`the embedded database thread exited (code ${code})`)))

  const call = (request: { op: 'run'; messages: readonly Uint8Array[] } | { op: 'close' }) => new Promise<Uint8Array[]>((resolve, reject) => {
    if (exited) return reject(exited)
    const id = ++nextId
    pending.set(id, { resolve, reject })
    worker.postMessage({ id, ...request })
  })

  return {
    run: (messages) => call({ op: 'run', messages }),
    async close() {
      if (!exited) await call({ op: 'close' }).catch(() => undefined)
      exited ??= new Error('the embedded database is closed')
      await worker.terminate()
    },
    onExit(listener) {
      if (exited) listener(exited)
      else exitListeners.push(listener)
    },
  }
}
