import { afterEach, describe, expect, it } from 'vitest'
import { quoteIdent, quoteLiteral, quoteQualified } from '../../src/sql/quote.js'
import { runCli, startCli, type CliResult } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * Values that other roles can write (rows, queue jobs, dead letters) or that the database echoes
 * in its errors reach the owner's terminal and the worker's log only as visible escapes: no
 * escape sequence runs, no carriage return overwrites a line, no newline forges a line or a
 * table row. `--json` keeps them exact.
 */

/** What no human-readable output may carry raw: C0 controls but the newline, DEL, C1 controls, U+2028/9, bidi overrides and isolates. */
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u

/** A table name with an escape sequence, a BEL, an 8-bit CSI, a right-to-left override and a newline (19 bytes). */
const TABLE = 'docs\x1b[31m\x07\u009b\u202e\nFORGED'
/** The payload that cleared the worker's terminal in the security review. */
const CLEAR = '\x1b[2J\x1b[Hworker healthy\nFORGED'
const BODIES = [
  'homes for families',
  `homes ${CLEAR}`,
  'homes a\x1b]0;owned\x07b \rFORGED \u2028FORGED \u202eevil',
  // Refused by the CHECK constraint below once it has a vector: the database's error repeats the row.
  'homes reject\x1b[1A\x1b[2K\u009b2J\nFORGED',
  'homes café 文档 😀 naïve',
]

/**
 * Output with nothing raw, and every FORGED right after the visible escape of what came before it
 * (`\n`, `\r`, `\x9b`, `\u202e`): never at the start of a line or a table row of its own.
 * Soft: one run shows every command that fails.
 */
function expectSafe(result: CliResult, what: string): void {
  for (const [stream, text] of [['stdout', result.stdout], ['stderr', result.stderr]] as const) {
    const context = `${what} ${stream}:\n${text}`
    expect.soft(text.match(RAW), context).toBeNull()
    expect.soft(text.match(/FORGED/g)?.length ?? 0, context).toBe(text.match(/\\(?:[nrt]|x[0-9a-f]{2}|u[0-9a-f]{4})FORGED/g)?.length ?? 0)
  }
}

