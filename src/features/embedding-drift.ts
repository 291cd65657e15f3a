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
 * fixed hash sample of the table) is compared with the column's baseline — a summary of an earlier
 * sample that keeps its first vectors (at most 500), every other one of them a reference set:
 * - the centroid: its shift (1 − cosine between the centroids, of unit vectors for a cosine column),
 *   its size against what no drift would give, and a permutation test of equal means between the
 *   baseline's kept vectors and the sample — exact whatever the covariance (embeddings are far from
 *   isotropic, and a χ² approximation alarmed several times too often on them);
 * - the nearest neighbours: each sampled vector's distance to its nearest reference vector, against
 *   the baseline's other vectors' distances to the same reference set, by a two-sample KS test (one
 *   reference set for both: without drift, two samples of one distribution, whatever the table's
 *   size): new kinds of content sit farther from the rest, duplicates and collapse closer.
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
  /** The sample's first vectors (at most 500, and 200,000 numbers), as the distance sees them: every other one is the reference set both sides' neighbours are measured against. */
  readonly vectors: readonly (readonly number[])[]
  /** The rows of `vectors` (md5 of their key): a row sampled again is never its own neighbour. */
  readonly keys: readonly string[]
  /** The sample's other vectors' distances to their nearest reference vector. */
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

/** Baseline vectors kept (at most 500, and at most 200,000 numbers): the permutation test's baseline side; every other one is the neighbours' reference set. */
const KEPT_ROWS = 500
const KEPT_NUMBERS = 200_000
/** Current vectors in the permutation test (the newest or the hash sample's first ones). */
const PERMUTATION_ROWS = 1000
const PERMUTATIONS = 999

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

/** The vectors as the column's distance sees them: unit vectors for cosine (a zero vector stays zero). */
function prepare(vectors: readonly (readonly number[])[], distance: Distance): number[][] {
  const unit = (v: readonly number[]) => { let n = 0; for (const x of v) n += x * x; n = Math.sqrt(n); return n === 0 ? [...v] : v.map((x) => x / n) }
  return distance === 'cosine' ? vectors.map(unit) : vectors.map((v) => [...v])
}

function meanOf(xs: readonly (readonly number[])[], d: number): number[] {
  const m = new Array<number>(d).fill(0)
  for (const v of xs) for (let i = 0; i < d; i++) m[i]! += v[i]! / xs.length
  return m
}

/** Each query's distance to its nearest vector of `reference` — never to itself: a row in both (by key) is skipped. */
function nearest(queries: readonly (readonly number[])[], reference: readonly (readonly number[])[], distance: Distance, queryKeys: readonly string[] = [], referenceKeys: readonly string[] = []): number[] {
  const dist = distanceFn(distance)
  return queries.map((q, a) => {
    let best = Number.POSITIVE_INFINITY
    for (let b = 0; b < reference.length; b++) {
      if (queryKeys[a] !== undefined && queryKeys[a] === referenceKeys[b]) continue
      best = Math.min(best, dist(q, reference[b]!))
    }
    return best
  }).filter(Number.isFinite)
}

/**
 * A baseline from a sample of vectors: its centroid and spread (tr Σ, and tr Σ² for the effective
 * dimensions), and — every other vector kept as the reference set (at most 250) — the other
 * vectors' distances to their nearest reference vector.
 */
export function summarise(vectors: readonly (readonly number[])[], distance: Distance, keys: readonly string[] = []): EmbeddingSummary {
  const xs = prepare(vectors, distance)
  const n = xs.length
  const d = xs[0]?.length ?? 0
  const centroid = meanOf(xs, d)
  const centred = xs.map((v) => v.map((x, i) => x - centroid[i]!))
  const trace = n > 1 ? centred.reduce((s, v) => s + v.reduce((t, x) => t + x * x, 0), 0) / (n - 1) : 0
  const g = centred.slice(0, 500)
  let sumSq = 0
  for (let a = 0; a < g.length; a++) {
    for (let b = 0; b < g.length; b++) {
      let s = 0
      for (let i = 0; i < d; i++) s += g[a]![i]! * g[b]![i]!
      sumSq += s * s
    }
  }
  const trace2 = g.length > 1 ? sumSq / ((g.length - 1) * (g.length - 1)) : 0
  const round = (x: number) => Math.round(x * 1e7) / 1e7
  const kept = xs.slice(0, Math.max(2, Math.min(KEPT_ROWS, Math.floor(KEPT_NUMBERS / Math.max(1, d))))).map((v) => v.map(round))
  const reference = kept.filter((_, i) => i % 2 === 1)
  const queries = xs.filter((_, i) => i >= kept.length || i % 2 === 0)
  const keptKeys = keys.slice(0, kept.length)
  return { rows: n, dimensions: d, distance, centroid, trace, trace2, vectors: kept, keys: keptKeys, nn: nearest(queries, reference, distance) }
}

