import type { PgmlKitConfig } from './schema.js'

/**
 * Declares the embedding columns, vector indexes and migration settings of an app. It returns the
 * config unchanged; its job is the types. Validation happens when pgml-kit loads the file.
 *
 * @example
 * export default defineConfig({
 *   tables: {
 *     documents: {
 *       embeddings: {
 *         body_embedding: {
 *           source: ['title', 'body'],
 *           model: 'intfloat/e5-small-v2',
 *           mode: 'app',
 *           indexes: [{ method: 'hnsw', distance: 'cosine' }],
 *         },
 *       },
 *     },
 *   },
 * })
 */
export function defineConfig<const T extends PgmlKitConfig>(config: T): T {
  return config
}
