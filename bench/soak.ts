/**
 * Crash soak of the queue: nothing lost, nothing stale.
 *
 *   npm run build && npx tsx bench/soak.ts                       # embedded database
 *   PGML_KIT_BENCH_DATABASE_URL=postgres://… npx tsx bench/soak.ts   # a server (a fresh database is created in it)
 *   options: --workers 3 --rows 2000 --seconds 60 --kills 50 --seed 1
 *
 * Runs N worker processes and a writer process (bench/soak-writer.ts) against one database for a
 * while, and kills processes with SIGKILL at random: workers, and on the embedded database also
 * whichever process owns it at the time (a worker or the writer), each restarted after a moment.
 * Then the queue drains, and every row's stored vector is checked against an independent
 * embedding of its current text:
 *   lost   — a row with text, no vector, no job and no dead letter
 *   stale  — a row whose vector is not its current text's (or a vector where there is no text), with no job
 * Results go to bench/results/soak-<target>.json.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { loadConfig } from '../src/config/load.js'
import { generate } from '../src/migrations/generate.js'
import { migrate } from '../src/migrations/run.js'
import { openTarget } from '../src/db/target.js'
import { currentHolder } from '../src/db/embedded/owner-lock.js'
import { LocalEmbedder } from '../src/embed/local-embedder.js'

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '3' }, rows: { type: 'string', default: '2000' }, seconds: { type: 'string', default: '60' },
    kills: { type: 'string', default: '50' }, seed: { type: 'string', default: '1' },
  },
})
const WORKERS = Number(values.workers)
const ROWS = Number(values.rows)
const SECONDS = Number(values.seconds)
const KILLS = Number(values.kills)
const root = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(root, 'dist/cli/bin.js')
const MODELS = join(root, 'test/fixtures/models')
if (!existsSync(BIN)) throw new Error('run `npm run build` first (the soak starts the built CLI)')

const serverUrl = process.env.PGML_KIT_BENCH_DATABASE_URL
const targetName = serverUrl ? 'server' : 'embedded'
let random = Number(values.seed) >>> 0
const rand = () => ((random = (random * 1664525 + 1013904223) >>> 0) / 2 ** 32)

const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-soak-'))
let databaseUrl = ''
let dropDatabase = async () => undefined
if (serverUrl) {
  const name = `pgml_kit_soak_${Date.now()}`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  databaseUrl = url.toString()
  dropDatabase = async () => {
    const c = new pg.Client({ connectionString: serverUrl })
    await c.connect()
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await c.end()
  }
}

const model = { id: 'pgml-kit/tiny-bert-16', dimensions: 16, documentPrefix: 'passage: ' }
await writeFile(join(cwd, 'pgml-kit.config.ts'), `export default ${JSON.stringify({
  embedder: { modelsDir: MODELS, allowRemoteModels: false },
  tables: { docs: { embeddings: { body_embedding: { source: ['title', 'body'], model, mode: 'queue' } } } },
})}\n`)
await mkdir(join(cwd, 'migrations'))
await writeFile(join(cwd, 'migrations/1000000000000_docs.sql'), '-- Up Migration\nCREATE TABLE docs (id bigint PRIMARY KEY, title text, body text);\n-- Down Migration\nDROP TABLE docs;\n')
const config = await loadConfig('pgml-kit.config.ts', cwd)
await generate(config, { name: 'soak' })
await migrate({ databaseUrl, cwd, dir: config.migrationsDir, settings: config.migrations })

const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' }
if (serverUrl) env.DATABASE_URL = databaseUrl
else delete env.DATABASE_URL
type Role = 'worker' | 'writer'
interface Proc { role: Role; child: ChildProcess; exited: Promise<number | null>; output: string; errors: string; killed: boolean }
const procs: Proc[] = []
/** Processes that ended with an error although nobody killed them: what they said last. */
const unexpected: { role: Role; code: number | null; stderr: string }[] = []
let writerRuns = 0
let changes = 0

