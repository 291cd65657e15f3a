/**
 * What change capture costs and buys: the write overhead of the capture triggers on a feature
 * view's source, and materialisation time for a small change (incremental: the change log) against
 * comparing the whole source (`materialize --full`), at ROWS source rows (default 50,000: 5,000
 * entities × 10 events). Each timing is the median of REPEAT runs.
 *
 * Writes go to two identical tables in the same database, one a feature view's source (with the
 * triggers) and one not, interleaved, so the ratio is the triggers' cost alone:
 * - bulk: INSERT of 500 rows per statement;
 * - single-row: one UPDATE per statement (the OLTP case; the statement trigger's fixed cost shows);
 * - other column: an UPDATE of a column the view does not read (logged too: the trigger compares
 *   whole rows, so that dropping a column it does not key on cannot break the table's writes).
 *
 *   npx tsx bench/feature-store.ts                      # embedded PGlite
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://... npx tsx bench/feature-store.ts   # a server too
 *
 * Writes bench/results/feature-store.json and bench/results/feature-store.md.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { loadConfig } from '../src/config/load.js'
import { generate } from '../src/migrations/generate.js'
import { migrate } from '../src/migrations/run.js'
import { openTarget } from '../src/db/target.js'
import { materialize } from '../src/features/ml.js'

const ROWS = Number(process.env.BENCH_ROWS ?? 50_000)
const ENTITIES = Math.max(1, Math.round(ROWS / 10))
const REPEAT = Number(process.env.BENCH_REPEAT ?? 5)
const CHANGED = Math.max(1, Math.round(ROWS / 100))

const TABLE = (name: string) => `CREATE TABLE ${name} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer_id int NOT NULL, event_ts timestamptz NOT NULL, created_ts timestamptz DEFAULT now(), spend numeric, visits bigint, note text);
CREATE INDEX ON ${name} (customer_id);`

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

interface Result {
  readonly target: string
  readonly rows: number
  readonly bulkInsertMsPer500: { readonly plain: number; readonly captured: number; readonly ratio: number }
  readonly singleUpdateMs: { readonly plain: number; readonly captured: number; readonly ratio: number }
  readonly noOpUpdateMs: { readonly plain: number; readonly captured: number; readonly ratio: number }
  readonly firstRunMs: number
  readonly incrementalMs: number
  readonly fullMs: number
  readonly changedRows: number
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await fn()
  return performance.now() - t
}

async function benchTarget(name: string, databaseUrl: string): Promise<Result> {
  const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-bench-fs-'))
  const target = await openTarget({ cwd, databaseUrl })
  try {
    await mkdir(join(cwd, 'migrations'))
    await writeFile(join(cwd, 'migrations', '1000_events.sql'), `-- Up Migration\n${TABLE('events')}\n${TABLE('events_plain')}\n-- Down Migration\nDROP TABLE events; DROP TABLE events_plain;\n`)
    await writeFile(join(cwd, 'pgml-kit.config.ts'), `export default ${JSON.stringify({
      tables: {},
      features: { views: { stats: { entities: 'customer_id', source: { table: 'events' }, timestamp: 'event_ts', createdTimestamp: 'created_ts', features: { spend: 'double precision', visits: 'integer' } } } },
    })}\n`)
    const config = await loadConfig('pgml-kit.config.ts', cwd)
    await generate(config, { name: 'bench' })
    await migrate({ databaseUrl: target.url, cwd, dir: config.migrationsDir, settings: config.migrations })
    const client = new pg.Client({ connectionString: target.url })
    await client.connect()
    try {
      const insert = (table: string, from: number) => client.query(`INSERT INTO ${table} (customer_id, event_ts, created_ts, spend, visits)
        SELECT 1 + (i % ${ENTITIES}), '2026-01-01'::timestamptz + (i / ${ENTITIES}) * interval '1 day', '2026-01-01'::timestamptz + (i / ${ENTITIES}) * interval '1 day', (i % 997) / 10.0, i % 31
        FROM generate_series($1::int, $1::int + 499) AS i`, [from])
      const bulk = { plain: [] as number[], captured: [] as number[] }
      for (let from = 0; from < ROWS; from += 500) {
        bulk.captured.push(await timed(() => insert('events', from)))
        bulk.plain.push(await timed(() => insert('events_plain', from)))
      }
      await client.query('ANALYZE events; ANALYZE events_plain')
      const state = config.state
      const firstRunMs = await timed(() => materialize(client, state))
      // Single-row updates, interleaved: REPEAT × 100 statements each.
      const single = { plain: [] as number[], captured: [] as number[] }
      const noOp = { plain: [] as number[], captured: [] as number[] }
      for (let r = 0; r < REPEAT; r++) {
        for (const [table, into] of [['events', 'captured'], ['events_plain', 'plain']] as const) {
          single[into].push(await timed(async () => { for (let i = 0; i < 100; i++) await client.query(`UPDATE ${table} SET spend = spend + 1 WHERE id = $1`, [1 + ((r * 100 + i) * 37) % ROWS]) }) / 100)
          noOp[into].push(await timed(async () => { for (let i = 0; i < 100; i++) await client.query(`UPDATE ${table} SET note = $2 WHERE id = $1`, [1 + ((r * 100 + i) * 53) % ROWS, `n${r}`]) }) / 100)
        }
      }
      await materialize(client, state)
      // A 1% change (updates, inserts and deletes over 1% of rows), then incremental vs full.
      const incremental: number[] = []
      const full: number[] = []
      for (let r = 0; r < REPEAT; r++) {
        await client.query(`UPDATE events SET spend = spend + 1 WHERE id % ${Math.round(ROWS / CHANGED) * 3} = ${r}`)
        await client.query(`INSERT INTO events (customer_id, event_ts, spend, visits) SELECT 1 + (i * 7919) % ${ENTITIES}, '2026-02-01'::timestamptz + $1 * interval '1 day', i, i FROM generate_series(1, ${Math.round(CHANGED / 3)}) AS i`, [r])
        await client.query(`DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id % ${Math.round(ROWS / CHANGED) * 3} = ${r + 1} LIMIT ${Math.round(CHANGED / 3)})`)
        incremental.push(await timed(() => materialize(client, state)))
        full.push(await timed(() => materialize(client, state, [], { full: true })))
      }
      const ratio = (x: { plain: number[]; captured: number[] }) => {
        const plain = median(x.plain)
        const captured = median(x.captured)
        return { plain: Number(plain.toFixed(3)), captured: Number(captured.toFixed(3)), ratio: Number((captured / plain).toFixed(2)) }
      }
      const result: Result = {
        target: name, rows: ROWS, bulkInsertMsPer500: ratio(bulk), singleUpdateMs: ratio(single), noOpUpdateMs: ratio(noOp),
        firstRunMs: Math.round(firstRunMs), incrementalMs: Math.round(median(incremental)), fullMs: Math.round(median(full)), changedRows: CHANGED,
      }
      process.stderr.write(`${name}: ${JSON.stringify(result)}\n`)
      return result
    } finally {
      await client.end()
    }
  } finally {
    await target.close()
    await rm(cwd, { recursive: true, force: true })
  }
}

const results: Result[] = [await benchTarget('embedded (PGlite)', '')]
if (process.env.PGML_KIT_BENCH_DATABASE_URL) {
  const admin = new pg.Client({ connectionString: process.env.PGML_KIT_BENCH_DATABASE_URL })
  await admin.connect()
  await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench_fs')
  await admin.query('CREATE DATABASE pgml_kit_bench_fs')
  const url = new URL(process.env.PGML_KIT_BENCH_DATABASE_URL)
  url.pathname = '/pgml_kit_bench_fs'
  try {
    const version = (await admin.query<{ v: string }>("SELECT split_part(current_setting('server_version'), ' ', 1) AS v")).rows[0]!.v
    results.push(await benchTarget(`server (PostgreSQL ${version})`, url.toString()))
  } finally {
    await admin.query('DROP DATABASE IF EXISTS pgml_kit_bench_fs WITH (FORCE)')
    await admin.end()
  }
}
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`
const when = new Date().toISOString().slice(0, 10)
await writeFile(new URL('./results/feature-store.json', import.meta.url), `${JSON.stringify({ date: when, machine, rows: ROWS, entities: ENTITIES, repeat: REPEAT, results }, null, 2)}\n`)
const table = ['| target | bulk insert, ms / 500 rows (plain → captured) | single-row UPDATE, ms | UPDATE of a column the view does not read, ms | first run (full), ms | after a 1% change: incremental, ms | full comparison, ms |', '|---|---|---|---|---:|---:|---:|',
  ...results.map((r) => `| ${r.target} | ${r.bulkInsertMsPer500.plain} → ${r.bulkInsertMsPer500.captured} (×${r.bulkInsertMsPer500.ratio}) | ${r.singleUpdateMs.plain} → ${r.singleUpdateMs.captured} (×${r.singleUpdateMs.ratio}) | ${r.noOpUpdateMs.plain} → ${r.noOpUpdateMs.captured} (×${r.noOpUpdateMs.ratio}) | ${r.firstRunMs} | ${r.incrementalMs} | ${r.fullMs} |`)].join('\n')
await writeFile(new URL('./results/feature-store.md', import.meta.url), `# Feature store: change capture (${when})\n\n${ROWS} source rows (${ENTITIES} entities × 10 events); a 1% change is ~${CHANGED} rows updated, inserted or deleted; medians of ${REPEAT} runs; writes to a captured source and an identical plain table, interleaved. ${machine}.\n\n${table}\n`)
process.stdout.write(`${table}\n`)
