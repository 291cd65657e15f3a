import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { openTarget, type Target } from '../../src/db/target.js'
import { startCli } from '../helpers/cli.js'
import { WireClient, wire } from '../helpers/wire.js'

/**
 * The embedded database serves one PGlite session to many connections. These tests hold it to a
 * server's promises: every query gets its own result, whatever else runs; a connection that dies
 * mid-conversation leaves nothing behind; the owner process dying loses nothing committed.
 */
describe('the embedded database server', () => {
  const cleanups: (() => Promise<unknown>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined)
  })

  async function project(): Promise<string> {
    const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-server-'))
    cleanups.push(() => rm(cwd, { recursive: true, force: true }))
    return cwd
  }

  async function target(cwd: string): Promise<Target> {
    const t = await openTarget({ cwd, databaseUrl: '' })
    cleanups.push(() => t.close())
    return t
  }

  async function client(t: Target): Promise<pg.Client> {
    const c = await t.connect('test')
    cleanups.push(() => c.end())
    return c
  }

  it('runs an extended-protocol cycle whole, even when its bytes arrive in pieces with other queries between them', async () => {
    const t = await target(await project())
    const other = await client(t)
    const a = await WireClient.connect(t.url)
    cleanups.push(async () => a.destroy())
    // Parse, then half of the Bind; another connection's query arrives in the gap.
    a.send(wire.parse('SELECT $1::text AS a, $2::text AS b'))
    const bind = wire.bind(['first', 'second'])
    a.send(bind.subarray(0, 9))
    await new Promise((resolve) => setTimeout(resolve, 100))
    let otherDone = false
    const otherQuery = other.query('SELECT $1::int AS x', [42]).then((r) => { otherDone = true; return r.rows })
    await new Promise((resolve) => setTimeout(resolve, 200))
    // The session belongs to the unfinished cycle: the other query waits instead of replacing its statement.
    expect(otherDone).toBe(false)
    a.send(Buffer.concat([bind.subarray(9), wire.execute(), wire.sync()]))
    expect(await a.readUntilReady()).toEqual({ rows: [['first', 'second']], errors: [] })
    expect(await otherQuery).toEqual([{ x: 42 }])
  })

  it('gives every connection its own results under concurrent extended-protocol queries', async () => {
    const t = await target(await project())
    const clients = await Promise.all(Array.from({ length: 10 }, () => client(t)))
    const problems: string[] = []
    // Large parameters arrive in several socket reads; different statement shapes make a Bind
    // that lands on another connection's Parse fail, and a result that goes astray show.
    await Promise.all(clients.map(async (c, ci) => {
      for (let i = 0; i < 40; i++) {
        const width = (ci + i) % 4 + 1
        const params = Array.from({ length: width }, (_, k) => `${ci}:${i}:${k}:${k === 0 ? 'x'.repeat(ci % 2 === 0 ? 150_000 : 10) : ''}`)
        const text = `SELECT ${params.map((_, k) => `$${k + 1}::text AS p${k}`).join(', ')}, (SELECT count(*) FROM generate_series(1, ${(i % 3) * 3000})) AS n`
        try {
          const { rows } = await c.query<Record<string, string>>(text, params)
          if (rows.length !== 1 || params.some((p, k) => rows[0]![`p${k}`] !== p)) problems.push(`client ${ci} query ${i}: wrong result`)
        } catch (error) {
          problems.push(`client ${ci} query ${i}: ${(error as Error).message}`)
        }
      }
    }))
    expect(problems).toEqual([])
  })

  it('keeps a transaction to its connection, and rolls back what a vanished connection left open', async () => {
    const t = await target(await project())
    const [a, b] = [await client(t), await client(t)]
    await a.query('CREATE TABLE items (id int PRIMARY KEY, owner text)')
    await a.query('BEGIN')
    await a.query(`INSERT INTO items VALUES (1, 'a')`)
    // b's statement waits for a's transaction to end instead of running inside it.
    let bDone = false
    const bInsert = b.query(`INSERT INTO items VALUES (2, 'b')`).then(() => { bDone = true })
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(bDone).toBe(false)
    await a.query('ROLLBACK')
    await bInsert
    expect((await b.query('SELECT id FROM items ORDER BY id')).rows).toEqual([{ id: 2 }])

    // A raw connection opens a transaction, leaves an extended-protocol cycle half sent, and vanishes.
    const raw = await WireClient.connect(t.url)
    raw.send(wire.query(`BEGIN; INSERT INTO items VALUES (3, 'vanished')`))
    await raw.readUntilReady()
    raw.send(wire.parse('SELECT 1'))
    await new Promise((resolve) => setTimeout(resolve, 100))
    raw.destroy()
    expect((await b.query('SELECT id FROM items ORDER BY id')).rows).toEqual([{ id: 2 }])
    expect((await a.query('SELECT $1::int AS v', [7])).rows).toEqual([{ v: 7 }])
  })

  it('when the owner process is killed, another process takes the data over and nothing committed is lost', async () => {
    const cwd = await project()
    const owner = startCli(['dev', '--port', '0', '--json'], { cwd })
    cleanups.push(async () => { owner.kill('SIGKILL') })
    await new Promise<void>((resolve, reject) => {
      let out = ''
      owner.stdout?.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('"url"')) resolve() })
      owner.on('close', (code) => reject(new Error(`dev exited with ${code}`)))
    })
    const t = await target(cwd)
    expect(t.description).toContain('served by another pgml-kit process')
    const c = await client(t)
    await c.query('CREATE TABLE kept (id int PRIMARY KEY)')
    await c.query('INSERT INTO kept SELECT generate_series(1, 500)')
    const closed = new Promise((resolve) => owner.on('close', resolve))
    owner.kill('SIGKILL')
    await closed
    // The old connection fails its next query (and does not crash this process).
    await expect(c.query('SELECT 1')).rejects.toThrow()
    const after = await client(t)
    expect(t.description).not.toContain('served by another')
    expect((await after.query('SELECT count(*)::int AS n FROM kept')).rows).toEqual([{ n: 500 }])
  })
})
