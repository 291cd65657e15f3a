import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PgmlKitError } from '../errors.js'
import type { ResolvedModel } from '../model/ir.js'
import { modelDirectoryFor } from '../model/bundled.js'
import { MODEL_PRESETS } from '../model/presets.js'
import { chunk, type Embedder } from './embedder.js'
import { normalizeBert, preTokenizeBert } from './hf-bert-text.js'

export interface LocalEmbedderOptions {
  readonly model: ResolvedModel
  /** Directory of local model folders (`<dir>/<model id>/...`); null: transformers.js's default. */
  readonly modelsDir?: string | null
  /** Allow transformers.js to download a model it cannot find locally (default false). */
  readonly allowRemoteModels?: boolean
  /** Texts per model call (default 32). */
  readonly batchSize?: number
}

/** The parts of a transformers.js tokenizer the embedder uses. */
interface Tokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[]
  readonly model_max_length?: number
  readonly pad_token_id?: number | null
}
interface TensorLike { readonly data: ArrayLike<number>; readonly dims: readonly number[] }
type Model = ((inputs: Record<string, unknown>) => Promise<Record<string, TensorLike | undefined>>) & { readonly config?: { readonly max_position_embeddings?: number } }
type TensorConstructor = new (type: 'int64', data: BigInt64Array, dims: number[]) => unknown

interface BertNormalizerLike {
  config?: { type?: string; clean_text?: boolean; handle_chinese_chars?: boolean; strip_accents?: boolean | null; lowercase?: boolean }
  normalize?: (text: string) => string
}
interface BertPreTokenizerLike {
  pre_tokenize_text?: (text: string, options?: unknown) => string[]
}

/**
 * transformers.js's BERT normaliser and pre-tokenizer classify characters by the runtime's Unicode
 * (and look for CJK one UTF-16 unit at a time, lowercase with a final sigma, strip accents after
 * lowercasing); Hugging Face's classify by the tables its library was built with. Both are replaced on
 * this tokenizer instance by Hugging Face's pipeline (hf-bert-text.ts); transformers.js is pinned,
 * and test/unit/tokenizer-exhaustive.test.ts holds the ids to Hugging Face's on every assigned code
 * point, so an upgrade that moves them fails there.
 */
function conformToHuggingFace(tokenizer: unknown): void {
  const inner = (tokenizer as { _tokenizer?: { normalizer?: BertNormalizerLike; pre_tokenizer?: BertPreTokenizerLike; tokenizer?: { pre_tokenizer?: { type?: string } | null } } })._tokenizer
  const normalizer = inner?.normalizer
  if (normalizer?.config?.type === 'BertNormalizer' && normalizer.normalize) {
    const c = normalizer.config
    const options = { cleanText: c.clean_text ?? true, handleChineseChars: c.handle_chinese_chars ?? true, stripAccents: c.strip_accents ?? null, lowercase: c.lowercase ?? true }
    normalizer.normalize = (text) => normalizeBert(text, options)
  }
  const preTokenizer = inner?.pre_tokenizer
  // (The pre-tokenizer object keeps no config: its type is the tokenizer.json's.)
  if (inner?.tokenizer?.pre_tokenizer?.type === 'BertPreTokenizer' && preTokenizer?.pre_tokenize_text) {
    preTokenizer.pre_tokenize_text = (text) => preTokenizeBert(text)
  }
}

/** How many special tokens the tokenizer's post-processor puts after a text ([SEP]: 1). */
function specialSuffixLength(tokenizer: Pick<Tokenizer, 'encode'>): number {
  const probe = tokenizer.encode('a')
  const bare = tokenizer.encode('a', { add_special_tokens: false })
  const start = probe.findIndex((_, i) => bare.every((id, j) => probe[i + j] === id))
  return start < 0 ? 0 : probe.length - start - bare.length
}

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
 * with the model's own tokenizer (truncated at its maximum length the way Hugging Face's
 * tokenizers do), pooling (mean over the attention mask, or the CLS token), optional L2
 * normalisation, and the model's document/query prefixes — the same steps sentence-transformers
 * takes.
 *
 * @example
 * const embedder = await LocalEmbedder.load({ model: column.model, modelsDir: 'models' })
 * const [vector] = await embedder.embed(['affordable housing'], { as: 'query' })
 */
export class LocalEmbedder implements Embedder {
  readonly modelId: string
  readonly dimensions: number
  readonly pooling: 'mean' | 'cls'
  /** Tokens per text the model sees, special tokens included (min of the tokenizer's and the model's limits). */
  readonly maxLength: number
  readonly #model: ResolvedModel
  readonly #tokenizer: Tokenizer
  readonly #run: Model
  readonly #Tensor: TensorConstructor
  readonly #batchSize: number
  readonly #suffix: number

