/**
 * Turns bench/results/search-{server,embedded}.json (written by bench/search.ts) into
 * bench/results/search.md and the recall/latency plot docs/search-recall-latency.svg (Vega-Lite,
 * rendered to SVG without a browser).
 *
 *   npx tsx bench/search-report.ts
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import * as vega from 'vega'
import * as vegaLite from 'vega-lite'
import type { IndexCheckResult, IndexCheckRow } from '../src/indexes/check.js'

interface Stats { readonly p50: number; readonly p95: number }
interface Result {
  readonly target: string
  readonly rows: number
  readonly dimensions: number
  readonly clusters: number
  readonly cpus: number
  readonly cpu: string
  readonly node: string
  readonly server: string
  readonly pgvector: string
  readonly generateSeconds: number
  readonly build: { hnswDefaultsSeconds: number; hnswAutoSeconds: number; hnswSpeedup: number; ivfflatSeconds: number; ivfflatLists: number }
  readonly indexBytes: Record<string, number>
  readonly overhead: readonly {
    efSearch: number | null; raw: Stats; rawSession?: Stats; kysely: Stats; kit: Stats; prepared?: Stats; kitOverP50: number; pairedRatio: number; pairedExtraMs: number
    pairedRatioSession?: number; preparedPairedRatio?: number; preparedPairedRatioSession?: number
    cpuMicros?: { rawSession: number; raw: number; kysely: number; kit: number; prepared: number }
  }[]
  /** Where the overhead section came from, when not from the same run as the rest. */
  readonly overheadNote?: string
  readonly hnsw: { tuning: IndexCheckResult; heldOut: IndexCheckRow | null; sampledFromTable: IndexCheckRow | null; filtered: readonly IndexCheckRow[] }
  readonly ivfflat: { tuning: IndexCheckResult; heldOut: IndexCheckRow | null; filtered: readonly IndexCheckRow[] }
}

const results: Result[] = []
for (const target of ['server', 'embedded']) {
  const file = new URL(`./results/search-${target}.json`, import.meta.url)
  if (existsSync(file)) results.push(JSON.parse(await readFile(file, 'utf8')) as Result)
}
if (results.length === 0) {
  process.stderr.write('no bench/results/search-*.json: run bench/search.ts first\n')
  process.exit(2)
}

