import { fileURLToPath } from 'node:url'
import type { Embedder } from '../../src/embed/embedder.js'
import { LocalEmbedder } from '../../src/embed/local-embedder.js'
import type { ResolvedModel } from '../../src/model/ir.js'

export const MODELS_DIR = fileURLToPath(new URL('../fixtures/models', import.meta.url))

export const TINY_16: ResolvedModel = { id: 'pgml-kit/tiny-bert-16', revision: null, dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ', normalize: true, pooling: null }
export const TINY_32: ResolvedModel = { id: 'pgml-kit/tiny-bert-32', revision: null, dimensions: 32, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null }

/** The model pgml-kit ships (models/), resolved as the preset resolves it. */
export const WORDNET: ResolvedModel = { id: 'pgml-kit/wordnet-static-128', revision: null, dimensions: 128, documentPrefix: '', queryPrefix: '', normalize: true, pooling: 'mean' }

export function loadWordnet(batchSize = 32): Promise<LocalEmbedder> {
  return LocalEmbedder.load({ model: WORDNET, modelsDir: null, allowRemoteModels: false, batchSize })
}

export function loadTiny(model: ResolvedModel = TINY_16, batchSize = 32): Promise<LocalEmbedder> {
  return LocalEmbedder.load({ model, modelsDir: MODELS_DIR, allowRemoteModels: false, batchSize })
}

/**
 * TEST DOUBLE around a real embedder: throws for any text containing "POISON", the way a model
 * can fail on one input. Everything else goes to the real model.
 */
export class PoisonEmbedder implements Embedder {
  readonly modelId: string
  readonly dimensions: number
  readonly #inner: Embedder
  calls = 0

  constructor(inner: Embedder) {
    this.#inner = inner
    this.modelId = inner.modelId
    this.dimensions = inner.dimensions
  }

  async embed(texts: readonly string[], options?: { as?: 'document' | 'query' }): Promise<Float32Array[]> {
    this.calls++
    const bad = texts.find((t) => t.includes('POISON'))
    if (bad !== undefined) throw new Error(`cannot embed ${JSON.stringify(bad.slice(0, 40))}`)
    return this.#inner.embed(texts, options)
  }
}

/** TEST DOUBLE: runs `during` while the real embedder works, to interleave a concurrent write. */
export class InterleavingEmbedder implements Embedder {
  readonly modelId: string
  readonly dimensions: number
  readonly #inner: Embedder
  #during: (() => Promise<void>) | undefined

  constructor(inner: Embedder, during: () => Promise<void>) {
    this.#inner = inner
    this.modelId = inner.modelId
    this.dimensions = inner.dimensions
    this.#during = during
  }

  async embed(texts: readonly string[], options?: { as?: 'document' | 'query' }): Promise<Float32Array[]> {
    const during = this.#during
    this.#during = undefined
    if (during) await during()
    return this.#inner.embed(texts, options)
  }
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += (a[i] as number) * (b[i] as number)
    na += (a[i] as number) ** 2
    nb += (b[i] as number) ** 2
  }
  return dot / Math.sqrt(na * nb)
}

export function parseVector(text: string): number[] {
  return JSON.parse(text) as number[]
}
