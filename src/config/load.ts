import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createJiti } from 'jiti'
import { PgmlKitError } from '../errors.js'
import { embedderSettingsAt, resolveConfig, type ResolvedConfig } from '../model/resolve.js'
import type { EmbedderSettings } from '../model/ir.js'
import type { PgmlKitConfig } from './schema.js'

export const DEFAULT_CONFIG_FILE = 'pgml-kit.config.ts'

/** `import ... from 'pgml-kit'` inside a config resolves to the pgml-kit that is loading it. */
function selfEntry(): string {
  for (const candidate of ['../index.js', '../index.ts']) {
    const path = fileURLToPath(new URL(candidate, import.meta.url))
    if (existsSync(path)) return path
  }
  throw new Error('pgml-kit cannot find its own entry point')
}

export interface LoadedConfig extends ResolvedConfig {
  /** Absolute path of the config file. */
  readonly path: string
  /** Directory the config lives in; relative paths in it are resolved from here. */
  readonly root: string
  /** Absolute migrations directory. */
  readonly migrationsDir: string
  /** Embedder settings with `modelsDir` made absolute. */
  readonly embedder: EmbedderSettings
  /** The config object as the file exports it (validated), for APIs that take a config, like createKit. */
  readonly source: PgmlKitConfig
}

/**
 * Loads `pgml-kit.config.ts` (TypeScript or JavaScript, default export), validates and resolves it.
 */
export async function loadConfig(configPath = DEFAULT_CONFIG_FILE, cwd = process.cwd()): Promise<LoadedConfig> {
  const path = resolve(cwd, configPath)
  if (!existsSync(path)) {
    throw new PgmlKitError('CONFIG_NOT_FOUND', `no config file at ${path}`, { where: path, hint: 'run `pgml-kit init` to create one, or pass --config <path>' })
  }
  const jiti = createJiti(import.meta.url, { alias: { 'pgml-kit': selfEntry() }, moduleCache: false, fsCache: false })
  let exported: unknown
  try {
    exported = await jiti.import(path, { default: true })
  } catch (error) {
    throw new PgmlKitError('CONFIG_LOAD_FAILED', `could not load ${path}: ${(error as Error).message}`, { where: path, cause: error })
  }
  const resolved = resolveConfig(exported, configPath)
  const root = resolve(path, '..')
  return {
    ...resolved,
    embedder: embedderSettingsAt(resolved.embedder, root),
    path, root, migrationsDir: resolve(root, resolved.migrations.dir),
    source: exported as PgmlKitConfig,
  }
}
