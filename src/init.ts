import { access, appendFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PgmlKitError } from './errors.js'
import { DEFAULT_CONFIG_FILE } from './config/load.js'
import { EMBEDDED_DIR } from './db/embedded.js'

export const EXAMPLE_CONFIG = `import { defineConfig } from 'pgml-kit'

export default defineConfig({
  tables: {
    documents: {
      embeddings: {
        // One vector per row, computed from the title and body joined by a blank line.
        body_embedding: {
          source: ['title', 'body'],
          // The model pgml-kit ships (128 dimensions, from WordNet; works offline). Any preset
          // such as 'intfloat/e5-small-v2' (384 dimensions, downloaded on first use) fits here.
          model: 'pgml-kit/wordnet-static-128',
          // "app": your application writes the vectors; works on any PostgreSQL with pgvector,
          // including the embedded default. On a server with pgml or pgml_compat, "trigger"
          // computes them inside the database on every write.
          mode: 'app',
          indexes: [{ method: 'hnsw', distance: 'cosine', m: 16, efConstruction: 64 }],
        },
      },
    },
  },
})
`

export const EXAMPLE_BASE_MIGRATION = `-- Hand-written base migration: the table the config adds embeddings to.
-- Up Migration
CREATE TABLE documents (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  title text NOT NULL,
  body text NOT NULL,
  department text,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE documents;
`

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false)
}

export interface InitResult {
  readonly created: readonly string[]
}

/**
 * Scaffolds a working start in `dir`: a config with one embedding column and a base migration
 * that creates its table, so `generate` then `migrate` work with no other step.
 */
export async function init(dir: string, options: { timestamp?: number } = {}): Promise<InitResult> {
  const configPath = join(dir, DEFAULT_CONFIG_FILE)
  const migrationsDir = join(dir, 'migrations')
  if (await exists(configPath)) {
    throw new PgmlKitError('INIT_EXISTS', `${configPath} already exists; init changes nothing in a project that has a config`, { where: configPath })
  }
  await mkdir(migrationsDir, { recursive: true })
  const basePath = join(migrationsDir, `${options.timestamp ?? Date.now()}_create-documents.sql`)
  await writeFile(configPath, EXAMPLE_CONFIG, { flag: 'wx' })
  await writeFile(basePath, EXAMPLE_BASE_MIGRATION, { flag: 'wx' })
  const created = [configPath, basePath]
  const gitignore = join(dir, '.gitignore')
  const ignored = (await exists(gitignore)) ? await readFile(gitignore, 'utf8') : ''
  if (!ignored.split('\n').some((line) => line.trim() === `${EMBEDDED_DIR}/` || line.trim() === EMBEDDED_DIR)) {
    await appendFile(gitignore, `${ignored && !ignored.endsWith('\n') ? '\n' : ''}${EMBEDDED_DIR}/\n`)
    created.push(gitignore)
  }
  return { created }
}
