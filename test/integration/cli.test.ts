import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openTarget } from '../../src/db/target.js'
import { runCli, startCli } from '../helpers/cli.js'
import { serverTier, tiers, type TestDatabase } from '../helpers/targets.js'

describe.each(tiers)('pgml-kit CLI on the $name tier', (tier) => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  /**
   * A project directory and a database URL for the CLI: a server database, or (embedded) no URL
   * and a directory whose data nobody has open, so the CLI processes themselves own it.
   */
  async function setup(): Promise<{ cwd: string; databaseUrl: string | undefined; db?: TestDatabase }> {
    if (tier.name === 'server') {
      const db = await tier.create()
      cleanups.push(() => db.close())
      return { cwd: db.cwd, databaseUrl: db.databaseUrl, db }
    }
    const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-cli-'))
    cleanups.push(() => rm(cwd, { recursive: true, force: true }))
    return { cwd, databaseUrl: undefined }
  }

  async function query(cwd: string, databaseUrl: string | undefined, sql: string) {
    const target = await openTarget({ cwd, databaseUrl: databaseUrl ?? '' })
    const pg = await import('pg')
    const client = new pg.default.Client({ connectionString: target.url })
    await client.connect()
    try {
      return (await client.query(sql)).rows
    } finally {
      await client.end()
      await target.close()
    }
  }

  it('init → generate → migrate works in an empty folder, and generate --check guards drift', async () => {
    const { cwd, databaseUrl } = await setup()
    const init = await runCli(['init'], { cwd, databaseUrl })
    expect(init.code).toBe(0)
    expect(init.stdout).toContain('pgml-kit.config.ts')
    expect((await runCli(['init'], { cwd, databaseUrl })).code).toBe(1)

    const plan = await runCli(['plan'], { cwd, databaseUrl })
    expect(plan.code).toBe(0)
    expect(plan.stdout).toMatch(/\[needs-backfill\] add embedding column public\.documents\.body_embedding vector\(128\)/)
    expect(plan.stdout).toContain('CREATE INDEX CONCURRENTLY IF NOT EXISTS "documents_body_embedding_hnsw_cosine_idx"')

    expect((await runCli(['generate'], { cwd, databaseUrl })).code).toBe(2)
    const generate = await runCli(['generate', '--name', 'add-doc-embeddings'], { cwd, databaseUrl })
    expect(generate.code).toBe(0)
    // init's base migration and sample rows, and the two generated files.
    expect((await readdir(join(cwd, 'migrations'))).filter((f) => f.endsWith('.sql'))).toHaveLength(4)
    expect((await runCli(['generate', '--check'], { cwd, databaseUrl })).code).toBe(0)

    const migrate = await runCli(['migrate'], { cwd, databaseUrl })
    expect(migrate.code, migrate.stderr).toBe(0)
    expect(migrate.stdout.match(/^applied /gm)).toHaveLength(4)
    // Each file once (node-pg-migrate's own "### MIGRATION …" lines are not passed through).
    expect(migrate.stdout + migrate.stderr).not.toMatch(/### MIGRATION/)

    const status = await runCli(['status', '--json'], { cwd, databaseUrl })
    expect(status.code).toBe(0)
    const parsed = JSON.parse(status.stdout) as { pending: string[]; applied: unknown[]; capabilities: { vector: { installed: string } }; embeddingColumns: { column: string; model: string }[] }
    expect(parsed.pending).toEqual([])
    expect(parsed.applied).toHaveLength(4)
    expect(parsed.capabilities.vector.installed).toMatch(/^0\.8\./)
    expect(parsed.embeddingColumns).toEqual([expect.objectContaining({ column: 'body_embedding', model: 'pgml-kit/wordnet-static-128' })])

    // The config changes without a generate: --check fails and says what is missing.
    const configPath = join(cwd, 'pgml-kit.config.ts')
    await writeFile(configPath, (await readFile(configPath, 'utf8')).replace('m: 16', 'm: 32'))
    const drift = await runCli(['generate', '--check'], { cwd, databaseUrl })
    expect(drift.code).toBe(1)
    expect(drift.stderr).toMatch(/not generated yet: rebuild hnsw index/)

    // A generated file edited by hand is drift too.
    await writeFile(configPath, (await readFile(configPath, 'utf8')).replace('m: 32', 'm: 16'))
    const [generated] = (await readdir(join(cwd, 'migrations'))).filter((f) => f.endsWith('add-doc-embeddings.sql'))
    await writeFile(join(cwd, 'migrations', generated!), `${await readFile(join(cwd, 'migrations', generated!), 'utf8')}\n-- edited\n`)
    const edited = await runCli(['generate', '--check', '--json'], { cwd, databaseUrl })
    expect(edited.code).toBe(1)
    expect(JSON.parse(edited.stdout)).toEqual({ ok: false, problems: [expect.stringMatching(/add-doc-embeddings\.sql was changed after it was generated/)], waiting: [] })

    // status's tables: a rule under the header, none between rows.
    const human = await runCli(['status'], { cwd, databaseUrl })
    const migrations = human.stdout.split('\n').slice(human.stdout.split('\n').findIndex((l) => l.includes('│ migration')))
    expect(migrations.slice(0, 5).map((l) => l[0])).toEqual(['│', '├', '│', '│', '│'])

    // Query vectors of the wrong size: an error naming the option and the dimensions, no stack trace.
    await writeFile(join(cwd, 'q.json'), '[[1, 2, 3]]')
    const check = await runCli(['index', 'check', 'documents.body_embedding', '--queries-file', 'q.json'], { cwd, databaseUrl })
    expect(check.code).not.toBe(0)
    expect(check.stderr).toMatch(/query vector 1 has 3 dimensions, and public\.documents\.body_embedding holds 128\n {2}at --queries-file/)
    expect(check.stderr).not.toMatch(/internal error|    at /)

    const down = await runCli(['migrate', 'down', '--count', '2'], { cwd, databaseUrl })
    expect(down.code, down.stderr).toBe(0)
    expect(down.stdout.match(/^reverted /gm)).toHaveLength(2)

    // A destructive change is refused with one line per step (not a literal "\n").
    await writeFile(configPath, (await readFile(configPath, 'utf8')).replaceAll('body_embedding', 'body_vec'))
    const destructive = await runCli(['generate', '--name', 'rename-by-drop'], { cwd, databaseUrl })
    expect(destructive.code).not.toBe(0)
    expect(destructive.stderr).toMatch(/only when told to:\n {2}- drop embedding column public\.documents\.body_embedding/)
  })

  it('plan --format markdown is a review document: locks, durations, timeouts, privileges, rollback, and row counts from --database-url', async () => {
    const { cwd, databaseUrl } = await setup()
    await mkdir(join(cwd, 'migrations'), { recursive: true })
    await writeFile(join(cwd, 'migrations', '1000000000000_documents.sql'), `-- Up Migration
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);
INSERT INTO documents (body) SELECT 'row ' || i FROM generate_series(1, 3000) AS i;
ANALYZE documents;
-- Down Migration
DROP TABLE documents;
`)
    await writeFile(join(cwd, 'pgml-kit.config.ts'), `export default ${JSON.stringify({
      migrations: { statementTimeout: '2s' },
      tables: { documents: { embeddings: { body_embedding: { source: 'body', model: { id: 'test/double', dimensions: 8 }, mode: 'generated', indexes: [{ method: 'hnsw', distance: 'cosine' }] } } } },
    })}
`)
    expect((await runCli(['migrate'], { cwd, databaseUrl })).code).toBe(0)
    const args = ['plan', '--format', 'markdown', ...(databaseUrl ? ['--database-url', databaseUrl] : [])]
    const review = await runCli(args, { cwd, databaseUrl })
    expect(review.code, review.stderr).toBe(0)
    const md = review.stdout
    expect(md).toMatch(/^# Migration review/)
    expect(md).toContain('| superuser | make sure pgml.embed exists')
    expect(md).toMatch(/\| `ALTER TABLE "public"."documents" ADD COLUMN "body_embedding" vector\(8\) GENERATED[^|]*` \| \*\*ACCESS EXCLUSIVE\*\* on `public.documents` \| \*\*table rewrite\*\*/)
    expect(md).toMatch(/`CREATE INDEX CONCURRENTLY IF NOT EXISTS "documents_body_embedding_hnsw_cosine_idx"[^|]*` \| SHARE UPDATE EXCLUSIVE on `public.documents` \| index build/)
    expect(md).toContain("`lock_timeout = '5s'`, `statement_timeout = '2s'`")
    expect(md).toContain('`ALTER TABLE "public"."documents" DROP COLUMN "body_embedding";`')
    if (databaseUrl) {
      // Sized: 3,000 rows at the assumed 1,000 rows/s for an in-database embedding is past the 2 s statement_timeout.
      expect(md).toContain('public.documents (3,000 rows) is rewritten under ACCESS EXCLUSIVE, calling pgml.embed once per row: about 3 s')
      expect(md).toContain('past statement_timeout 2s: the migration will fail and roll back')
    } else {
      expect(md).toContain('Give --database-url to see how many rows that is')
    }
    expect((await runCli(['plan', '--format', 'yaml'], { cwd, databaseUrl })).code).toBe(2)
  })

  it('reports a bad config with its path and exit code 2, without a stack trace', async () => {
    const { cwd, databaseUrl } = await setup()
    await writeFile(join(cwd, 'pgml-kit.config.ts'), `export default { tables: { documents: { embeddings: { e: { source: ['body', 'body'], model: 'x/y', mode: 'trigger', indexes: [{ method: 'ivfflat', distance: 'l1' }] } } } } }\n`)
    const result = await runCli(['plan'], { cwd, databaseUrl })
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('tables.documents.embeddings.e.source[1]: source column "body" is listed twice')
    expect(result.stderr).toContain('tables.documents.embeddings.e.model: model "x/y" is not a known preset')
    expect(result.stderr).toContain('tables.documents.embeddings.e.indexes[0].distance: IVFFlat indexes do not support distance "l1"')
    expect(result.stderr).not.toMatch(/\n\s+at /)
    expect((await runCli(['migrate', 'sideways'], { cwd, databaseUrl })).code).toBe(2)
    expect((await runCli(['no-such-command'], { cwd, databaseUrl })).code).toBe(2)
    const version = await runCli(['--version'], { cwd, databaseUrl })
    expect(version.stdout.trim()).toBe((JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version)
  })

  it('reports usage mistakes and an unusable lock without a stack trace', async () => {
    const { cwd, databaseUrl } = await setup()
    expect((await runCli(['init'], { cwd, databaseUrl })).code).toBe(0)
    const lockWait = await runCli(['migrate', '--lock-wait', 'abc'], { cwd, databaseUrl })
    expect(lockWait.code).toBe(2)
    expect(lockWait.stderr).toContain('--lock-wait must be a number ≥ 0, got abc')
    // A config that does not even parse is a usage error too.
    await writeFile(join(cwd, 'pgml-kit.config.ts'), 'export default { tables: {\n')
    const syntax = await runCli(['plan'], { cwd, databaseUrl })
    expect(syntax.code).toBe(2)
    expect(syntax.stderr).toMatch(/^error could not load .*pgml-kit\.config\.ts/)
    expect(syntax.stderr).not.toMatch(/\n\s+at /)
    if (!databaseUrl) {
      // Something in the way of the migrate lock is reported as what it is, not as another migrate.
      await writeFile(join(cwd, 'pgml-kit.config.ts'), 'export default { tables: {} }\n')
      await mkdir(join(cwd, '.pgml-kit'), { recursive: true })
      await writeFile(join(cwd, '.pgml-kit', 'migrate'), 'not a directory')
      const blocked = await runCli(['migrate'], { cwd })
      expect(blocked.code).toBe(1)
      expect(blocked.stderr).toMatch(/cannot use the lock .*\.pgml-kit\/migrate/)
      expect(blocked.stderr).not.toMatch(/another pgml-kit migrate/)
    }
  })

  it('explains connection problems in one line, with the password masked', async () => {
    const { cwd } = await setup()
    expect((await runCli(['init'], { cwd })).code).toBe(0)
    const status = (url: string) => runCli(['status', '--database-url', url], { cwd })
    const closed = await status('postgres://user:secret@127.0.0.1:1/app')
    expect(closed.code).toBe(1)
    expect(closed.stderr).toMatch(/^error cannot connect to postgres:\/\/user:\*\*\*@127\.0\.0\.1:1\/app: nothing is listening at 127\.0\.0\.1:1\n\s+hint start PostgreSQL/)
    const malformed = await status('postgres//nope')
    expect(malformed.code).toBe(2)
    expect(malformed.stderr).toContain('"postgres//nope" is not a PostgreSQL URL')
    for (const result of [closed, malformed]) {
      expect(result.stderr).not.toMatch(/internal error|\n\s+at /)
      expect(result.stderr).not.toContain('secret')
    }
    if (tier.name === 'server') {
      const server = new URL(serverTier!.url)
      const wrong = new URL(server)
      wrong.password = 'wrong-password'
      const badPassword = await status(wrong.toString())
      expect(badPassword.stderr).toMatch(/password authentication failed for postgres\n\s+hint check the user and password/)
      expect(badPassword.stderr).not.toContain('wrong-password')
      const missing = new URL(server)
      missing.pathname = '/no_such_database'
      expect((await status(missing.toString())).stderr).toMatch(/database "no_such_database" does not exist\n\s+hint create it/)
    }
  })

  it('two migrate processes at once apply every migration exactly once', async () => {
    const { cwd, databaseUrl } = await setup()
    expect((await runCli(['init'], { cwd, databaseUrl })).code).toBe(0)
    expect((await runCli(['generate', '--name', 'embeddings'], { cwd, databaseUrl })).code).toBe(0)
    const [a, b] = await Promise.all([runCli(['migrate', '--json'], { cwd, databaseUrl }), runCli(['migrate', '--json'], { cwd, databaseUrl })])
    expect(a.code, a.stderr).toBe(0)
    expect(b.code, b.stderr).toBe(0)
    const ran = [...(JSON.parse(a.stdout) as { ran: string[] }).ran, ...(JSON.parse(b.stdout) as { ran: string[] }).ran]
    expect(ran).toHaveLength(4)
    expect(new Set(ran).size).toBe(4)
    const rows = await query(cwd, databaseUrl, 'SELECT name, count(*)::int AS n FROM pgmigrations GROUP BY name ORDER BY name')
    expect(rows.map((r) => r.n)).toEqual([1, 1, 1, 1])
  })

  if (tier.name === 'embedded') {
    it('dev serves the embedded database to other processes until it is stopped, and never prints its password', async () => {
      const { cwd } = await setup()
      expect((await runCli(['init'], { cwd })).code).toBe(0)
      expect((await runCli(['generate', '--name', 'embeddings'], { cwd })).code).toBe(0)
      const dev = startCli(['dev', '--port', '0', '--json'], { cwd })
      cleanups.push(async () => { dev.kill('SIGKILL') })
      let devOut = ''
      const served = await new Promise<{ url: string; passwordFile: string }>((resolve, reject) => {
        dev.stdout?.on('data', (d: Buffer) => {
          devOut += d.toString()
          try { resolve(JSON.parse(devOut) as { url: string; passwordFile: string }) } catch { /* not complete yet */ }
        })
        dev.on('close', (code) => reject(new Error(`dev exited with ${code}`)))
      })
      expect(served.url).toMatch(/^postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres$/)
      expect(served.passwordFile).toBe(join(cwd, '.pgml-kit', 'password'))
      const password = (await readFile(served.passwordFile, 'utf8')).trim()
      // What dev prints, with the password from its file, is a URL psql or an application can use.
      const usable = new URL(served.url)
      usable.password = password
      const pg = await import('pg')
      const outside = new pg.default.Client({ connectionString: usable.toString() })
      await outside.connect()
      expect((await outside.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }])
      await outside.end()
      const migrate = await runCli(['migrate'], { cwd })
      expect(migrate.code, migrate.stderr).toBe(0)
      const status = await runCli(['status'], { cwd })
      expect(status.stdout).toContain('served by another pgml-kit process')
      for (const printed of [devOut, migrate.stdout, migrate.stderr, status.stdout, status.stderr]) expect(printed).not.toContain(password)
      const exited = new Promise<number | null>((resolve) => dev.on('close', resolve))
      dev.kill('SIGINT')
      expect(await exited).toBe(0)
      // The data outlives the server: a new owner sees the applied migrations.
      const after = await runCli(['status', '--json'], { cwd })
      expect((JSON.parse(after.stdout) as { applied: unknown[] }).applied).toHaveLength(4)

      // For a human: the masked URL, and how to use it without the password on the screen.
      const human = startCli(['dev', '--port', '0'], { cwd })
      cleanups.push(async () => { human.kill('SIGKILL') })
      const text = await new Promise<string>((resolve, reject) => {
        let out = ''
        human.stdout?.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('Ctrl-C')) resolve(out) })
        human.on('close', (code) => reject(new Error(`dev exited with ${code}`)))
      })
      expect(text).not.toContain(password)
      expect(text).toMatch(/URL {7}postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres\n/)
      // The line it prints for the shell, run by a shell in the project, gives a URL that connects.
      const exportLine = /^ {2}(export DATABASE_URL=.*)$/m.exec(text)?.[1]
      expect(exportLine).toMatch(/^export DATABASE_URL="postgres:\/\/postgres:\$\(cat \.pgml-kit\/password\)@127\.0\.0\.1:\d+\/postgres"$/)
      const { execFile } = await import('node:child_process')
      const fromShell = await new Promise<string>((resolve, reject) => execFile('sh', ['-c', `${exportLine}; printf %s "$DATABASE_URL"`], { cwd }, (error, stdout) => (error ? reject(error) : resolve(stdout))))
      const viaShell = new pg.default.Client({ connectionString: fromShell })
      await viaShell.connect()
      expect((await viaShell.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }])
      await viaShell.end()
      const humanExited = new Promise<number | null>((resolve) => human.on('close', resolve))
      human.kill('SIGINT')
      expect(await humanExited).toBe(0)
    })
  }
})