describe.each(tiers)('hostile values in the CLI\'s output on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  const cli = (args: readonly string[]) => runCli(args, { cwd: db.cwd, databaseUrl: db.databaseUrl })

  async function project(): Promise<void> {
    db = await tier.create()
    const p = new TestProject(db)
    await p.writeMigration('1000000000000_base.sql', `-- Up Migration
CREATE TABLE ${quoteIdent(TABLE)} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);
-- Down Migration
DROP TABLE ${quoteIdent(TABLE)};
`)
    await p.writeConfig({ tables: { [TABLE]: { embeddings: { emb: { source: 'body', model: 'pgml-kit/wordnet-static-128', mode: 'queue', indexes: [{ method: 'hnsw', distance: 'cosine' }] } } } } })
    const generate = await cli(['generate', '--name', 'embeddings'])
    expect(generate.code, generate.stderr).toBe(0)
    const migrate = await cli(['migrate'])
    expect(migrate.code, migrate.stderr).toBe(0)
    for (const body of BODIES) await db.query(`INSERT INTO ${quoteIdent(TABLE)} (body) VALUES ($1)`, [body])
    await db.query(`ALTER TABLE ${quoteIdent(TABLE)} ADD CONSTRAINT no_reject CHECK (emb IS NULL OR body NOT LIKE '%reject%')`)
  }

  it('status, worker --once, queue retry, backfill and search print hostile names, rows, dead letters and errors as escapes; --json keeps them exact', async () => {
    await project()
    // A dead letter as the review's worker role wrote it: escape codes and a newline in its names.
    const deadSchema = 'x\x1b[2K\x1b[1A\x1b]0;owned\x07\nFORGED'
    await db.query(`INSERT INTO pgml_kit.embedding_dead_letters (table_schema, table_name, column_name, row_key, attempts, last_error, first_enqueued_at)
      VALUES ($1, $2, 'emb', '{"id": 1}', 5, $3, now())`, [deadSchema, TABLE, `boom ${CLEAR}`])

    const status = await cli(['status'])
    expect(status.code, status.stderr).toBe(0)
    expectSafe(status, 'status')
    expect.soft(status.stdout).toContain('x\\x1b[2K\\x1b[1A\\x1b]0;owned\\x07\\nFORGED.docs\\x1b[31m\\x07\\x9b\\u202e\\nFORGED.emb')
    expect.soft(status.stdout).toContain('public.docs\\x1b[31m\\x07\\x9b\\u202e\\nFORGED.emb')

    const json = await cli(['status', '--json'])
    expect(json.code, json.stderr).toBe(0)
    const parsed = JSON.parse(json.stdout) as { queues: { column: string; deadLetters: number }[]; embeddingColumns: { table: string }[] }
    expect(parsed.queues).toContainEqual(expect.objectContaining({ column: `${deadSchema}.${TABLE}.emb`, deadLetters: 1 }))
    expect(parsed.embeddingColumns.map((c) => c.table)).toEqual([`public.${TABLE}`])

    const worker = await cli(['worker', '--once'])
    expect(worker.code, worker.stderr).toBe(0)
    expectSafe(worker, 'worker --once')
    expect.soft(worker.stderr).toContain('docs\\x1b[31m\\x07\\x9b\\u202e\\nFORGED.emb: ')

    // A job whose key the table cannot read fails alone (dead-lettered at once here): PostgreSQL's
    // error, which repeats the key, is kept exactly in the dead letter, and nothing printed carries it raw.
    await db.query(`INSERT INTO pgml_kit.embedding_jobs (table_schema, table_name, column_name, row_key) VALUES ('public', $1, 'emb', jsonb_build_object('id', $2::text))`, [TABLE, CLEAR])
    const refused = await cli(['worker', '--once', '--max-attempts', '1'])
    expect(refused.code, refused.stderr).toBe(0)
    expectSafe(refused, 'worker --once on a hostile job')
    // (with the row the CHECK constraint refused earlier, if its retry is due by now)
    expect.soft(refused.stderr, refused.stderr).toMatch(/[1-9]\d* failed, [1-9]\d* dead-lettered/)
    // Why it failed, one line, the key PostgreSQL repeats escaped.
    expect.soft(refused.stderr).toMatch(/^  failed job \d+: its row could not be read: .*\\x1b\[2J\\x1b\[Hworker healthy\\nFORGED/m)
    expect(await db.query<{ e: string }>(`SELECT last_error AS e FROM pgml_kit.embedding_dead_letters WHERE row_key = jsonb_build_object('id', $1::text)`, [CLEAR]))
      .toEqual([{ e: expect.stringContaining(CLEAR) }])
    await db.query('DELETE FROM pgml_kit.embedding_dead_letters WHERE row_key = jsonb_build_object(\'id\', $1::text)', [CLEAR])

    const retry = await cli(['queue', 'retry'])
    expect(retry.code, retry.stderr).toBe(0)
    expectSafe(retry, 'queue retry')

    // The row the CHECK constraint refuses fails alone; the database's detail repeats the row.
    const backfill = await cli(['backfill', `${TABLE}.emb`])
    expect(backfill.code).toBe(1)
    expectSafe(backfill, 'backfill')
    expect.soft(backfill.stderr).toMatch(/failed \{"id": 4\}: new row for relation "docs\\x1b\[31m\\x07\\x9b\\u202e\\nFORGED" violates check constraint "no_reject"/)
    expect.soft(backfill.stderr).toContain('reject\\x1b[1A\\x1b[2K\\x9b2J\\nFORGED')

    const search = await cli(['search', `${TABLE}.emb`, 'homes', '-k', '5'])
    expect(search.code, search.stderr).toBe(0)
    expectSafe(search, 'search')
    expect.soft(search.stdout).toContain('café 文档 😀 naïve')
    expect.soft(search.stdout).toContain('\\x1b]0;owned\\x07b')
    expect.soft(search.stdout).toContain('\\rFORGED')
    expect.soft(search.stdout).toContain('\\u2028FORGED')
    const found = JSON.parse((await cli(['search', `${TABLE}.emb`, 'homes', '-k', '5', '--json'])).stdout) as { body: string }[]
    expect(found.map((r) => r.body).sort()).toEqual(BODIES.filter((b) => !b.includes('reject')).sort())
  })

  it('reports an error that repeats a hostile value as escapes, on one line', async () => {
    await project()
    const unknown = await cli(['backfill', `${TABLE}.nope${CLEAR}`])
    expect(unknown.code).toBe(2)
    expectSafe(unknown, 'backfill of an unknown column')
    expect.soft(unknown.stderr).toContain(`"docs\\x1b[31m\\x07\\x9b\\u202e\\nFORGED.nope\\x1b[2J\\x1b[Hworker healthy\\nFORGED" is not an embedding column`)
  })

  if (tier.name === 'server') {
    it('migrate names what it waits for, another session\'s query text included, as escapes', async () => {
      await project()
      // A second index makes a pending concurrent build that has to wait out the open transaction below.
      const p = new TestProject(db)
      await p.writeConfig({ tables: { [TABLE]: { embeddings: { emb: { source: 'body', model: 'pgml-kit/wordnet-static-128', mode: 'queue', indexes: [{ method: 'hnsw', distance: 'cosine' }, { method: 'hnsw', distance: 'l2' }] } } } } })
      expect((await cli(['generate', '--name', 'more'])).code).toBe(0)
      const pg = await import('pg')
      const report = new pg.default.Client({ connectionString: db.url })
      await report.connect()
      try {
        await report.query(`CREATE TABLE other (x int)`)
        await report.query('BEGIN ISOLATION LEVEL REPEATABLE READ')
        // pg_stat_activity's text of it, as migrate shows it: whitespace collapsed, the rest as sent.
        await report.query('SELECT count(*) FROM other /* \x1b[2J\x1b[Hworker healthy\u009b2J\u202eFORGED */')
        const child = startCli(['migrate'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
        let stdout = ''
        let stderr = ''
        child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
        const waiting = new Promise<void>((resolve) => {
          child.stderr?.on('data', (d: Buffer) => {
            stderr += d.toString()
            if (stderr.includes('waiting for pid')) resolve()
          })
        })
        const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
        await Promise.race([waiting, closed])
        await report.query('COMMIT')
        expect(await closed, stderr).toBe(0)
        expectSafe({ code: 0, stdout, stderr }, 'migrate')
        expect.soft(stderr).toContain('SELECT count(*) FROM other /* \\x1b[2J\\x1b[Hworker healthy\\x9b2J\\u202eFORGED */')
      } finally {
        await report.end()
      }
    })
  }
})
