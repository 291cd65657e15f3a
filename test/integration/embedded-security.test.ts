import { execFile } from 'node:child_process'
import { chmod, chown, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { EMBEDDED_DIR } from '../../src/db/embedded.js'
import { startPgliteHost, type PgliteHost } from '../../src/db/embedded/pglite-host.js'
import { SessionServer } from '../../src/db/embedded/session-server.js'
import { lockMigrations, openTarget, type Target } from '../../src/db/target.js'
import { runCli } from '../helpers/cli.js'
import { WireClient, errorFields, wire } from '../helpers/wire.js'

const run = promisify(execFile)
/** A user other than the one running pgml-kit (nobody). */
const OTHER_UID = 65534

/**
 * The embedded database is the current user's alone: other local users can neither read its files
 * nor connect to its server (it listens on 127.0.0.1, which every local user reaches).
 */
describe('the embedded database is private to the user who runs it', () => {
  const cleanups: (() => Promise<unknown>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined)
  })

  beforeAll(() => {
    // Switching to another user (setpriv) and giving a directory away (chown) need root, as on the
    // project's machines and in CI.
    expect(process.getuid?.(), 'these tests act as another user and must run as root').toBe(0)
  })

  /** A project directory other users may traverse, as a home directory often is. */
  async function project(): Promise<string> {
    const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-private-'))
    await chmod(cwd, 0o755)
    cleanups.push(() => rm(cwd, { recursive: true, force: true }))
    return cwd
  }

  /** A project whose data directory is a copy of a freshly initialised one (initdb takes seconds). */
  async function seededProject(): Promise<string> {
    const cwd = await project()
    await cp(inject('pgliteTemplate'), join(cwd, EMBEDDED_DIR, 'data'), { recursive: true })
    return cwd
  }

  async function target(cwd: string): Promise<Target> {
    const t = await openTarget({ cwd, databaseUrl: '' })
    cleanups.push(() => t.close())
    return t
  }

  /** A session server over a real PGlite that records every message that reaches PGlite. */
  async function recordedServer(password: string, options: { authenticationTimeoutMs?: number } = {}) {
    const dir = await project()
    await cp(inject('pgliteTemplate'), join(dir, 'data'), { recursive: true })
    const real = await startPgliteHost(join(dir, 'data'))
    cleanups.push(() => real.close())
    const reached: Uint8Array[] = []
    const host: PgliteHost = {
      run: (messages) => { reached.push(...messages); return real.run(messages) },
      close: () => real.close(),
      onExit: (listener) => real.onExit(listener),
    }
    const server = new SessionServer(host, { host: '127.0.0.1', port: 0, password, ...options })
    const { port } = await server.listen()
    cleanups.push(() => server.stop())
    return { reached, url: (user: string, pass?: string) => `postgres://${user}${pass === undefined ? '' : `:${pass}`}@127.0.0.1:${port}/postgres` }
  }

  async function connectWith(url: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url })
    client.on('error', () => undefined)
    cleanups.push(() => client.end())
    await client.connect()
    return client
  }

  /** What another local user (nobody) gets when reading `file`. */
  async function readAsOtherUser(file: string): Promise<string> {
    return run('setpriv', [`--reuid=${OTHER_UID}`, `--regid=${OTHER_UID}`, '--clear-groups', 'cat', file])
      .then(() => 'read', (error: { stderr?: string }) => error.stderr ?? String(error))
  }

  /** Every path under `.pgml-kit/` that pgml-kit makes (PGlite's files inside data/ left out), with its mode. */
  async function modes(base: string): Promise<Record<string, string>> {
    const out: Record<string, string> = { '.': ((await stat(base)).mode & 0o777).toString(8) }
    for (const entry of await readdir(base, { recursive: true })) {
      if (entry.startsWith(`data${'/'}`)) continue
      out[entry] = ((await stat(join(base, entry))).mode & 0o777).toString(8)
    }
    return out
  }

  it('refuses a client without the password, or with a wrong one, before anything reaches PGlite', async () => {
    const password = 'a'.repeat(64)
    const { reached, url } = await recordedServer(password)
    // The demonstrated attack: any user name, any password.
    await expect(connectWith(url('mallory', 'wrong'))).rejects.toMatchObject({ code: '28P01', message: 'password authentication failed for user "mallory"' })
    await expect(connectWith(url('postgres', 'b'.repeat(64)))).rejects.toMatchObject({ code: '28P01' })
    // The server asks for a password; pg has none to give.
    await expect(connectWith(url('postgres'))).rejects.toThrow(/client password must be a string/)
    // A client that skips authentication and sends a query: refused, and the connection closed.
    const skipper = await WireClient.open(url('postgres'))
    skipper.send(Buffer.concat([wire.startup('postgres'), wire.query('CREATE TABLE intruder (id int)')]))
    const answered = await skipper.readToEnd()
    expect(answered.map((m) => m.type)).toEqual(['R', 'E'])
    expect(answered[0]!.body.readInt32BE(0)).toBe(10)
    expect(answered[0]!.body.subarray(4).toString('utf8')).toBe('SCRAM-SHA-256\0\0')
    expect(errorFields(answered[1]!.body)).toMatchObject({ S: 'FATAL', C: '28P01', M: 'password authentication failed for user "postgres"' })
    // A mechanism other than SCRAM-SHA-256 (e.g. the password in clear): a protocol violation.
    const plain = await WireClient.open(url('postgres'))
    plain.send(Buffer.concat([wire.startup('postgres'), wire.saslInitialResponse('PLAIN', `\0postgres\0${password}`)]))
    expect((await plain.readToEnd()).map((m) => m.type === 'E' ? errorFields(m.body).C : m.type)).toEqual(['R', '08P01'])
    await plain.closed
    expect(reached).toEqual([])

    const client = await connectWith(url('postgres', password))
    expect((await client.query('SELECT current_user AS who, to_regclass($1) AS intruder', ['intruder'])).rows).toEqual([{ who: 'postgres', intruder: null }])
    expect(reached.length).toBeGreaterThan(0)
  })

  it('hands pgml-kit clients a URL with the password, which stays the same across owners', async () => {
    const cwd = await seededProject()
    const first = await openTarget({ cwd, databaseUrl: '' })
    const password = decodeURIComponent(new URL(first.url).password)
    expect(password).toMatch(/^[0-9a-f]{64}$/)
    expect(first.description).not.toContain(password)
    expect((await readFile(join(cwd, EMBEDDED_DIR, 'password'), 'utf8')).trim()).toBe(password)
    // Without it, the same server refuses.
    const bare = new URL(first.url)
    bare.password = ''
    await expect(connectWith(bare.toString())).rejects.toThrow(/client password must be a string/)
    await first.close()
    const second = await target(cwd)
    expect(decodeURIComponent(new URL(second.url).password)).toBe(password)
    const client = await second.connect('test')
    cleanups.push(() => client.end())
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }])
  })

  it('refuses a password file it did not make', async () => {
    const cwd = await project()
    await mkdir(join(cwd, EMBEDDED_DIR), { mode: 0o700 })
    await writeFile(join(cwd, EMBEDDED_DIR, 'password'), 'hunter2\n', { mode: 0o600 })
    await expect(openTarget({ cwd, databaseUrl: '' })).rejects.toMatchObject({
      code: 'EMBEDDED_PASSWORD_INVALID', where: join(cwd, EMBEDDED_DIR, 'password'),
    })
  })

  it('makes .pgml-kit/ 0700 and its files 0600, so another user reads nothing (not even PGlite\'s 0666 files)', async () => {
    const cwd = await project()
    await target(cwd)
    const release = await lockMigrations({ cwd, databaseUrl: '' }, 1_000)
    await release()
    const base = join(cwd, EMBEDDED_DIR)
    expect(await modes(base)).toEqual({
      '.': '700', data: '700', password: '600', owner: '700', 'owner/g000000000001.json': '600', migrate: '700', port: '600',
    })
    // The lock record holds the URL with the password; PGlite writes its own files 0666.
    expect(((await stat(join(base, 'data', 'postgresql.conf'))).mode & 0o777).toString(8)).toBe('666')
    for (const file of ['password', 'owner/g000000000001.json', 'data/postgresql.conf', 'data/pg_hba.conf']) {
      expect(await readAsOtherUser(join(base, file)), file).toMatch(/Permission denied/)
    }
  })

  it('tightens a .pgml-kit/ an earlier version made 0755', async () => {
    const cwd = await project()
    const base = join(cwd, EMBEDDED_DIR)
    await mkdir(join(base, 'owner'), { recursive: true, mode: 0o755 })
    await cp(inject('pgliteTemplate'), join(base, 'data'), { recursive: true })
    await chmod(base, 0o755)
    await chmod(join(base, 'data'), 0o755)
    expect(await readAsOtherUser(join(base, 'data', 'postgresql.conf'))).toBe('read')
    await target(cwd)
    expect(((await stat(base)).mode & 0o777).toString(8)).toBe('700')
    expect(((await stat(join(base, 'data'))).mode & 0o777).toString(8)).toBe('700')
    expect(await readAsOtherUser(join(base, 'data', 'postgresql.conf'))).toMatch(/Permission denied/)
  })

  it('refuses a .pgml-kit/ that belongs to another user, and writes nothing into it', async () => {
    const cwd = await project()
    const base = join(cwd, EMBEDDED_DIR)
    await mkdir(base)
    await chmod(base, 0o777)
    await chown(base, OTHER_UID, OTHER_UID)
    const refused = { code: 'EMBEDDED_DIR_NOT_OWNED', where: base }
    await expect(openTarget({ cwd, databaseUrl: '' })).rejects.toMatchObject(refused)
    await expect(lockMigrations({ cwd, databaseUrl: '' }, 1_000)).rejects.toMatchObject(refused)
    expect((await runCli(['init'], { cwd })).code).toBe(0)
    const cli = await runCli(['status'], { cwd })
    expect(cli.code, cli.stderr).toBe(1)
    expect(cli.stderr).toContain(`${base} belongs to another user (uid ${OTHER_UID}, not 0)`)
    expect(cli.stderr).not.toMatch(/\n\s+at /)
    expect(await readdir(base)).toEqual([])
    expect(((await stat(base)).mode & 0o777).toString(8)).toBe('777')

    // Its data directory alone belonging to another user is refused too.
    const other = await project()
    const data = join(other, EMBEDDED_DIR, 'data')
    await mkdir(data, { recursive: true })
    await chown(data, OTHER_UID, OTHER_UID)
    await expect(openTarget({ cwd: other, databaseUrl: '' })).rejects.toMatchObject({ code: 'EMBEDDED_DIR_NOT_OWNED', where: data })
    expect(await readdir(data)).toEqual([])

    // Something that is not a directory.
    const third = await project()
    await writeFile(join(third, EMBEDDED_DIR), '')
    await expect(openTarget({ cwd: third, databaseUrl: '' })).rejects.toMatchObject({ code: 'EMBEDDED_DIR_INVALID' })
  })

  it('closes a connection whose message is longer than the limit, before reading its body', async () => {
    const t = await target(await seededProject())
    // After authentication: a Query that claims 2 GB.
    const greedy = await WireClient.connect(t.url)
    const header = Buffer.alloc(5)
    header.write('Q', 0, 'latin1')
    header.writeInt32BE(0x7fffffff, 1)
    greedy.send(header)
    const answered = await greedy.readToEnd()
    expect(answered.map((m) => m.type)).toEqual(['E'])
    expect(errorFields(answered[0]!.body)).toMatchObject({ C: '08P01', M: expect.stringContaining('message of 2147483647 bytes is longer than the 134217728 bytes') })
    // Before authentication the limit is a few kilobytes: a 1 MB "password" is not waited for.
    const early = await WireClient.open(t.url)
    const saslHeader = Buffer.alloc(5)
    saslHeader.write('p', 0, 'latin1')
    saslHeader.writeInt32BE(1_000_000, 1)
    early.send(wire.startup('postgres'))
    expect((await early.readMessage())?.type).toBe('R')
    early.send(saslHeader)
    const refused = await early.readToEnd()
    expect(refused.map((m) => m.type)).toEqual(['E'])
    expect(errorFields(refused[0]!.body)).toMatchObject({ C: '08P01', M: expect.stringContaining('longer than the 10000 bytes') })
    // The limit rises as soon as the password is proven, even for a message sent in the same write.
    const eager = await WireClient.connect(t.url, wire.query(`SELECT length('${'x'.repeat(20_000)}') AS n`))
    cleanups.push(async () => eager.destroy())
    expect(await eager.readUntilReady()).toEqual({ rows: [['20000']], errors: [] })
    // The server goes on serving others.
    const client = await t.connect('test')
    cleanups.push(() => client.end())
    expect((await client.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }])
  })

  it('closes a connection that does not authenticate in time, and leaves authenticated ones alone', async () => {
    const { url } = await recordedServer('c'.repeat(64), { authenticationTimeoutMs: 300 })
    const authenticated = await connectWith(url('postgres', 'c'.repeat(64)))
    const idle = await WireClient.open(url('postgres'))
    idle.send(wire.startup('postgres'))
    // The authenticated connection's timer ran out first: it is still open after the idle one's did.
    await idle.closed
    expect(await idle.readToEnd()).toHaveLength(1)
    expect((await authenticated.query('SELECT 3 AS three')).rows).toEqual([{ three: 3 }])
  })
})
