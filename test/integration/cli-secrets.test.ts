import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { quoteIdent, quoteLiteral } from '../../src/sql/quote.js'
import { runCli, type CliOptions, type CliResult } from '../helpers/cli.js'
import { serverTier, tiers, withClient } from '../helpers/targets.js'

/**
 * No command prints a password, whatever form it is given in, and every failure to connect is one
 * line naming the target (password masked) and what to do, from every command that connects.
 */

/** A password with every character that means something in a URL or a keyword/value string; Zq9 and Xy7 are found nowhere else. */
const SECRET = `Zq9 @/?&=#:'"%41+;\\Xy7`

interface Place {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
}

interface Form {
  readonly name: string
  /** A connection string with `password` in it, and the environment that goes with it. */
  readonly url: (at: Place, password: string) => string
  readonly env?: (password: string) => Record<string, string>
  /** Read by pgml-kit (a connection is tried) or refused as not a PostgreSQL URL (exit 2). */
  readonly read: boolean
}

const FORMS: readonly Form[] = [
  { name: 'userinfo', read: true, url: (p, pw) => `postgres://${p.user}:${encodeURIComponent(pw)}@${p.host}:${p.port}/${p.database}` },
  { name: 'userinfo, not percent-encoded', read: false, url: (p, pw) => `postgres://${p.user}:${pw}@${p.host}:${p.port}/${p.database}` },
  { name: 'query string', read: true, url: (p, pw) => `postgres://${p.host}:${p.port}/${p.database}?user=${p.user}&password=${encodeURIComponent(pw)}` },
  { name: 'query string, postgresql://, key percent-encoded', read: true, url: (p, pw) => `postgresql://${p.host}:${p.port}/${p.database}?pass%77ord=${encodeURIComponent(pw)}&user=${p.user}&sslmode=disable` },
  { name: 'query string, PASSWORD in upper case', read: true, url: (p, pw) => `postgres://${p.host}:${p.port}/${p.database}?user=${p.user}&PASSWORD=${encodeURIComponent(pw)}` },
  { name: 'keyword/value', read: false, url: (p, pw) => `host=${p.host} port=${p.port} dbname=${p.database} user=${p.user} password='${pw.replace(/['\\]/g, '\\$&')}'` },
  { name: '$PGPASSWORD', read: true, url: (p) => `postgres://${p.user}@${p.host}:${p.port}/${p.database}`, env: (pw) => ({ PGPASSWORD: pw }) },
]

function expectNoSecret(result: CliResult, what: string): void {
  const printed = `${result.stdout}\n${result.stderr}`
  expect(printed, what).not.toMatch(/Zq9|Xy7/)
  expect(printed, what).not.toContain(encodeURIComponent(SECRET))
}

function expectNoStack(result: CliResult, what: string): void {
  expect(result.stderr, what).not.toMatch(/internal error|\n\s+at /)
}

/** Each test starts 8 to 20 CLI processes (about a second each, more on a busy machine). */
const SPAWNING = 600_000

/** Runs `tasks` at most `limit` at a time (each starts a CLI process). */
async function inBatches<T>(tasks: readonly (() => Promise<T>)[], limit = 4): Promise<T[]> {
  const results: T[] = []
  for (let i = 0; i < tasks.length; i += limit) results.push(...await Promise.all(tasks.slice(i, i + limit).map((task) => task())))
  return results
}

/** A project as `init` and `generate` leave it: the documents table, its embedding column (mode queue) and HNSW index. */
async function project(cleanups: (() => Promise<void>)[]): Promise<string> {
  const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-secrets-'))
  cleanups.push(() => rm(cwd, { recursive: true, force: true }))
  expect((await runCli(['init'], { cwd })).code).toBe(0)
  const configPath = join(cwd, 'pgml-kit.config.ts')
  await writeFile(configPath, (await readFile(configPath, 'utf8')).replace("mode: 'app'", "mode: 'queue'"))
  expect((await runCli(['generate', '--name', 'embeddings'], { cwd })).code).toBe(0)
  return cwd
}