function start(role: Role): Proc {
  const args = role === 'worker'
    ? [BIN, 'worker', '--batch-size', '16', '--lease', '5', '--poll', '20']
    : ['--import', 'tsx', join(root, 'bench/soak-writer.ts'), cwd, databaseUrl, String(ROWS), String(1000 + writerRuns++)]
  const child = spawn(process.execPath, args, { cwd: role === 'writer' ? root : cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const proc: Proc = { role, child, output: '', errors: '', killed: false, exited: new Promise((resolve) => child.on('close', resolve)) }
  child.stdout?.on('data', (d: Buffer) => { proc.output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { proc.errors = (proc.errors + d.toString()).slice(-2000) })
  child.on('close', (code) => { if (!proc.killed && code !== 0) unexpected.push({ role, code, stderr: proc.errors.slice(-600) }) })
  procs.push(proc)
  return proc
}

/** A writer's last reported count of changes. */
function collect(proc: Proc): void {
  const counts = [...proc.output.matchAll(/\{"changes":(\d+)\}/g)].map((m) => Number(m[1]))
  changes += counts.at(-1) ?? 0
}

async function ownerPid(): Promise<number | undefined> {
  return serverUrl ? undefined : (await currentHolder(join(cwd, '.pgml-kit/owner')))?.pid
}

const started = Date.now()
for (let i = 0; i < WORKERS; i++) start('worker')
await new Promise((resolve) => setTimeout(resolve, 1500))
start('writer')

let kills = 0
let ownerKills = 0
const interval = (SECONDS * 1000) / Math.max(1, KILLS)
while (Date.now() - started < SECONDS * 1000) {
  await new Promise((resolve) => setTimeout(resolve, interval * (0.3 + 0.6 * rand())))
  if (kills >= KILLS) continue
  const live = procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null)
  const owner = await ownerPid()
  const ownerProc = live.find((p) => p.child.pid === owner)
  const victim = ownerProc && rand() < 0.4 ? ownerProc : live.filter((p) => p.role === 'worker')[Math.floor(rand() * WORKERS)]
  if (!victim) continue
  if (victim === ownerProc) ownerKills++
  kills++
  victim.killed = true
  victim.child.kill('SIGKILL')
  await victim.exited
  procs.splice(procs.indexOf(victim), 1)
  collect(victim)
  await new Promise((resolve) => setTimeout(resolve, 200))
  start(victim.role)
}

// Stop writing, let the workers drain the queue, then stop them.
for (const writer of procs.filter((p) => p.role === 'writer')) {
  writer.child.kill('SIGTERM')
  await writer.exited
  collect(writer)
}
const target = await openTarget({ cwd, databaseUrl })
const query = async <R extends pg.QueryResultRow>(sql: string) => {
  const client = await target.connect('soak check')
  try { return (await client.query<R>(sql)).rows } finally { await client.end() }
}
const drainStart = Date.now()
for (;;) {
  const n = (await query<{ n: number }>('SELECT count(*)::int AS n FROM pgml_kit.embedding_jobs'))[0]?.n ?? 0
  if (n === 0 || Date.now() - drainStart > 180_000) break
  await new Promise((resolve) => setTimeout(resolve, 250))
}
const drainSeconds = (Date.now() - drainStart) / 1000
for (const proc of procs.filter((p) => p.child.exitCode === null)) proc.child.kill('SIGTERM')
await Promise.all(procs.map((p) => p.exited))

const rows = await query<{ id: string; title: string | null; body: string | null; v: string | null; queued: boolean; dead: boolean }>(`
  SELECT d.id, d.title, d.body, d.body_embedding::text AS v,
    EXISTS (SELECT 1 FROM pgml_kit.embedding_jobs j WHERE j.row_key = jsonb_build_object('id', d.id)) AS queued,
    EXISTS (SELECT 1 FROM pgml_kit.embedding_dead_letters x WHERE x.row_key = jsonb_build_object('id', d.id)) AS dead
  FROM docs AS d ORDER BY d.id`)
const jobs = (await query<{ jobs: number }>('SELECT count(*)::int AS jobs FROM pgml_kit.embedding_jobs'))[0]?.jobs ?? -1
const dead = (await query<{ dead: number }>('SELECT count(*)::int AS dead FROM pgml_kit.embedding_dead_letters'))[0]?.dead ?? -1
await target.close()

const embedder = await LocalEmbedder.load({ model: { ...model, revision: null, queryPrefix: '', normalize: true, pooling: null }, modelsDir: MODELS, allowRemoteModels: false })
const texts = rows.map((r) => (r.title === null && r.body === null ? null : `${r.title ?? ''}\n\n${r.body ?? ''}`))
const reference = await embedder.embed(texts.filter((t): t is string => t !== null))
let lost = 0
let stale = 0
let i = 0
for (const [n, row] of rows.entries()) {
  const text = texts[n]
  if (text === null) {
    if (row.v !== null && !row.queued) stale++
    continue
  }
  const expected = reference[i++] as Float32Array
  if (row.v === null) {
    if (!row.queued && !row.dead) lost++
    continue
  }
  const stored = JSON.parse(row.v) as number[]
  let dot = 0
  for (let k = 0; k < stored.length; k++) dot += (stored[k] as number) * (expected[k] as number)
  if (dot < 0.9999 && !row.queued) stale++
}
const result = {
  target: targetName, date: new Date().toISOString(), seconds: SECONDS, workers: WORKERS, seedRows: ROWS,
  changes, writerRuns, kills, ownerKills, unexpectedExits: unexpected.length,
  rows: rows.length, lost, stale, jobsLeft: jobs, deadLetters: dead, drainSeconds,
}
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
for (const u of unexpected) process.stderr.write(`unexpected exit of a ${u.role} (code ${u.code}):\n${u.stderr}\n`)
await mkdir(join(root, 'bench/results'), { recursive: true })
await writeFile(join(root, `bench/results/soak-${targetName}.json`), `${JSON.stringify(result, null, 2)}\n`)
await dropDatabase()
await rm(cwd, { recursive: true, force: true })
process.exit(lost === 0 && stale === 0 && jobs === 0 && unexpected.length === 0 ? 0 : 1)
