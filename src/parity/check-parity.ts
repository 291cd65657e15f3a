import { toConnector, type Connector } from '../db/connect.js'
import type { Embedder } from '../embed/embedder.js'
import { PgmlKitError } from '../errors.js'
import type { EmbeddingColumnNode } from '../model/ir.js'
import { renderEmbedInDatabase, renderSampleStored } from '../sql/render-parity.js'
import { canEmbedInDatabase, detectCapabilities } from '../db/capabilities.js'

export interface ParityRow {
  /** The row's key, or the text's line number with `texts`. */
  readonly key: unknown
  readonly text: string
  readonly cosine: number
  readonly maxAbsDiff: number
}

export interface ParityReport {
  readonly column: string
  /** `stored`: vectors stored in the table vs the local model now; `texts`: pgml.embed vs the local model. */
  readonly compared: 'stored' | 'texts'
  readonly count: number
  readonly minCosine: number
  readonly meanCosine: number
  readonly maxAbsDiff: number
  readonly threshold: number
  readonly ok: boolean
  /** The rows that agree least, worst first (at most 5). */
  readonly worst: readonly ParityRow[]
}

export interface ParityOptions {
  /** The database: a connection string, or a `Target`. */
  readonly url: string | Connector
  readonly column: EmbeddingColumnNode
  readonly embedder: Embedder
  /** Rows to sample (default 100). */
  readonly sample?: number
  /** Compare pgml.embed in the database with the local embedder on these texts instead of stored rows. */
  readonly texts?: readonly string[]
  /** Lowest acceptable cosine similarity (default 0.999). */
  readonly minCosine?: number
}

function compare(a: ArrayLike<number>, b: ArrayLike<number>): { cosine: number; maxAbsDiff: number } {
  if (a.length !== b.length) return { cosine: Number.NaN, maxAbsDiff: Number.POSITIVE_INFINITY }
  let dot = 0
  let na = 0
  let nb = 0
  let diff = 0
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number
    const y = b[i] as number
    dot += x * y
    na += x * x
    nb += y * y
    diff = Math.max(diff, Math.abs(x - y))
  }
  return { cosine: na === 0 || nb === 0 ? (na === nb ? 1 : 0) : dot / Math.sqrt(na * nb), maxAbsDiff: diff }
}

/**
 * The training/serving-skew check: recomputes vectors with the local embedder from the same source
 * text and prefix, and compares them with what the database stored (or, with `texts`, with what
 * the database's pgml.embed computes now).
 *
 * @example
 * const report = await checkParity({ url, column, embedder, sample: 200 })
 * if (!report.ok) console.error(report.worst)
 */
export async function checkParity(options: ParityOptions): Promise<ParityReport> {
  const { column, embedder } = options
  const threshold = options.minCosine ?? 0.999
  const client = await toConnector(options.url).connect('pgml-kit parity')
  try {
    let keys: unknown[]
    let texts: string[]
    let reference: number[][]
    if (options.texts) {
      if (!canEmbedInDatabase(await detectCapabilities(client))) {
        throw new PgmlKitError('PGML_MISSING', '--texts compares the database\'s pgml.embed with the local model, and this target has no pgml.embed', { hint: 'run it against a server with PostgresML or pgml_compat, or compare stored rows (without --texts)' })
      }
      texts = [...options.texts]
      keys = texts.map((_, i) => i + 1)
      const { rows } = await client.query<{ embedding: string }>(renderEmbedInDatabase(column), [texts])
      reference = rows.map((r) => JSON.parse(r.embedding) as number[])
    } else {
      const { rows } = await client.query<{ key: unknown; source_text: string; stored: string }>(renderSampleStored(column), [options.sample ?? 100])
      keys = rows.map((r) => r.key)
      texts = rows.map((r) => r.source_text)
      reference = rows.map((r) => JSON.parse(r.stored) as number[])
    }
    const local = await embedder.embed(texts, { as: 'document' })
    const rows: ParityRow[] = texts.map((text, i) => ({ key: keys[i], text, ...compare(reference[i] ?? [], local[i] ?? []) }))
    const cosines = rows.map((r) => r.cosine)
    const minCosine = rows.length ? Math.min(...cosines) : Number.NaN
    return {
      column: `${column.schema}.${column.table}.${column.column}`,
      compared: options.texts ? 'texts' : 'stored',
      count: rows.length,
      minCosine,
      meanCosine: rows.length ? cosines.reduce((a, b) => a + b, 0) / rows.length : Number.NaN,
      maxAbsDiff: rows.length ? Math.max(...rows.map((r) => r.maxAbsDiff)) : Number.NaN,
      threshold,
      ok: rows.length > 0 && minCosine >= threshold,
      worst: [...rows].sort((a, b) => a.cosine - b.cosine).slice(0, 5),
    }
  } finally {
    await client.end()
  }
}