/** P(χ²_k > x), by the Wilson–Hilferty approximation (k need not be a whole number). */
export function chiSquareTail(x: number, k: number): number {
  if (!(k > 0) || !Number.isFinite(x)) return Number.NaN
  if (x <= 0) return 1
  const z = (Math.cbrt(x / k) - (1 - 2 / (9 * k))) / Math.sqrt(2 / (9 * k))
  return normalTail(z)
}

/** A seeded generator (mulberry32): the same permutations, so the same p-value, for the same data. */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Permutation p-value of ‖mean(a) − mean(b)‖² (exact under exchangeability, whatever the covariance). */
function permutationP(a: readonly (readonly number[])[], b: readonly (readonly number[])[], d: number): number {
  const pooled = [...a, ...b]
  const total = meanOf(pooled, d).map((x) => x * pooled.length)
  const statistic = (indices: readonly number[]) => {
    const sum = new Array<number>(d).fill(0)
    for (const k of indices) for (let i = 0; i < d; i++) sum[i]! += pooled[k]![i]!
    let s = 0
    for (let i = 0; i < d; i++) s += (sum[i]! / a.length - (total[i]! - sum[i]!) / b.length) ** 2
    return s
  }
  const observed = statistic(a.map((_, i) => i))
  const random = seeded(pooled.length * 7919 + d)
  const order = pooled.map((_, i) => i)
  let atLeast = 0
  for (let p = 0; p < PERMUTATIONS; p++) {
    // The first |a| of a partial Fisher–Yates shuffle.
    for (let i = 0; i < a.length; i++) {
      const j = i + Math.floor(random() * (order.length - i))
      ;[order[i], order[j]] = [order[j]!, order[i]!]
    }
    if (statistic(order.slice(0, a.length)) >= observed * (1 - 1e-12)) atLeast++
  }
  return (1 + atLeast) / (1 + PERMUTATIONS)
}

/**
 * Compares a sample with the baseline. The centroid: its shift (1 − cosine between the centroids),
 * its size against what no drift would give (tr Σ₀/n₀ + tr Σ₁/n₁, for the reader), and a
 * permutation test of equal means between the baseline's reference vectors and the sample (exact,
 * whatever the covariance: embeddings are far from isotropic). The neighbours: the sample's
 * distances to their nearest baseline reference vector against the baseline's own queries' — both
 * to the same reference set, so that without drift they are two samples of one distribution (KS).
 */
export function compareWithBaseline(before: EmbeddingSummary, vectors: readonly (readonly number[])[], keys: readonly string[] = []): { shift: number; ratio: number; p: number; nn: { d: number; p: number } | null } {
  const xs = prepare(vectors, before.distance)
  const d = before.dimensions
  const now = summarise(vectors, before.distance)
  const delta = now.centroid.reduce((s, x, i) => s + (x - before.centroid[i]!) ** 2, 0)
  const expected = before.trace / before.rows + now.trace / now.rows
  const ratio = expected > 0 ? delta / expected : Number.NaN
  const dot = now.centroid.reduce((s, x, i) => s + x * before.centroid[i]!, 0)
  const norms = Math.hypot(...now.centroid) * Math.hypot(...before.centroid)
  const shift = norms > 0 ? 1 - dot / norms : Number.NaN
  const p = before.vectors.length > 1 && xs.length > 1 ? permutationP(before.vectors, xs.slice(0, PERMUTATION_ROWS), d) : Number.NaN
  const distances = nearestNow(before, vectors, keys)
  const nn = before.nn.length > 0 && distances.length > 0 ? ks(before.nn, distances) : null
  return { shift, ratio, p, nn }
}

