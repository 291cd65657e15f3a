/**
 * Turns texts into vectors. The worker, backfill, the app-mode helpers and parity checks all go
 * through this interface; the local ONNX implementation is `LocalEmbedder`.
 */
export interface Embedder {
  readonly modelId: string
  /** Length of every vector `embed` returns. */
  readonly dimensions: number
  /**
   * Embeds texts in order, applying the model's document or query prefix.
   * Throws if the model fails on any of them.
   */
  embed(texts: readonly string[], options?: { readonly as?: 'document' | 'query' }): Promise<Float32Array[]>
  close?(): Promise<void>
  /** Tokens the model sees for a document text (its prefix and special tokens included, before truncation); absent when the embedder cannot tell. */
  countTokens?(text: string): number
  /** The most tokens the model sees of one text; absent when unknown. */
  readonly maxTokens?: number
}

/** Serialises a vector the way pgvector reads it: `[0.1,0.2,...]`. */
export function toVectorLiteral(vector: ArrayLike<number>): string {
  for (let i = 0; i < vector.length; i++) {
    const value = vector[i] as number
    if (!Number.isFinite(value)) throw new RangeError(`vector component ${i} is ${value}; pgvector accepts only finite numbers`)
  }
  // Both write each number as String(number) does: the shortest text that reads back as the same
  // value. JSON.stringify of an array of numbers is pgvector's text form already, and fast.
  return Array.isArray(vector) ? JSON.stringify(vector) : `[${Array.prototype.join.call(vector, ',')}]`
}

/**
 * A vector in pgvector's binary form (vector_recv: the dimensions and a reserved word as 16-bit
 * integers, then each component as a big-endian float4), for a parameter the driver sends in
 * binary (node-postgres sends a Buffer so): no text to format here or to parse on the server.
 * Each component is rounded to float4 as pgvector's text input does.
 */
export function toVectorBinary(vector: ArrayLike<number>): Buffer {
  if (vector.length > 0xffff) throw new RangeError(`a vector of ${vector.length} dimensions is longer than pgvector allows`)
  const out = Buffer.allocUnsafe(4 + 4 * vector.length)
  out.writeUInt16BE(vector.length, 0)
  out.writeUInt16BE(0, 2)
  for (let i = 0; i < vector.length; i++) {
    const value = vector[i] as number
    if (!Number.isFinite(value)) throw new RangeError(`vector component ${i} is ${value}; pgvector accepts only finite numbers`)
    out.writeFloatBE(value, 4 + 4 * i)
  }
  return out
}

/** Splits a list into chunks of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/**
 * Embeds texts as one call; if the model throws on the batch, embeds them one by one so a single
 * bad text fails alone (its slot holds the Error) and the others still get their vectors.
 */
export async function embedIsolating(embedder: Embedder, texts: readonly string[]): Promise<(Float32Array | Error)[]> {
  if (texts.length === 0) return []
  try {
    return await embedder.embed(texts)
  } catch {
    const out: (Float32Array | Error)[] = []
    for (const text of texts) {
      try {
        out.push((await embedder.embed([text]))[0] ?? new Error('the embedder returned no vector'))
      } catch (error) {
        out.push(error instanceof Error ? error : new Error(String(error)))
      }
    }
    return out
  }
}

/** Why a vector cannot be stored in a column of `dimensions`, or null when it can. */
export function vectorProblem(vector: ArrayLike<number>, dimensions: number): Error | null {
  if (vector.length !== dimensions) return new Error(`model returned ${vector.length} dimensions, column has ${dimensions}`)
  for (let i = 0; i < vector.length; i++) {
    const value = vector[i] as number
    if (!Number.isFinite(value)) return new RangeError(`vector component ${i} is ${value}; pgvector accepts only finite numbers`)
  }
  return null
}

/**
 * Embeds the texts of a batch for a column of `dimensions`: in order, one slot per text — its
 * vector, null for a NULL text (the column stays NULL), or why it cannot be stored (the model
 * failed on it alone, or returned a vector of other dimensions or with a NaN).
 */
export async function embedForColumn(embedder: Embedder, texts: readonly (string | null)[], dimensions: number): Promise<(Float32Array | null | Error)[]> {
  const vectors = await embedIsolating(embedder, texts.filter((t): t is string => t !== null))
  let next = 0
  return texts.map((text) => {
    if (text === null) return null
    const vector = vectors[next++] ?? new Error('the embedder returned no vector')
    return vector instanceof Error ? vector : vectorProblem(vector, dimensions) ?? vector
  })
}