/** Every command that opens a connection (`dev` serves the embedded database only). */
const CONNECTING: readonly (readonly string[])[] = [
  ['status'], ['status', '--json'], ['status', '--drift'], ['migrate'], ['migrate', '--json'], ['plan'], ['generate', '--name', 'more'],
  ['worker', '--once'], ['backfill', 'documents.body_embedding'], ['search', 'documents.body_embedding', 'homes'],
  ['index', 'check', 'documents.body_embedding'], ['index', 'repair'], ['parity', 'documents.body_embedding'], ['queue', 'retry'],
  ['materialize'], ['training-set', 'x', '--to', 'x_rows'], ['train', 'x'], ['models', 'x'], ['deploy', 'x', '--strategy', 'best_score'],
]

/** The commands the security review found printing a password given in the query string. */
const PRINTING: readonly (readonly string[])[] = [
  ['status'], ['status', '--json'], ['status', '--drift'], ['migrate'], ['migrate', '--json'], ['plan', '--format', 'markdown'], ['worker', '--once'],
  ['index', 'check', 'documents.body_embedding'],
]

describe('passwords and connection failures in the CLI', () => {
  const cleanups: (() => Promise<void>)[] = []
  let cwd: string
  beforeAll(async () => {
    cwd = await project(cleanups)
  })
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  const refused: Place = { host: '127.0.0.1', port: 1, database: 'app', user: 'app' }
  for (const form of FORMS) {
    it(`no command prints a password given in the ${form.name} (nothing listening at the address)`, { timeout: SPAWNING }, async () => {
      const url = form.url(refused, SECRET)
      const env = form.env?.(SECRET) ?? {}
      const runs = PRINTING.map((args) => async () => {
        // plan reads the database for sizing; one in $DATABASE_URL that does not answer is a note, not an error.
        const result = args[0] === 'plan' ? await runCli(args, { cwd, databaseUrl: url, env }) : await runCli([...args, '--database-url', url], { cwd, env })
        return { args, result }
      })
      for (const { args, result } of await inBatches(runs)) {
        const what = `${args.join(' ')}: ${result.stdout}${result.stderr}`
        expectNoSecret(result, what)
        expectNoStack(result, what)
        if (args[0] === 'plan') {
          expect(result.code, what).toBe(0)
          expect(result.stderr, what).toMatch(/^note not checked or sized: \$DATABASE_URL did not answer \((cannot connect to|".*" is not a PostgreSQL URL)/)
          continue
        }
        expect(result.code, what).toBe(form.read ? 1 : 2)
        const error = args.includes('--json') ? (JSON.parse(result.stdout) as { error: { code: string; where: string | null } }).error : undefined
        if (error) expect(error.code, what).toBe(form.read ? 'CONNECTION_FAILED' : 'DATABASE_URL_INVALID')
        if (form.read) expect(error?.where ?? result.stderr, what).toContain(form.name === 'userinfo' ? 'postgres://app:***@127.0.0.1:1/app' : '127.0.0.1:1/app')
      }
    })
  }

  for (const target of [
    { host: 'db.invalid', port: 5432, said: 'the host in the URL cannot be found (db.invalid)', hint: 'check the host name in the URL' },
    { host: '127.0.0.1', port: 1, said: 'nothing is listening at 127.0.0.1:1', hint: 'start PostgreSQL, or check the host and port in the URL' },
  ]) {
    it(`every command that connects says in one line, with the fix, that ${target.said}`, { timeout: SPAWNING }, async () => {
      const password = 'S3cr3tPw'
      const url = `postgres://${target.host}:${target.port}/app?user=app&password=${password}`
      const shown = `postgres://${target.host}:${target.port}/app?user=app&password=***`
      const runs = CONNECTING.map((args) => async () => ({ args, result: await runCli([...args, '--database-url', url], { cwd }) }))
      for (const { args, result } of await inBatches(runs)) {
        const what = `${args.join(' ')}: ${result.stdout}${result.stderr}`
        expect(result.code, what).toBe(1)
        expect(`${result.stdout}${result.stderr}`, what).not.toContain(password)
        expectNoStack(result, what)
        if (args.includes('--json')) {
          expect(JSON.parse(result.stdout), what).toEqual({ error: { code: 'CONNECTION_FAILED', message: `cannot connect to ${shown}: ${target.said}`, where: shown, hint: target.hint } })
          expect(result.stderr, what).toBe('')
        } else {
          // The worker says what it is about to serve first.
          const banner = args[0] === 'worker' ? `worker on ${shown}: documents.body_embedding\n` : ''
          expect(result.stderr, what).toBe(`${banner}error cannot connect to ${shown}: ${target.said}\n  hint ${target.hint}\n`)
        }
      }
    })
  }
})

describe('a worker started before its database answers', () => {
  it('tries again for --wait seconds, a line each time, then gives up with the one-line error', { timeout: SPAWNING }, async () => {
    const cleanups: (() => Promise<void>)[] = []
    try {
      const cwd = await project(cleanups)
      const url = 'postgres://app:S3cr3tPw@127.0.0.1:1/app'
      const result = await runCli(['worker', '--wait', '1.5', '--database-url', url], { cwd })
      expect(result.code, result.stderr).toBe(1)
      const lines = result.stderr.trimEnd().split('\n')
      const retries = lines.filter((l) => l.startsWith('cannot connect to postgres://app:***@127.0.0.1:1/app: nothing is listening at 127.0.0.1:1; trying again in '))
      expect(retries.length, result.stderr).toBeGreaterThanOrEqual(2)
      expect(lines.slice(-2), result.stderr).toEqual(['error cannot connect to postgres://app:***@127.0.0.1:1/app: nothing is listening at 127.0.0.1:1', '  hint start PostgreSQL, or check the host and port in the URL'])
      expect(result.stderr).not.toContain('S3cr3tPw')
      expect(result.stderr).not.toContain('lost the connection')
    } finally {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
    }
  })
})

describe.each(tiers.filter((t) => t.name === 'server'))('passwords on the $name tier', (tier) => {
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  /** A database, and a login role whose password is SECRET. */
  async function setup(): Promise<{ cwd: string; at: Place }> {
    const cwd = await project(cleanups)
    const db = await tier.create()
    cleanups.push(() => db.close())
    const role = `pgml_kit_secret_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
    const admin = serverTier!.url
    await withClient(admin, (c) => c.query(`CREATE ROLE ${quoteIdent(role)} LOGIN SUPERUSER PASSWORD ${quoteLiteral(SECRET)}`))
    // After the database (dropped with db.close) that holds what the role created.
    cleanups.unshift(() => withClient(admin, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)).then(() => undefined))
    const url = new URL(db.url)
    return { cwd, at: { host: url.hostname, port: Number(url.port), database: url.pathname.slice(1), user: role } }
  }

  it('a server that refuses the password: one line, the password masked, in every form', { timeout: SPAWNING }, async () => {
    const { cwd, at } = await setup()
    const runs = FORMS.filter((f) => f.read).flatMap((form) => [['status'], ['status', '--json'], ['migrate'], ['worker', '--once'], ['search', 'documents.body_embedding', 'homes']].map((args) => async () => {
      // The wrong password, but one of the same characters.
      const wrong = `${SECRET}!`
      const result = await runCli([...args, '--database-url', form.url(at, wrong)], { cwd, env: form.env?.(wrong) ?? {} })
      return { form, args, result }
    }))
    for (const { form, args, result } of await inBatches(runs)) {
      const what = `${args.join(' ')} with a wrong password in the ${form.name}: ${result.stdout}${result.stderr}`
      expect(result.code, what).toBe(1)
      expectNoSecret(result, what)
      expectNoStack(result, what)
      // In upper case, PASSWORD is not a parameter pg reads: the server is asked with no password at all.
      const said = form.name.includes('upper case') ? `the server asks ${at.user} for a password and none was given` : `password authentication failed for ${at.user}`
      expect(`${result.stdout}${result.stderr}`, what).toContain(said)
    }
  })

  it('commands that work print the target with the password masked: password in the query string, in the URL, in $PGPASSWORD', { timeout: SPAWNING }, async () => {
    const { cwd, at } = await setup()
    const inQuery = FORMS.find((f) => f.name === 'query string')!
    const url = inQuery.url(at, SECRET)
    const masked = `postgres://${at.host}:${at.port}/${at.database}?user=${at.user}&password=***`
    const run = async (args: readonly string[], options: Partial<CliOptions> = {}) => {
      const result = await runCli([...args, ...(options.databaseUrl === undefined ? ['--database-url', url] : [])], { cwd, ...options })
      const what = `${args.join(' ')}: ${result.stdout}${result.stderr}`
      expect(result.code, what).toBe(0)
      expectNoSecret(result, what)
      return result
    }
    expect((await run(['migrate'])).stdout).toMatch(/^applied .*create-documents\n/)
    expect(JSON.parse((await run(['migrate', '--json'])).stdout)).toMatchObject({ target: masked, ran: [] })
    expect((await run(['migrate'])).stdout).toBe(`Nothing to migrate up on ${masked}.\n`)
    await withClient(`postgres://${encodeURIComponent(at.user)}:${encodeURIComponent(SECRET)}@${at.host}:${at.port}/${at.database}`, (c) => c.query(`
      INSERT INTO documents (title, body) SELECT 'doc ' || i, 'a house with a garden number ' || i FROM generate_series(1, 300) AS i; ANALYZE documents`))
    expect((await run(['worker', '--once'])).stderr).toContain(`worker on ${masked}: documents.body_embedding\n`)
    expect((await run(['status'])).stdout).toContain(`target    ${masked}\n`)
    expect(JSON.parse((await run(['status', '--json'])).stdout)).toMatchObject({ target: { kind: 'server', description: masked } })
    expect((await run(['status', '--drift'])).stdout).toContain('no drift')
    expect((await run(['plan', '--format', 'markdown'])).stdout).toContain(`Row counts from ${masked}`)
    expect((await run(['index', 'check', 'documents.body_embedding', '--queries', '5', '--grid', '10,40'])).stdout).toContain('ef_search')
    // generate sized from the database notes where the row counts came from in the migration it writes: a file that is committed.
    const configPath = join(cwd, 'pgml-kit.config.ts')
    await writeFile(configPath, (await readFile(configPath, 'utf8')).replace('m: 16', 'm: 32'))
    await run(['generate', '--name', 'rebuild-index'])
    const files = await Promise.all((await readdir(join(cwd, 'migrations'))).map((f) => readFile(join(cwd, 'migrations', f), 'utf8')))
    expect(files.join('\n')).toContain(`rows in public.documents (${masked})`)
    expect(files.join('\n')).not.toMatch(/Zq9|Xy7/)
    // The same password in the URL's userinfo, and in $PGPASSWORD.
    const inUserinfo = FORMS.find((f) => f.name === 'userinfo')!.url(at, SECRET)
    expect((await run(['status'], { databaseUrl: inUserinfo })).stdout).toContain(`target    postgres://${at.user}:***@${at.host}:${at.port}/${at.database}\n`)
    const withEnv = FORMS.find((f) => f.name === '$PGPASSWORD')!
    expect((await run(['status', '--json'], { databaseUrl: withEnv.url(at, SECRET), env: withEnv.env!(SECRET) })).stdout).toContain(`"description": "postgres://${at.user}@${at.host}:${at.port}/${at.database}"`)
  })
})
