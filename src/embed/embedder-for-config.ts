import type { EmbedderSettings, EmbeddingColumnNode } from '../model/ir.js'
import type { Embedder } from './embedder.js'
import { LocalEmbedder } from './local-embedder.js'

/**
 * The local embedders for a config's columns, one per model (shared by columns that use the same
 * model), loaded on first use.
 */
export function localEmbedderLoader(settings: EmbedderSettings): (column: Pick<EmbeddingColumnNode, 'model'>) => Promise<Embedder> {
  const cache = new Map<string, Promise<Embedder>>()
  return (column) => {
    const key = JSON.stringify(column.model)
    let embedder = cache.get(key)
    if (!embedder) {
      embedder = LocalEmbedder.load({ model: column.model, modelsDir: settings.modelsDir, allowRemoteModels: settings.allowRemoteModels, batchSize: settings.batchSize })
      cache.set(key, embedder)
      embedder.catch(() => cache.delete(key))
    }
    return embedder
  }
}