/** The sample's distances to the baseline's reference vectors (every other kept one), a row never to itself. */
function nearestNow(before: EmbeddingSummary, vectors: readonly (readonly number[])[], keys: readonly string[]): number[] {
  const reference = before.vectors.filter((_, i) => i % 2 === 1)
  const referenceKeys = (before.keys ?? []).filter((_, i) => i % 2 === 1)
  return nearest(prepare(vectors, before.distance), reference, before.distance, keys, referenceKeys)
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
  const sample = await client.query<{ v: string; k: string }>(renderEmbeddingSample(c, node.rows, node.recent)).catch((error: unknown) => {
    const e = error as { code?: string; message?: string }
    if (e.code !== '42703' && e.code !== '42P01' && e.code !== '42501') throw error
    throw new PgmlKitError('MONITOR_UNREADABLE', `the vectors of ${label} cannot be sampled: ${e.message ?? ''}`, { cause: error, where })
  })
  const { rows: counted } = await client.query<{ n: string }>(renderCountVectors(c))
  const rowsNow = Number(counted[0]?.n ?? 0)
  const notes: string[] = []
  const empty = { column: label, rowsNow, sampled: sample.rows.length, centroidShift: null, centroidRatio: null, centroidP: null, nnMedianBefore: null, nnMedianNow: null, nnKsD: null, nnKsP: null, alpha: node.alpha }
  if (sample.rows.length < 2) return { ...empty, baseline: null, alarms: [], baselineCaptured: false, notes: [`${label} has ${sample.rows.length} vector(s): nothing to compare`] }
  const vectors = sample.rows.map((r) => parseVector(r.v))
  const keys = sample.rows.map((r) => r.k)
  const now = summarise(vectors, c.distance, keys)
  const { rows: kept } = await client.query<{ captured_at: Date; captured_by: string; row_count: string; baseline: EmbeddingSummary }>(READ_EMBEDDING_BASELINE, [c.schema, c.table, c.column])
  const previous = kept[0]
  if (!previous || newBaseline || previous.baseline.dimensions !== now.dimensions || previous.baseline.distance !== now.distance || !Array.isArray(previous.baseline.vectors)) {
    if (previous && !newBaseline) notes.push(`the baseline of ${label} was of ${previous.baseline.dimensions} dimensions, ${previous.baseline.distance} distance${Array.isArray(previous.baseline.vectors) ? '' : ', without its vectors'}; a new one is kept`)
    await client.query(RECORD_EMBEDDING_BASELINE, [c.schema, c.table, c.column, rowsNow, JSON.stringify(now)]).catch((error: unknown) => {
      if ((error as { code?: string }).code !== '42501') throw error
      throw new PgmlKitError('MONITOR_NOT_PERMITTED', `this role may not keep the baseline of ${label} (pgml_kit.embedding_baselines): run pgml-kit monitor as the role that migrates`, { cause: error, where })
    })
    notes.push(`kept this sample of ${now.rows} vectors as the baseline of ${label}; later runs compare with it`)
    return { ...empty, baseline: null, alarms: [], baselineCaptured: true, notes }
  }
  const before = previous.baseline
  const compared = compareWithBaseline(before, vectors, keys)
  if (!compared.nn) notes.push('nearest-neighbour distances not compared: the baseline has too few vectors')
  const alarms: EmbeddingDriftReport['alarms'][number][] = []
  if (Number.isFinite(compared.p) && compared.p < node.alpha / 2) alarms.push('centroid')
  if (compared.nn && compared.nn.p < node.alpha / 2) alarms.push('neighbours')
  return {
    ...empty,
    baseline: { capturedAt: new Date(previous.captured_at).toISOString(), capturedBy: previous.captured_by, rows: Number(previous.row_count), sampled: before.rows },
    centroidShift: compared.shift, centroidRatio: compared.ratio, centroidP: compared.p,
    nnMedianBefore: median(before.nn), nnMedianNow: median(nearestNow(before, vectors, keys)), nnKsD: compared.nn?.d ?? null, nnKsP: compared.nn?.p ?? null,
    alarms, baselineCaptured: false, notes,
  }
}
