import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { currentHolder } from '../../src/db/embedded/owner-lock.js'
import { MODELS_DIR } from '../helpers/embedders.js'
import { startCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'

/**
 * `pgml-kit dev` keeps the embedded database served for psql until Ctrl-C, whoever owned it when
 * it started: when the owner exits (stopped, or killed), dev takes over serving it — on the URL it
 * printed — without being restarted; and when dev is the owner and stops, the other clients take
 * over as they always did.
 */
interface DevLine { readonly url: string; readonly passwordFile: string; readonly servedBy: 'this process' | 'another pgml-kit process'; readonly pid: number; readonly change?: string }

class Running {
  stdout = ''
  stderr = ''
  readonly closed: Promise<number | null>
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => { this.stdout += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.closed = new Promise((resolve) => child.on('close', resolve))
  }

  /** `dev --json` prints one line for the start and one for every change of who serves the database. */
  get lines(): DevLine[] {
    return this.stdout.split(/\n(?=\{)/).filter((l) => l.trim().endsWith('}')).map((l) => JSON.parse(l) as DevLine)
  }

  /** Waits (bounded) until `dev --json` has printed `n` lines. */
  async line(n: number, what: string): Promise<DevLine> {
    for (let i = 0; i < 600 && this.lines.length < n && this.child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50))
    const line = this.lines[n - 1]
    if (!line) throw new Error(`${what}: dev printed ${this.lines.length} line(s), not ${n}; exit ${this.child.exitCode}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`)
    return line
  }
}

describe('pgml-kit dev and the owner of the embedded database', () => {
  const cleanups: (() => Promise<unknown>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined)
  })

  async function project(): Promise<string> {
    const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-dev-'))
    cleanups.push(() => rm(cwd, { recursive: true, force: true }))
    return cwd
  }

  function start(args: readonly string[], cwd: string): Running {
    const running = new Running(startCli(args, { cwd }))
    cleanups.push(async () => { running.child.kill('SIGKILL'); await running.closed })
    return running
  }

  /** The URL as psql gets it: the masked URL dev printed, with the password from the file it named. */
  async function psqlUrl(line: DevLine, cwd: string): Promise<string> {
    const password = (await readFile(join(cwd, '.pgml-kit', 'password'), 'utf8')).trim()
    expect(line.url).toContain(':***@')
    return line.url.replace(':***@', `:${encodeURIComponent(password)}@`)
  }

  async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
    client.on('error', () => undefined)
    try {
      await client.connect()
      return (await client.query<T>(sql)).rows
    } finally {
      await client.end().catch(() => undefined)
    }
  }

  /** Bounded: tries `sql` on `url` until it answers (the takeover is under way), at most ~30 s. */
  async function answers<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
    let last: unknown
    for (let i = 0; i < 120; i++) {
      try {
        return await query<T>(url, sql)
      } catch (error) {
        last = error
        await new Promise((r) => setTimeout(r, 250))
      }
    }
    throw new Error(`${url.replace(/:[^:@/]+@/, ':***@')} did not answer: ${(last as Error).message}`)
  }

  it.each(['SIGTERM', 'SIGKILL'] as const)('dev started while another process owns the database takes over when the owner gets %s, on the URL it printed', async (signal) => {
    const cwd = await project()
    const owner = start(['dev', '--port', '0', '--json'], cwd)
    const owned = await owner.line(1, 'the owner')
    const dev = start(['dev', '--port', '0', '--json'], cwd)
    const printed = await dev.line(1, 'dev as a client')
    expect(printed.url).toBe(owned.url)
    const url = await psqlUrl(printed, cwd)
    await query(url, 'CREATE TABLE kept (id int PRIMARY KEY)')
    await query(url, 'INSERT INTO kept SELECT generate_series(1, 100)')

    owner.child.kill(signal)
    await owner.closed
    // The URL dev printed keeps working: dev serves the database now, on the same address.
    expect(await answers<{ n: number }>(url, 'SELECT count(*)::int AS n FROM kept')).toEqual([{ n: 100 }])
    expect(owned).toMatchObject({ servedBy: 'this process', pid: owner.child.pid })
    expect(printed).toMatchObject({ servedBy: 'another pgml-kit process', pid: owner.child.pid })
    const change = await dev.line(2, 'the takeover')
    expect(change).toMatchObject({ url: printed.url, servedBy: 'this process', pid: dev.child.pid })
    expect(change.change).toMatch(/took over/)
    expect((await currentHolder(join(cwd, '.pgml-kit', 'owner')))?.pid).toBe(dev.child.pid)
    expect(dev.child.exitCode).toBeNull()

    // Said for people too (one clear line), and dev still stops on Ctrl-C.
    dev.child.kill('SIGTERM')
    expect(await dev.closed, dev.stderr).toBe(0)
    const text = start(['dev', '--port', '0'], cwd)
    for (let i = 0; i < 600 && !/Ctrl-C/.test(text.stdout); i++) await new Promise((r) => setTimeout(r, 50))
    const textClient = start(['dev', '--port', '0'], cwd)
    for (let i = 0; i < 600 && !/Ctrl-C/.test(textClient.stdout); i++) await new Promise((r) => setTimeout(r, 50))
    expect(textClient.stdout).toMatch(/served by another pgml-kit process/)
    text.child.kill('SIGKILL')
    await text.closed
    for (let i = 0; i < 600 && !/took over/.test(textClient.stdout); i++) await new Promise((r) => setTimeout(r, 50))
    expect(textClient.stdout).toMatch(/took over the embedded database .*pid \d+.* exited.*same URL/)
    expect(textClient.stderr).toBe('')
  })

  it('when dev is the owner and stops, a worker connected to it takes over and finishes the queue; a second dev keeps serving the URL it printed', async () => {
    const cwd = await project()
    const config: PgmlKitConfig = {
      embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
      tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16 }, mode: 'queue' } } } },
    }
    const project_ = new TestProject({ cwd, databaseUrl: '', url: '', query: async () => [], session: async () => { throw new Error('no database') }, close: async () => undefined })
    await project_.withDocumentsTable(config)
    await project_.generate()
    await project_.migrate()

    const owner = start(['dev', '--port', '0', '--json'], cwd)
    await owner.line(1, 'the owner')
    const worker = start(['worker', '--batch-size', '8', '--poll', '50'], cwd)
    const dev = start(['dev', '--port', '0', '--json'], cwd)
    const printed = await dev.line(1, 'dev as a client')
    const url = await psqlUrl(printed, cwd)
    await query(url, `INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 50) AS i`)
    for (let i = 0; i < 600 && !/written/.test(worker.stderr); i++) await new Promise((r) => setTimeout(r, 50))

    owner.child.kill('SIGTERM')
    expect(await owner.closed, owner.stderr).toBe(0)
    // Whichever of the two took the database over, the URL dev printed still reaches it.
    await answers(url, `INSERT INTO documents (title, body) SELECT 'later ' || i, 'body ' || i FROM generate_series(1, 50) AS i`)
    const left = async () => (await answers<{ n: number }>(url, `SELECT ((SELECT count(*) FROM pgml_kit.embedding_jobs) + (SELECT count(*) FROM documents WHERE body_embedding IS NULL))::int AS n`))[0]!.n
    for (let i = 0; i < 600 && (await left()) > 0; i++) await new Promise((r) => setTimeout(r, 100))
    expect(await left()).toBe(0)
    const holder = await currentHolder(join(cwd, '.pgml-kit', 'owner'))
    expect([worker.child.pid, dev.child.pid]).toContain(holder?.pid)
    const change = await dev.line(2, 'the change of owner')
    expect(change).toMatchObject({ url: printed.url, pid: holder?.pid, servedBy: holder?.pid === dev.child.pid ? 'this process' : 'another pgml-kit process' })

    worker.child.kill('SIGTERM')
    expect(await worker.closed, worker.stderr).toBe(0)
    expect(worker.stderr).not.toMatch(/internal error|Unhandled|uncaught/i)
    dev.child.kill('SIGTERM')
    expect(await dev.closed, dev.stderr).toBe(0)
  })
})
