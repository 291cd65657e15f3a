import type pg from 'pg'
import { PgmlKitError } from '../errors.js'
import type { EmbeddingMonitorNode, ResolvedConfig } from '../model/resolve.js'
import { columnLabel } from '../model/ir.js'
import type { Distance } from '../config/schema.js'
import {
  EMBEDDING_BASELINES_EXIST, READ_EMBEDDING_BASELINE, RECORD_EMBEDDING_BASELINE, renderCountVectors, renderEmbeddingSample,
} from '../sql/render-embedding-drift.js'
import { ks, normalTail } from './monitor.js'
import { requireTrustedRelation } from './trust.js'
import { quoteQualified } from '../sql/quote.js'

/**
 * Drift of embedding columns. A sample of a column's vectors (the newest by `monitor.recent`, or a
 * fixed hash sample of the table) is summarised — centroid, spread (trace of the covariance) and
 * effective number of dimensions (tr(Σ)² / tr(Σ²)), and each vector's distance to its nearest
 * neighbour within the sample, in the column's distance — and compared with the column's baseline:
 * - the centroid shift, with a test of equal means: ‖Δ‖² against its expected size under no drift
 *   (tr Σ₀/n₀ + tr Σ₁/n₁), as a χ² with the effective dimensions (Satterthwaite), since embeddings
 *   are far from isotropic;
 * - the nearest-neighbour distances, with a two-sample KS test (samples of the same size, so that
 *   density does not change with the table's size): new kinds of content sit farther from the rest,
 *   duplicates and collapse closer.
 * Each test alarms below `alpha / 2`.
 */

/** What a baseline keeps (pgml_kit.embedding_baselines.baseline). */
export interface EmbeddingSummary {
  readonly rows: number
  readonly dimensions: number
  readonly distance: Distance
  readonly centroid: readonly number[]
  /** tr(Σ): the mean squared distance to the centroid (unbiased). */
  readonly trace: number
  /** tr(Σ²), from the centred Gram matrix of (at most 500 of) the rows. */
  readonly trace2: number
  /** Each sampled vector's distance to its nearest other vector in the sample. */
  readonly nn: readonly number[]
}

export interface EmbeddingDriftReport {
  readonly column: string
  readonly rowsNow: number
  readonly sampled: number
  readonly baseline: { readonly capturedAt: string; readonly capturedBy: string; readonly rows: number; readonly sampled: number } | null
  /** 1 − cosine between the baseline's and the sample's centroids. */
  readonly centroidShift: number | null
  /** ‖Δ‖² over its expected size without drift (about 1 without drift). */
  readonly centroidRatio: number | null
  readonly centroidP: number | null
  readonly nnMedianBefore: number | null
  readonly nnMedianNow: number | null
  readonly nnKsD: number | null
  readonly nnKsP: number | null
  readonly alpha: number
  readonly alarms: readonly ('centroid' | 'neighbours')[]
  /** True when this run kept the sample as the column's (first, or `--baseline`) baseline. */
  readonly baselineCaptured: boolean
  readonly notes: readonly string[]
}

const GRAM_ROWS = 500

function parseVector(text: string): number[] {
  return (JSON.parse(text) as number[]).map(Number)
}

function distanceFn(distance: Distance): (a: readonly number[], b: readonly number[]) => number {
  const dot = (a: readonly number[], b: readonly number[]) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!; return s }
  switch (distance) {
    case 'cosine': return (a, b) => 1 - dot(a, b) // vectors are normalised first
    case 'inner_product': return (a, b) => -dot(a, b)
    case 'l1': return (a, b) => { let s = 0; for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!); return s }
    default: return (a, b) => { let s = 0; for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2; return Math.sqrt(s) }
  }
}

