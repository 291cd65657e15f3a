import { PgmlKitError } from '../errors.js'
import type { VectorIndexNode } from '../model/ir.js'
import { DISTANCE_SUFFIX } from '../model/resolve.js'
import { deriveIdentifier } from '../sql/quote.js'

interface IndexEntry {
  method?: string
  distance?: keyof typeof DISTANCE_SUFFIX
  name?: string
  efSearch?: number
  probes?: number
}

/**
 * Writes a query-time default into the config file: `efSearch` (HNSW) or `probes` (IVFFlat) on
 * the index's entry, so the query builders use it (`index check --write`). The file is edited in
 * place, keeping its formatting and comments (magicast); a config that is not a literal object
 * (computed, imported) is left alone with an error that says what to add by hand.
 */
export async function writeSearchDefault(configPath: string, index: VectorIndexNode, value: number): Promise<string> {
  const key = index.method === 'hnsw' ? 'efSearch' : 'probes'
  const manual = `set ${key}: ${value} on tables.${index.table}.embeddings.${index.column}.indexes (the ${index.method} ${index.distance} index) by hand`
  // magicast (and the Babel parser under it) loads only when a config is written, not with every CLI command.
  const { loadFile, writeFile } = await import('magicast')
  const { getDefaultExportOptions } = await import('magicast/helpers')
  let entry: IndexEntry | undefined
  let mod: Awaited<ReturnType<typeof loadFile>>
  try {
    mod = await loadFile(configPath)
    const options = getDefaultExportOptions(mod) as { tables?: Record<string, { embeddings?: Record<string, { indexes?: IndexEntry[] }> }> }
    const indexes = options.tables?.[index.table]?.embeddings?.[index.column]?.indexes ?? []
    for (const candidate of indexes) {
      const method = candidate.method
      const distance = candidate.distance
      if (method !== index.method || distance === undefined) continue
      const name = candidate.name ?? deriveIdentifier([index.table, index.column, method, DISTANCE_SUFFIX[distance], 'idx'])
      if (name === index.name) entry = candidate
    }
  } catch (error) {
    throw new PgmlKitError('CONFIG_NOT_WRITABLE', `cannot edit ${configPath}: ${(error as Error).message}`, { where: configPath, hint: manual })
  }
  if (!entry) throw new PgmlKitError('CONFIG_NOT_WRITABLE', `cannot find the entry of index ${index.name} in ${configPath}`, { where: configPath, hint: manual })
  entry[key] = value
  await writeFile(mod, configPath)
  return `tables.${index.table}.embeddings.${index.column}.indexes: ${key} ${value}`
}
