import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PgmlKitError } from '../errors.js'
import type { ResolvedModel } from '../model/ir.js'
import { modelDirectoryFor } from '../model/bundled.js'
import { MODEL_PRESETS } from '../model/presets.js'
import { chunk, type Embedder } from './embedder.js'

export interface LocalEmbedderOptions {
  readonly model: ResolvedModel
  /** Directory of local model folders (`<dir>/<model id>/...`); null: transformers.js's default. */
  readonly modelsDir?: string | null
  /** Allow transformers.js to download a model it cannot find locally (default false). */
  readonly allowRemoteModels?: boolean
  /** Texts per model call (default 32). */
  readonly batchSize?: number
}

type FeatureExtractor = (texts: string[], options: { pooling: 'mean' | 'cls'; normalize: boolean }) => Promise<{ data: Float32Array; dims: number[] }>

// transformers.js keeps its model paths in one global `env`; loads are serialised so two models
// from different directories never see each other's settings.
let loading: Promise<unknown> = Promise.resolve()

function poolingFromFiles(dir: string | null, modelId: string): 'mean' | 'cls' | null {
  if (!dir) return null
  const file = join(dir, modelId, '1_Pooling', 'config.json')
  if (!existsSync(file)) return null
  const config = JSON.parse(readFileSync(file, 'utf8')) as { pooling_mode_cls_token?: boolean; pooling_mode_mean_tokens?: boolean }
  if (config.pooling_mode_cls_token) return 'cls'
  if (config.pooling_mode_mean_tokens) return 'mean'
  return null
}

/**
 * A sentence-embedding model run locally with transformers.js on onnxruntime-node: tokenisation
 * with the model's own tokenizer (truncated at its maximum length), pooling (mean over the
 * attention mask, or the CLS token), optional L2 normalisation, and the model's document/query
 * prefixes — the same steps sentence-transformers takes.
 *
 * @example
 * const embedder = await LocalEmbedder.load({ model: column.model, modelsDir: 'models' })
 * const [vector] = await embedder.embed(['affordable housing'], { as: 'query' })
 */
export class LocalEmbedder implements Embedder {
  readonly modelId: string
  readonly dimensions: number
  readonly pooling: 'mean' | 'cls'
  readonly #model: ResolvedModel
  readonly #extract: FeatureExtractor
  readonly #batchSize: number

  private constructor(model: ResolvedModel, extract: FeatureExtractor, dimensions: number, pooling: 'mean' | 'cls', batchSize: number) {
    this.modelId = model.id
    this.#model = model
    this.#extract = extract
    this.dimensions = dimensions
    this.pooling = pooling
    this.#batchSize = batchSize
  }

  /**
   * Loads the model and checks that it produces the dimensions the column was declared with,
   * before anything is written.
   */
  static async load(options: LocalEmbedderOptions): Promise<LocalEmbedder> {
    const { model } = options
    // A local copy under the canonical id wins, then a model pgml-kit ships; otherwise a preset's
    // ONNX repository (or the id itself) is fetched, when remote models are allowed.
    const localDir = modelDirectoryFor(model.id, options.modelsDir ?? null)
    const modelsDir = localDir ?? options.modelsDir ?? null
    const pooling = model.pooling ?? poolingFromFiles(modelsDir, model.id) ?? 'mean'
    const local = localDir !== null
    const source = local ? model.id : (MODEL_PRESETS[model.id]?.onnxRepository ?? model.id)
    const load = loading.then(async () => {
      const transformers = await import('@huggingface/transformers')
      const { env } = transformers
      env.allowRemoteModels = options.allowRemoteModels ?? false
      env.allowLocalModels = true
      if (modelsDir) env.localModelPath = modelsDir.endsWith('/') ? modelsDir : `${modelsDir}/`
      try {
        return (await transformers.pipeline('feature-extraction', source, { dtype: 'fp32', ...(model.revision ? { revision: model.revision } : {}) })) as unknown as FeatureExtractor
      } catch (error) {
        throw new PgmlKitError('MODEL_LOAD_FAILED', `could not load model "${model.id}"${local || !options.allowRemoteModels ? ` from ${join(modelsDir ?? '.', model.id)}` : ` (${source})`}: ${(error as Error).message}`, {
          cause: error,
          hint: options.allowRemoteModels
            ? 'check the model id, or put the model files (config.json, tokenizer.json, onnx/model.onnx) under embedder.modelsDir'
            : 'put the model files (config.json, tokenizer.json, onnx/model.onnx) under embedder.modelsDir, or set embedder.allowRemoteModels: true',
        })
      }
    })
    loading = load.catch(() => undefined)
    const extract = await load
    const probe = await extract(['dimension probe'], { pooling, normalize: model.normalize })
    const dimensions = probe.dims.at(-1) ?? 0
    if (dimensions !== model.dimensions) {
      throw new PgmlKitError('MODEL_DIMENSIONS_MISMATCH',
        `model "${model.id}" produces ${dimensions}-dimensional vectors, but the column is declared with ${model.dimensions}; nothing was written`,
        { hint: `use a model with ${model.dimensions} dimensions, or declare dimensions: ${dimensions} (a new column)` })
    }
    return new LocalEmbedder(model, extract, dimensions, pooling, options.batchSize ?? 32)
  }

  async embed(texts: readonly string[], options: { readonly as?: 'document' | 'query' } = {}): Promise<Float32Array[]> {
    const prefix = options.as === 'query' ? this.#model.queryPrefix : this.#model.documentPrefix
    const out: Float32Array[] = []
    for (const batch of chunk(texts, this.#batchSize)) {
      const result = await this.#extract(batch.map((t) => prefix + t), { pooling: this.pooling, normalize: this.#model.normalize })
      const [rows, width] = [result.dims[0] ?? 0, result.dims.at(-1) ?? 0]
      for (let r = 0; r < rows; r++) out.push(result.data.slice(r * width, (r + 1) * width))
    }
    return out
  }
}
