/**
 * Known sentence-embedding models: dimensions, prefixes and normalisation as their authors
 * document them. A config can name one of these ids instead of spelling the model out, and can
 * still override any field.
 */
export interface ModelPreset {
  readonly id: string
  readonly dimensions: number
  readonly documentPrefix: string
  readonly queryPrefix: string
  readonly normalize: boolean
  /** Token pooling the model was trained with (used by the local embedder). */
  readonly pooling: 'mean' | 'cls'
  /**
   * Hugging Face repository with ONNX weights of the same model, which transformers.js downloads
   * when the model is not found locally (the canonical repositories carry PyTorch weights only);
   * null for a model that ships with pgml-kit (under `models/`, see BUNDLED_MODELS_DIR).
   */
  readonly onnxRepository: string | null
}

/**
 * The model pgml-kit ships (built from WordNet by scripts/build-wordnet-model.py): static word
 * vectors, mean pooling, normalised, no prefixes. It works offline, in the local embedder and in
 * pgml_compat, and is what `init` and the example use.
 */
export const BUNDLED_MODEL_ID = 'pgml-kit/wordnet-static-128'

const E5 = { documentPrefix: 'passage: ', queryPrefix: 'query: ', normalize: true, pooling: 'mean' } as const
const BGE_QUERY = 'Represent this sentence for searching relevant passages: '

export const MODEL_PRESETS: Readonly<Record<string, ModelPreset>> = Object.freeze({
  [BUNDLED_MODEL_ID]: { id: BUNDLED_MODEL_ID, dimensions: 128, documentPrefix: '', queryPrefix: '', normalize: true, pooling: 'mean', onnxRepository: null },
  'intfloat/e5-small-v2': { id: 'intfloat/e5-small-v2', dimensions: 384, ...E5, onnxRepository: 'Xenova/e5-small-v2' },
  'intfloat/e5-base-v2': { id: 'intfloat/e5-base-v2', dimensions: 768, ...E5, onnxRepository: 'Xenova/e5-base-v2' },
  'intfloat/e5-large-v2': { id: 'intfloat/e5-large-v2', dimensions: 1024, ...E5, onnxRepository: 'Xenova/e5-large-v2' },
  'intfloat/multilingual-e5-small': { id: 'intfloat/multilingual-e5-small', dimensions: 384, ...E5, onnxRepository: 'Xenova/multilingual-e5-small' },
  'intfloat/multilingual-e5-base': { id: 'intfloat/multilingual-e5-base', dimensions: 768, ...E5, onnxRepository: 'Xenova/multilingual-e5-base' },
  'sentence-transformers/all-MiniLM-L6-v2': {
    id: 'sentence-transformers/all-MiniLM-L6-v2', dimensions: 384, documentPrefix: '', queryPrefix: '', normalize: true, pooling: 'mean', onnxRepository: 'Xenova/all-MiniLM-L6-v2',
  },
  'sentence-transformers/all-mpnet-base-v2': {
    id: 'sentence-transformers/all-mpnet-base-v2', dimensions: 768, documentPrefix: '', queryPrefix: '', normalize: true, pooling: 'mean', onnxRepository: 'Xenova/all-mpnet-base-v2',
  },
  'BAAI/bge-small-en-v1.5': {
    id: 'BAAI/bge-small-en-v1.5', dimensions: 384, documentPrefix: '', queryPrefix: BGE_QUERY, normalize: true, pooling: 'cls', onnxRepository: 'Xenova/bge-small-en-v1.5',
  },
  'BAAI/bge-base-en-v1.5': {
    id: 'BAAI/bge-base-en-v1.5', dimensions: 768, documentPrefix: '', queryPrefix: BGE_QUERY, normalize: true, pooling: 'cls', onnxRepository: 'Xenova/bge-base-en-v1.5',
  },
  'thenlper/gte-small': {
    id: 'thenlper/gte-small', dimensions: 384, documentPrefix: '', queryPrefix: '', normalize: true, pooling: 'mean', onnxRepository: 'Xenova/gte-small',
  },
  'thenlper/gte-base': {
    id: 'thenlper/gte-base', dimensions: 768, documentPrefix: '', queryPrefix: '', normalize: true, pooling: 'mean', onnxRepository: 'Xenova/gte-base',
  },
})
