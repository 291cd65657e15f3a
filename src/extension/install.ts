import { execFileSync } from 'node:child_process'
import { copyFile, cp, readdir } from 'node:fs/promises'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PgmlKitError } from '../errors.js'
import { BUNDLED_MODELS_DIR } from '../model/bundled.js'

/** Where the extension's control file and versioned SQL scripts ship inside the package. */
export const PGML_COMPAT_DIR = fileURLToPath(new URL('../../extensions/pgml_compat/', import.meta.url))

/** `pg_config` to use: the given path, else the one on PATH, else the newest Debian-style install. */
export function findPgConfig(explicit?: string): string {
  if (explicit) return explicit
  try {
    execFileSync('pg_config', ['--version'], { stdio: 'ignore' })
    return 'pg_config'
  } catch {
    const base = '/usr/lib/postgresql'
    const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'pg_config'))).sort((a, b) => Number(b) - Number(a)) : []
    if (versions[0]) return join(base, versions[0], 'bin', 'pg_config')
  }
  throw new PgmlKitError('PG_CONFIG_NOT_FOUND', 'cannot find pg_config, which says where the server keeps its extensions', {
    hint: 'pass --pg-config /usr/lib/postgresql/15/bin/pg_config (Debian: apt-get install postgresql-server-dev-15), or run it on the database server',
  })
}

export interface InstallResult {
  readonly extensionDir: string
  readonly files: readonly string[]
  /** Where the models pgml-kit ships were copied (`<sharedir>/pgml_compat/models`), for pgml_compat.models_dir. */
  readonly modelsDir: string
}

/**
 * Copies pgml_compat's control file and SQL scripts into the local server's extension directory
 * (`pg_config --sharedir`/extension), and the models pgml-kit ships into
 * `<sharedir>/pgml_compat/models`. Needs write access there (usually root). After it,
 * `CREATE EXTENSION pgml_compat CASCADE` works in any database of that server.
 */
export async function installPgmlCompat(options: { pgConfig?: string } = {}): Promise<InstallResult> {
  const pgConfig = findPgConfig(options.pgConfig)
  const sharedir = execFileSync(pgConfig, ['--sharedir'], { encoding: 'utf8' }).trim()
  const extensionDir = join(sharedir, 'extension')
  const files = (await readdir(PGML_COMPAT_DIR)).filter((f) => f === 'pgml_compat.control' || /^pgml_compat--.*\.sql$/.test(f))
  const modelsDir = join(sharedir, 'pgml_compat', 'models')
  const copies: Array<[string, string, () => Promise<void>]> = [
    ...files.map((file): [string, string, () => Promise<void>] => [file, join(extensionDir, file), () => copyFile(join(PGML_COMPAT_DIR, file), join(extensionDir, file))]),
    ['models', modelsDir, () => cp(BUNDLED_MODELS_DIR, modelsDir, { recursive: true })],
  ]
  for (const [, target, copy] of copies) {
    try {
      await copy()
    } catch (error) {
      throw new PgmlKitError('EXTENSION_INSTALL_FAILED', `cannot write ${target}: ${(error as Error).message}`, {
        cause: error, hint: 'run it as a user who may write the server\'s extension directory (e.g. sudo npx pgml-kit extension install)',
      })
    }
  }
  return { extensionDir, files, modelsDir }
}