/** Summarises a sample of vectors (the centroid and spread of cosine columns are of the unit vectors, as cosine sees them). */
export function summarise(vectors: readonly (readonly number[])[], distance: Distance): EmbeddingSummary {
  const unit = (v: readonly number[]) => { const n = Math.hypot(...v); return n === 0 ? [...v] : v.map((x) => x / n) }
  const xs = distance === 'cosine' ? vectors.map(unit) : vectors.map((v) => [...v])
  const n = xs.length
  const d = xs[0]?.length ?? 0
  const centroid = new Array<number>(d).fill(0)
  for (const v of xs) for (let i = 0; i < d; i++) centroid[i]! += v[i]! / n
  const centred = xs.map((v) => v.map((x, i) => x - centroid[i]!))
  const trace = n > 1 ? centred.reduce((s, v) => s + v.reduce((t, x) => t + x * x, 0), 0) / (n - 1) : 0
  const g = centred.slice(0, GRAM_ROWS)
  let sumSq = 0
  for (let a = 0; a < g.length; a++) {
    for (let b = 0; b < g.length; b++) {
      let s = 0
      for (let i = 0; i < d; i++) s += g[a]![i]! * g[b]![i]!
      sumSq += s * s
    }
  }
  const m = g.length
  const trace2 = m > 1 ? sumSq / ((m - 1) * (m - 1)) : 0
  const dist = distanceFn(distance)
  const nn = xs.map((v, a) => {
    let best = Number.POSITIVE_INFINITY
    for (let b = 0; b < xs.length; b++) if (b !== a) best = Math.min(best, dist(v, xs[b]!))
    return best
  }).filter(Number.isFinite)
  return { rows: n, dimensions: d, distance, centroid, trace, trace2, nn }
}

/** P(χ²_k > x), by the Wilson–Hilferty approximation (k need not be a whole number). */
export function chiSquareTail(x: number, k: number): number {
  if (!(k > 0) || !Number.isFinite(x)) return Number.NaN
  if (x <= 0) return 1
  const z = (Math.cbrt(x / k) - (1 - 2 / (9 * k))) / Math.sqrt(2 / (9 * k))
  return normalTail(z)
}

/** Compares a sample's summary with the baseline's: the centroid test and the KS test of nearest-neighbour distances. */
export function compareSummaries(before: EmbeddingSummary, now: EmbeddingSummary): { shift: number; ratio: number; p: number; nn: { d: number; p: number } | null } {
  const delta = now.centroid.reduce((s, x, i) => s + (x - before.centroid[i]!) ** 2, 0)
  const expected = before.trace / before.rows + now.trace / now.rows
  // Effective dimensions of the pooled covariance: tr(Σ)² / tr(Σ²).
  const trace = (before.trace + now.trace) / 2
  const trace2 = (before.trace2 + now.trace2) / 2
  const df = trace2 > 0 ? Math.max(1, (trace * trace) / trace2) : before.dimensions
  const ratio = expected > 0 ? delta / expected : Number.NaN
  const p = chiSquareTail(ratio * df, df)
  const dot = now.centroid.reduce((s, x, i) => s + x * before.centroid[i]!, 0)
  const norms = Math.hypot(...now.centroid) * Math.hypot(...before.centroid)
  const shift = norms > 0 ? 1 - dot / norms : Number.NaN
  const nn = before.nn.length === now.nn.length && now.nn.length > 0 ? ks(before.nn, now.nn) : null
  return { shift, ratio, p, nn }
}

