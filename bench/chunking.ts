/**
 * Chunked documents, edited: how many chunks are embedded again (issue 29).
 *
 * 1,000 generated documents (seeded) of 2 to 40 chunks; one paragraph of each is edited (three of
 * its words changed and a sentence added). Counted, for the edit:
 *  - pgai's rule: every chunk of a changed row is deleted and embedded again (its recursive
 *    splitter, size 800, overlap 400, over the whole text);
 *  - the whole text split as LangChain does (size 800, overlap 200), then only the chunks whose
 *    text hash is new embedded (planChunks) — greedy packing moves the boundaries after the edit;
 *  - pgml-kit: content-defined sections first (splitDocument, same size and overlap), then only the
 *    chunks whose text hash is new — the chunks that actually changed.
 * The pgml-kit way is then run for real, through the product, on the embedded database: a config
 * with a chunked column (mode queue), generate, migrate, the documents inserted and the worker
 * (runWorker) draining the queue with the model pgml-kit ships (wordnet-static-128); then the edits
 * written as UPDATEs and the worker again, timed, against embedding every chunk of every edited
 * document; the chunk table's size; and a check that no chunk is stale or missing.
 *
 *   npx tsx bench/chunking.ts        (BENCH_DOCS=200 for a quick run)
 *
 * Writes bench/results/chunking.{json,md} (embedded), or chunking-server.{json,md} with
 * BENCH_DATABASE_URL=<a server's empty database>.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { openTarget } from '../src/db/target.js'
import { LocalEmbedder } from '../src/embed/local-embedder.js'
import { splitDocument, splitText } from '../src/chunking/split.js'
import { chunkHash, planChunks } from '../src/chunking/plan.js'
import { chunkRow } from '../src/chunking/document.js'
import { loadConfig } from '../src/config/load.js'
import { generate } from '../src/migrations/generate.js'
import { migrate } from '../src/migrations/run.js'
import { runWorker } from '../src/worker/run-worker.js'
import { generator } from './datasets/anisotropic.js'

const DOCS = Number(process.env.BENCH_DOCS ?? 1000)
const SIZE = 800
const rng = generator(290)
const pick = <T>(xs: readonly T[]) => xs[Math.floor(rng.uniform() * xs.length)]!
const VOCABULARY = ('city council housing park budget transit school water library permit zoning street tree bridge tax vote '
  + 'report plan district service public safety energy waste health meeting policy grant project repair road bus').split(' ')
const sentence = () => `${Array.from({ length: 6 + Math.floor(rng.uniform() * 14) }, () => pick(VOCABULARY)).join(' ')}.`
const paragraph = () => Array.from({ length: 2 + Math.floor(rng.uniform() * 6) }, sentence).join(' ')

interface Doc { readonly paragraphs: string[]; readonly edited: string[] }
const docs: Doc[] = []
for (let d = 0; d < DOCS; d++) {
  // 2 to 40 chunks of about 800 characters: roughly 3 paragraphs each.
  const chunks = 2 + Math.floor(rng.uniform() * 39)
  const paragraphs = Array.from({ length: Math.max(2, Math.round(chunks * 1.25)) }, paragraph)
  const edited = [...paragraphs]
  // The edit: three words changed and a sentence added to one paragraph.
  const at = Math.floor(rng.uniform() * paragraphs.length)
  const words = edited[at]!.split(' ')
  for (let k = 0; k < 3; k++) words[Math.floor(rng.uniform() * words.length)] = pick(VOCABULARY)
  edited[at] = `${words.join(' ')} ${sentence()}`
  docs.push({ paragraphs, edited })
}
const text = (ps: readonly string[]) => ps.join('\n\n')
const pgai = (t: string) => splitText(t, { size: SIZE, overlap: 400 })
const whole = (t: string) => splitText(t, { size: SIZE, overlap: 200 })
const ours = (t: string) => splitDocument(t, { size: SIZE, overlap: 200 })
const hashed = (cs: string[]) => cs.map((c) => ({ text: c, hash: chunkHash(c) }))
const reembedded = (split: (t: string) => string[], doc: Doc) => {
  const before = split(text(doc.paragraphs))
  return { before: before.length, embed: planChunks(before.map((c, seq) => ({ seq, hash: chunkHash(c) })), hashed(split(text(doc.edited)))).embed.length }
}

const counts = { pgai: 0, wholeSplit: 0, ours: 0, oursChunks: 0, pgaiChunks: 0 }
const perDocChunks: number[] = []
for (const doc of docs) {
  counts.pgai += pgai(text(doc.edited)).length
  counts.pgaiChunks += pgai(text(doc.paragraphs)).length
  counts.wholeSplit += reembedded(whole, doc).embed
  const o = reembedded(ours, doc)
  counts.ours += o.embed
  counts.oursChunks += o.before
  perDocChunks.push(o.before)
}
process.stderr.write(`${JSON.stringify(counts)}\n`)

// For real, through the product: a config with a chunked column (mode queue), generate, migrate,
// the rows inserted, \`runWorker\` drains the queue; the edits written as UPDATEs, the worker again.
const MODEL = 'pgml-kit/wordnet-static-128'
const embedder = await LocalEmbedder.load({ model: { id: MODEL, revision: null, dimensions: 128, documentPrefix: '', queryPrefix: '', normalize: true, pooling: 'mean' }, modelsDir: null, allowRemoteModels: false, batchSize: 64 })
const cwd = await mkdtemp(join(tmpdir(), 'pgml-kit-bench-chunking-'))
await mkdir(join(cwd, 'migrations'))
await writeFile(join(cwd, 'migrations', '1000000000000_documents.sql'), '-- Up Migration\nCREATE TABLE documents (id integer PRIMARY KEY, body text NOT NULL);\n-- Down Migration\nDROP TABLE documents;\n')
await writeFile(join(cwd, 'pgml-kit.config.ts'), `export default ${JSON.stringify({
  embedder: { allowRemoteModels: false },
  tables: { documents: { embeddings: { body_chunks: { source: 'body', model: MODEL, mode: 'queue', chunking: { size: SIZE, overlap: 200 }, indexes: [{ method: 'hnsw', distance: 'cosine' }] } } } },
}, null, 2)}\n`)
const config = await loadConfig('pgml-kit.config.ts', cwd)
await generate(config, { name: 'chunks', timestamp: 2_000_000_000_000 })
// BENCH_DATABASE_URL: a server (an empty database) instead of the embedded default.
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? ''
await migrate({ databaseUrl: DATABASE_URL, cwd, dir: config.migrationsDir, settings: config.migrations })
const node = config.state.chunkedColumns![0]!
const target = await openTarget({ cwd, databaseUrl: DATABASE_URL })
const client = await target.connect('pgml-kit bench chunking')
let embedCalls = 0
const counting = { modelId: embedder.modelId, dimensions: embedder.dimensions, maxTokens: embedder.maxTokens, countTokens: (t: string) => embedder.countTokens(t),
  embed: async (texts: readonly string[], o?: { as?: 'document' | 'query' }) => { embedCalls += texts.length; return embedder.embed(texts, o) } }
const work = () => runWorker({ url: target, columns: [], chunked: config.state.chunkedColumns, loadEmbedder: async () => counting, loadChunkEmbedder: async () => counting, once: true, batchSize: 32 })
const timed = async <T>(fn: () => Promise<T>) => {
  const start = performance.now()
  const value = await fn()
  return { value, seconds: (performance.now() - start) / 1000 }
}
let out: Record<string, unknown>
try {
  for (let start = 0; start < DOCS; start += 500) {
    const ids = docs.slice(start, start + 500).map((_, i) => start + i)
    await client.query('INSERT INTO documents SELECT * FROM unnest($1::int[], $2::text[])', [ids, ids.map((i) => text(docs[i]!.paragraphs))])
  }
  const initial = await timed(work)
  if (initial.value.failed > 0) throw new Error(`${initial.value.failed} rows failed`)
  embedCalls = 0
  for (let start = 0; start < DOCS; start += 500) {
    const ids = docs.slice(start, start + 500).map((_, i) => start + i)
    await client.query('UPDATE documents AS d SET body = u.body FROM unnest($1::int[], $2::text[]) AS u(id, body) WHERE d.id = u.id', [ids, ids.map((i) => text(docs[i]!.edited))])
  }
  const edit = await timed(work)
  const embeddedOnEdit = edit.value.written
  // What pgai's rule embeds for the same edits: every chunk of every edited document, by the same model.
  const everyChunk = await timed(async () => { for (const doc of docs) await embedder.embed(pgai(text(doc.edited)), { as: 'document' }) })
  // pgai's rule end to end on the same database: a chunk table of the same shape and index, filled
  // with every document's chunks (untimed), then for each edit every chunk of the row deleted,
  // embedded again and inserted, one transaction per row, as its vectorizer worker does.
  await client.query(`CREATE TABLE pgai_chunks (id integer NOT NULL, chunk_seq integer NOT NULL, chunk text NOT NULL, embedding vector(128), PRIMARY KEY (id, chunk_seq));
    CREATE INDEX ON pgai_chunks USING hnsw (embedding vector_cosine_ops)`)
  const insertPgai = async (id: number, chunks: string[]) => {
    if (chunks.length === 0) return
    const vectors = await embedder.embed(chunks, { as: 'document' })
    await client.query('INSERT INTO pgai_chunks SELECT $1, s - 1, c, v::vector FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(c, v, s)', [id, chunks, vectors.map((v) => `[${Array.from(v).join(',')}]`)])
  }
  for (const [id, doc] of docs.entries()) await insertPgai(id, pgai(text(doc.paragraphs)))
  const pgaiEdit = await timed(async () => {
    for (const [id, doc] of docs.entries()) {
      await client.query('BEGIN')
      await client.query('DELETE FROM pgai_chunks WHERE id = $1', [id])
      await insertPgai(id, pgai(text(doc.edited)))
      await client.query('COMMIT')
    }
  })
  const size = (await client.query<{ bytes: string; rows: string }>(`SELECT pg_total_relation_size('documents_body_chunks') AS bytes, (SELECT count(*) FROM documents_body_chunks) AS rows`)).rows[0]!
  // Nothing stale: every stored chunk is its document's chunk at that position, as edited.
  const stored = (await client.query<{ id: number; seq: number; chunk: string }>('SELECT id, chunk_seq AS seq, chunk FROM documents_body_chunks ORDER BY id, chunk_seq')).rows
  const expected = new Map(docs.map((doc, id) => [id, chunkRow(node, text(doc.edited), {}, embedder).map((c) => c.chunk)]))
  const stale = stored.filter((r) => expected.get(r.id)![r.seq] !== r.chunk).length
  const missing = [...expected.values()].reduce((n, cs) => n + cs.length, 0) - stored.length
  out = {
    measured: new Date().toISOString(), docs: DOCS, size: SIZE, chunksPerDoc: { min: Math.min(...perDocChunks), max: Math.max(...perDocChunks), total: counts.oursChunks },
    reembedded: { pgaiRule: counts.pgai, wholeTextHashPlan: counts.wholeSplit, pgmlKit: counts.ours }, ratioPgaiToPgmlKit: Math.round(counts.pgai / counts.ours * 10) / 10,
    real: {
      model: embedder.modelId, via: 'generate, migrate, runWorker (queue mode)', initialSyncSeconds: Math.round(initial.seconds * 10) / 10, initialEmbedded: initial.value.written,
      editSyncSeconds: Math.round(edit.seconds * 10) / 10, embeddedOnEdit, embedCallsOnEdit: embedCalls, rowsSyncedOnEdit: edit.value.completed,
      everyChunkEmbedSeconds: Math.round(everyChunk.seconds * 10) / 10, pgaiRuleEndToEndSeconds: Math.round(pgaiEdit.seconds * 10) / 10, target: DATABASE_URL === '' ? 'embedded (PGlite)' : 'server', storeBytes: Number(size.bytes), storeRows: Number(size.rows), staleChunks: stale, missingChunks: missing,
    },
  }
} finally {
  await client.end()
  await target.close()
  await rm(cwd, { recursive: true, force: true })
}
const RESULTS = DATABASE_URL === '' ? 'chunking' : 'chunking-server'
await writeFile(new URL(`./results/${RESULTS}.json`, import.meta.url), `${JSON.stringify(out, null, 2)}\n`)
const r = out as { reembedded: Record<string, number>; real: Record<string, number | string>; chunksPerDoc: { min: number; max: number; total: number }; ratioPgaiToPgmlKit: number; measured: string }
const md = [
  '# Chunked documents: chunks embedded again after an edit',
  '',
  `Written by \`bench/chunking.ts\`, ${r.measured}. ${DOCS.toLocaleString('en')} generated documents (seeded) of ${r.chunksPerDoc.min}–${r.chunksPerDoc.max} chunks (${r.chunksPerDoc.total.toLocaleString('en')} in all, size ${SIZE} characters); one paragraph of each edited (three words changed, a sentence added).`,
  '',
  `| rule | chunks embedded for the ${DOCS.toLocaleString('en')} edits |`,
  '|---|---:|',
  `| pgai's vectorizer: every chunk of a changed row (recursive splitter, size 800, overlap 400) | ${r.reembedded.pgaiRule!.toLocaleString('en')} |`,
  `| the whole text split (LangChain, overlap 200), only new chunk hashes embedded | ${r.reembedded.wholeTextHashPlan!.toLocaleString('en')} |`,
  `| **pgml-kit: content-defined sections, only new chunk hashes embedded** | **${r.reembedded.pgmlKit!.toLocaleString('en')}** (${r.ratioPgaiToPgmlKit}× fewer than pgai's rule) |`,
  '',
  `For real through the product on the ${r.real.target} database — a chunked column in mode queue, \`generate\`, \`migrate\`, the rows inserted, \`runWorker\` — with ${r.real.model}: the first sync of every document took ${r.real.initialSyncSeconds} s (${r.real.initialEmbedded} chunks); after the ${DOCS.toLocaleString('en')} edits (UPDATEs), the worker synced ${r.real.rowsSyncedOnEdit} rows in ${r.real.editSyncSeconds} s, embedding ${r.real.embeddedOnEdit} chunks (the count above: ${r.reembedded.pgmlKit}); embedding every chunk of every edited document (pgai's rule) takes ${r.real.everyChunkEmbedSeconds} s of model time alone, and ${r.real.pgaiRuleEndToEndSeconds} s end to end on the same database (each edited row's chunks deleted, embedded again and inserted into a chunk table of the same shape and HNSW index). The chunk store: ${r.real.storeRows} rows, ${(Number(r.real.storeBytes) / 1048576).toFixed(1)} MB. Stale chunks after the edits (a stored chunk that is not its document's chunk at that position): ${r.real.staleChunks}; missing: ${r.real.missingChunks}.`,
  '',
].join('\n')
await writeFile(new URL(`./results/${RESULTS}.md`, import.meta.url), md)
process.stdout.write(md)