const lines: string[] = ['# Vector search benchmark', '', 'Written by `npx tsx bench/search-report.ts` from `bench/results/search-*.json` (`bench/search.ts`).', '']
for (const r of results) {
  lines.push(`## ${r.target === 'server' ? 'Server' : 'Embedded (PGlite)'}: ${r.rows.toLocaleString('en-US')} vectors of ${r.dimensions} dimensions, ${r.clusters} overlapping clusters`, '')
  lines.push(`${r.server.split(' on ')[0]}, pgvector ${r.pgvector}; ${r.cpus} × ${r.cpu}; Node ${r.node}. Data generated in the database in ${r.generateSeconds} s.`, '')
  lines.push('| build | seconds |', '|---|---|')
  lines.push(`| HNSW (m 16, ef_construction 64), PostgreSQL's maintenance_work_mem (64 MB) | ${r.build.hnswDefaultsSeconds} |`)
  lines.push(`| HNSW, pgml-kit \`build: 'auto'\` (memory sized from the table, parallel workers) | ${r.build.hnswAutoSeconds} (${r.build.hnswSpeedup}× faster) |`)
  lines.push(`| IVFFlat, lists ${r.build.ivfflatLists} (\`lists: 'auto'\`), \`build: 'auto'\` | ${r.build.ivfflatSeconds} |`, '')
  const table = (title: string, check: IndexCheckResult) => {
    lines.push(`${title} — recall@${check.k} against exact search (sequential scan, p50 ${check.exact.p50Ms} ms), ${check.queries} tuning queries not in the table:`, '')
    lines.push(`| ${check.parameter} | recall@10 ± standard error | queries like these, 95% lower bound | p50 ms | p95 ms |`, '|---|---|---|---|---|')
    for (const row of check.rows) lines.push(`| ${row.setting}${row === check.recommendation || (check.recommendation && row.setting === check.recommendation.setting && row.iterative === check.recommendation.iterative) ? ' ← recommended' : ''} | ${row.recall.toFixed(3)}${row.recallStdErr === undefined ? '' : ` ± ${row.recallStdErr.toFixed(3)}`} | ${row.recallBound === undefined ? '—' : row.recallBound.toFixed(3)} | ${row.p50Ms.toFixed(2)} | ${row.p95Ms.toFixed(2)} |`)
    lines.push('')
  }
  table('HNSW', r.hnsw.tuning)
  const held = (name: string, check: IndexCheckResult, row: IndexCheckRow | null) => {
    if (!check.recommendation || !row) return lines.push(`${name}: no setting reached recall ${check.targetRecall}.`, '')
    const ok = row.recall >= check.targetRecall - 0.01
    lines.push(`${name}: \`index check\` recommends ${check.parameter} ${check.recommendation.setting} for recall ${check.targetRecall} (tuning recall ${check.recommendation.recall.toFixed(3)}); on 100 held-out queries it gives **${row.recall.toFixed(3)}** at p50 ${row.p50Ms.toFixed(2)} ms — ${ok ? 'within 0.01 of the target' : '**more than 0.01 below the target**'}.`, '')
  }
  held('HNSW', r.hnsw.tuning, r.hnsw.heldOut)
  if (r.hnsw.sampledFromTable) lines.push(`The same setting with 100 queries sampled from the table (what \`index check\` does without \`--queries-file\`): recall ${r.hnsw.sampledFromTable.recall.toFixed(3)}.`, '')
  table('IVFFlat', r.ivfflat.tuning)
  held('IVFFlat', r.ivfflat.tuning, r.ivfflat.heldOut)
  lines.push('A filter matching 10 % of rows (`category = 3`):', '', '| index | setting | iterative scan | recall@10 | queries short of 10 rows | p50 ms |', '|---|---|---|---|---|---|')
  for (const [name, rows, parameter] of [['HNSW', r.hnsw.filtered, 'ef_search'], ['IVFFlat', r.ivfflat.filtered, 'probes']] as const) {
    for (const row of rows) lines.push(`| ${name} | ${parameter} ${row.setting} | ${row.iterative ? 'on' : 'off'} | ${row.recall.toFixed(3)} | ${row.short} | ${row.p50Ms.toFixed(2)} |`)
  }
  lines.push('', 'The query builders against the same query written by hand (HNSW, k 10, interleaved; the hand-written code formats its vector with JSON.stringify, as pgvector\'s Node client does, inside the timing). Raw, pooled: node-postgres on the pool the kit also uses, with `BEGIN`, `set_config`, the query and `COMMIT` when there is a setting; raw, session: a connection of its own whose session holds the setting. Wall clock in milliseconds; client CPU per search in µs (process.cpuUsage around each call, GC included), which the machine\'s scheduling noise does not blur:', '')
  if (r.overheadNote) lines.push(`(${r.overheadNote}.)`, '')
  lines.push('| ef_search | raw, pooled p50 / p95 | raw, session p50 / p95 | Kysely `sql` p50 / p95 | `kit.search` p50 / p95 | `kit.prepareSearch` p50 / p95 | kit ÷ raw pooled, median of pairs | prepared ÷ raw pooled / ÷ raw session, median of pairs | client CPU µs: raw pooled / session / kit / prepared |', '|---|---|---|---|---|---|---|---|---|')
  for (const o of r.overhead) {
    const s = (x: Stats | undefined) => (x ? `${x.p50} / ${x.p95}` : '—')
    lines.push(`| ${o.efSearch ?? 'default (no SET)'} | ${s(o.raw)} | ${s(o.rawSession)} | ${s(o.kysely)} | ${s(o.kit)} | ${s(o.prepared)} | ${o.pairedRatio} | ${o.preparedPairedRatio ?? '—'} / ${o.preparedPairedRatioSession ?? '—'} | ${o.cpuMicros ? `${o.cpuMicros.raw} / ${o.cpuMicros.rawSession} / ${o.cpuMicros.kit} / ${o.cpuMicros.prepared}` : '—'} |`)
  }
  lines.push('')
}
await writeFile(new URL('./results/search.md', import.meta.url), `${lines.join('\n')}\n`)

// Recall against p50 latency, one line per index and target.
const points = results.flatMap((r) => [
  ...r.hnsw.tuning.rows.map((row) => ({ series: `HNSW, ${r.target}`, setting: `ef_search ${row.setting}`, recall: row.recall, p50: row.p50Ms })),
  ...r.ivfflat.tuning.rows.map((row) => ({ series: `IVFFlat, ${r.target}`, setting: `probes ${row.setting}`, recall: row.recall, p50: row.p50Ms })),
])
const spec: vegaLite.TopLevelSpec = {
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
  title: { text: `recall@10 vs p50 latency, ${results[0]!.rows.toLocaleString('en-US')} × ${results[0]!.dimensions}-d clustered vectors`, fontSize: 14 },
  width: 560,
  height: 340,
  background: 'white',
  data: { values: points },
  layer: [
    {
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'p50', type: 'quantitative', title: 'p50 latency per query (ms, log scale)', scale: { type: 'log' } },
        y: { field: 'recall', type: 'quantitative', title: 'recall@10', scale: { domain: [Math.min(0.5, ...points.map((p) => p.recall)), 1] } },
        color: { field: 'series', type: 'nominal', title: null },
        tooltip: [{ field: 'setting' }, { field: 'recall' }, { field: 'p50' }],
      },
    },
    { mark: { type: 'rule', strokeDash: [4, 4], color: 'grey' }, encoding: { y: { datum: 0.95 } } },
  ],
}
const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' })
const svg = await view.toSVG()
await mkdir(new URL('../docs/', import.meta.url), { recursive: true })
await writeFile(new URL('../docs/search-recall-latency.svg', import.meta.url), svg)
process.stderr.write('wrote bench/results/search.md and docs/search-recall-latency.svg\n')