const median = (xs: readonly number[]) => {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

/**
 * `pgml-kit monitor` for the embedding columns with `monitor` in the config: each compared with its
 * latest baseline; a column without one (or every column, with `newBaseline`) keeps this sample as
 * its baseline. `client` must not be in a transaction.
 */
export async function monitorEmbeddings(client: pg.ClientBase, config: ResolvedConfig, options: { readonly newBaseline?: boolean } = {}): Promise<EmbeddingDriftReport[]> {
  if (config.embeddingMonitors.length === 0) return []
  if (!(await client.query<{ ok: boolean }>(EMBEDDING_BASELINES_EXIST)).rows[0]?.ok) {
    throw new PgmlKitError('RUNTIME_OUTDATED', 'this database\'s pgml_kit runtime has no embedding baselines (version 7)', { hint: 'pgml-kit generate && pgml-kit migrate' })
  }
  const reports: EmbeddingDriftReport[] = []
  for (const node of config.embeddingMonitors) reports.push(await monitorColumn(client, node, options.newBaseline === true))
  return reports
}

async function monitorColumn(client: pg.ClientBase, node: EmbeddingMonitorNode, newBaseline: boolean): Promise<EmbeddingDriftReport> {
  const c = node.column
  const label = columnLabel(c)
  const where = `tables.${c.table}.embeddings.${c.column}.monitor`
  await requireTrustedRelation(client, quoteQualified(c.schema, c.table), [c.column, ...c.keyColumns, ...(node.recent ? [node.recent] : [])], where)
  const sample = await client.query<{ v: string }>(renderEmbeddingSample(c, node.rows, node.recent)).catch((error: unknown) => {
    const e = error as { code?: string; message?: string }
    if (e.code !== '42703' && e.code !== '42P01' && e.code !== '42501') throw error
    throw new PgmlKitError('MONITOR_UNREADABLE', `the vectors of ${label} cannot be sampled: ${e.message ?? ''}`, { cause: error, where })
  })
  const { rows: counted } = await client.query<{ n: string }>(renderCountVectors(c))
  const rowsNow = Number(counted[0]?.n ?? 0)
  const notes: string[] = []
  const empty = { column: label, rowsNow, sampled: sample.rows.length, centroidShift: null, centroidRatio: null, centroidP: null, nnMedianBefore: null, nnMedianNow: null, nnKsD: null, nnKsP: null, alpha: node.alpha }
  if (sample.rows.length < 2) return { ...empty, baseline: null, alarms: [], baselineCaptured: false, notes: [`${label} has ${sample.rows.length} vector(s): nothing to compare`] }
  const now = summarise(sample.rows.map((r) => parseVector(r.v)), c.distance)
  const { rows: kept } = await client.query<{ captured_at: Date; captured_by: string; row_count: string; baseline: EmbeddingSummary }>(READ_EMBEDDING_BASELINE, [c.schema, c.table, c.column])
  const previous = kept[0]
  if (!previous || newBaseline || previous.baseline.dimensions !== now.dimensions || previous.baseline.distance !== now.distance) {
    if (previous && !newBaseline) notes.push(`the baseline of ${label} was of ${previous.baseline.dimensions} dimensions, ${previous.baseline.distance} distance; a new one is kept`)
    await client.query(RECORD_EMBEDDING_BASELINE, [c.schema, c.table, c.column, rowsNow, JSON.stringify(now)]).catch((error: unknown) => {
      if ((error as { code?: string }).code !== '42501') throw error
      throw new PgmlKitError('MONITOR_NOT_PERMITTED', `this role may not keep the baseline of ${label} (pgml_kit.embedding_baselines): run pgml-kit monitor as the role that migrates`, { cause: error, where })
    })
    notes.push(`kept this sample of ${now.rows} vectors as the baseline of ${label}; later runs compare with it`)
    return { ...empty, baseline: null, alarms: [], baselineCaptured: true, notes }
  }
  const before = previous.baseline
  const compared = compareSummaries(before, now)
  if (!compared.nn) notes.push(`nearest-neighbour distances not compared: ${now.rows} vectors sampled now, ${before.rows} in the baseline (they are compared on samples of one size)`)
  const alarms: EmbeddingDriftReport['alarms'][number][] = []
  if (Number.isFinite(compared.p) && compared.p < node.alpha / 2) alarms.push('centroid')
  if (compared.nn && compared.nn.p < node.alpha / 2) alarms.push('neighbours')
  return {
    ...empty,
    baseline: { capturedAt: new Date(previous.captured_at).toISOString(), capturedBy: previous.captured_by, rows: Number(previous.row_count), sampled: before.rows },
    centroidShift: compared.shift, centroidRatio: compared.ratio, centroidP: compared.p,
    nnMedianBefore: median(before.nn), nnMedianNow: median(now.nn), nnKsD: compared.nn?.d ?? null, nnKsP: compared.nn?.p ?? null,
    alarms, baselineCaptured: false, notes,
  }
}