  private constructor(model: ResolvedModel, parts: { tokenizer: Tokenizer; run: Model; Tensor: TensorConstructor }, dimensions: number, pooling: 'mean' | 'cls', batchSize: number) {
    this.modelId = model.id
    this.#model = model
    this.#tokenizer = parts.tokenizer
    this.#run = parts.run
    this.#Tensor = parts.Tensor
    this.maxLength = Math.min(parts.tokenizer.model_max_length ?? Infinity, parts.run.config?.max_position_embeddings ?? Infinity, 1_000_000)
    this.#suffix = specialSuffixLength(parts.tokenizer)
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
        const revision = model.revision ? { revision: model.revision } : {}
        const tokenizer = (await transformers.AutoTokenizer.from_pretrained(source, revision)) as unknown as Tokenizer
        conformToHuggingFace(tokenizer)
        const run = (await transformers.AutoModel.from_pretrained(source, { dtype: 'fp32', ...revision })) as unknown as Model
        return { tokenizer, run, Tensor: transformers.Tensor as unknown as TensorConstructor }
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
    const parts = await load
    const embedder = new LocalEmbedder(model, parts, 0, pooling, options.batchSize ?? 32)
    const dimensions = (await embedder.#forward(['dimension probe'], ''))[0]?.length ?? 0
    if (dimensions !== model.dimensions) {
      throw new PgmlKitError('MODEL_DIMENSIONS_MISMATCH',
        `model "${model.id}" produces ${dimensions}-dimensional vectors, but the column is declared with ${model.dimensions}; nothing was written`,
        { hint: `use a model with ${model.dimensions} dimensions, or declare dimensions: ${dimensions} (a new column)` })
    }
    return new LocalEmbedder(model, parts, dimensions, pooling, options.batchSize ?? 32)
  }

  /** How many tokens the model would see for `text` with the document prefix, special tokens included, before any truncation. */
  countTokens(text: string): number {
    return this.#tokenizer.encode(this.#model.documentPrefix + text).length
  }

  /** The model's window: the most tokens it sees of one text (maxLength). */
  get maxTokens(): number {
    return this.maxLength
  }

  /**
   * The token ids the model sees for each text (prefix not added), truncated as Hugging Face's
   * tokenizers truncate: the text's tokens are cut and the special tokens around them kept
   * ([CLS] … [SEP]). transformers.js cuts after adding them, which drops a long text's final
   * [SEP], so the embedder truncates itself.
   */
  tokenize(texts: readonly string[]): number[][] {
    const [max, suffix] = [this.maxLength, this.#suffix]
    return texts.map((text) => {
      const ids = this.#tokenizer.encode(text)
      return ids.length <= max ? ids : [...ids.slice(0, max - suffix), ...ids.slice(ids.length - suffix)]
    })
  }

  /** One model call: token ids, padding, the model, then pooling over the attention mask and L2 normalisation. */
  async #forward(texts: readonly string[], prefix: string): Promise<Float32Array[]> {
    const rows = this.tokenize(texts.map((t) => prefix + t))
    const width = Math.max(...rows.map((r) => r.length))
    const pad = BigInt(this.#tokenizer.pad_token_id ?? 0)
    const ids = new BigInt64Array(rows.length * width).fill(pad)
    const mask = new BigInt64Array(rows.length * width)
    rows.forEach((row, r) => row.forEach((id, t) => {
      ids[r * width + t] = BigInt(id)
      mask[r * width + t] = 1n
    }))
    const output = await this.#run({ input_ids: new this.#Tensor('int64', ids, [rows.length, width]), attention_mask: new this.#Tensor('int64', mask, [rows.length, width]) })
    const hidden = output.last_hidden_state ?? output.token_embeddings ?? output.logits
    if (!hidden || hidden.dims.length !== 3) throw new PgmlKitError('MODEL_LOAD_FAILED', `model "${this.modelId}" gives no token embeddings (last_hidden_state)`)
    const size = hidden.dims[2] ?? 0
    return rows.map((row, r) => {
      const v = new Float32Array(size)
      const tokens = this.pooling === 'cls' ? 1 : row.length
      for (let t = 0; t < tokens; t++) {
        const base = (r * width + t) * size
        for (let k = 0; k < size; k++) v[k]! += Number(hidden.data[base + k])
      }
      for (let k = 0; k < size; k++) v[k]! /= tokens
      if (this.#model.normalize) {
        const norm = Math.hypot(...v)
        if (norm > 0) for (let k = 0; k < size; k++) v[k]! /= norm
      }
      return v
    })
  }

  async embed(texts: readonly string[], options: { readonly as?: 'document' | 'query' } = {}): Promise<Float32Array[]> {
    const prefix = options.as === 'query' ? this.#model.queryPrefix : this.#model.documentPrefix
    const out: Float32Array[] = []
    for (const batch of chunk(texts, this.#batchSize)) out.push(...(await this.#forward(batch, prefix)))
    return out
  }
}
