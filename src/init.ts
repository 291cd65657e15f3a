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

export const EXAMPLE_SAMPLE_MIGRATION = `-- Hand-written: eight sample rows, so the quick start ends in a search with an answer.
-- Delete this file before the first migrate if you do not want them (or migrate down past it later).
-- Up Migration
INSERT INTO documents (title, body, department) VALUES
  ('Affordable housing programme', 'Rent support and new homes for families with low incomes.', 'housing'),
  ('Housing permits', 'How to apply for a building permit and how long it takes.', 'housing'),
  ('Park opening hours', 'City parks open at dawn and close at dusk, every day of the year.', 'parks'),
  ('Library cards', 'Any resident can get a library card at any public library.', 'libraries'),
  ('Bus and train fares', 'Public transit fares, passes and discounts for students.', 'transit'),
  ('Recycling collection', 'Which bins to use for paper, glass and plastic, and when they are collected.', 'waste'),
  ('Property tax', 'How the property tax is computed and when it is due.', 'finance'),
  ('School enrolment', 'Enrolling a child in a public school, and the documents you need.', 'schools');

-- Down Migration
DELETE FROM documents WHERE title IN ('Affordable housing programme', 'Housing permits', 'Park opening hours', 'Library cards',
  'Bus and train fares', 'Recycling collection', 'Property tax', 'School enrolment');
`

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false)
}

export interface InitResult {
  readonly created: readonly string[]
}

/**
 * Scaffolds a working start in `dir`: a config with one embedding column, a base migration that
 * creates its table and one with eight sample rows, so `generate`, `migrate`, `backfill` and
 * `search` work with no other step.
 */
export async function init(dir: string, options: { timestamp?: number } = {}): Promise<InitResult> {
  const configPath = join(dir, DEFAULT_CONFIG_FILE)
  const migrationsDir = join(dir, 'migrations')
  if (await exists(configPath)) {
    throw new PgmlKitError('INIT_EXISTS', `${configPath} already exists; init changes nothing in a project that has a config`, { where: configPath })
  }
  await mkdir(migrationsDir, { recursive: true })
  const timestamp = options.timestamp ?? Date.now()
  const basePath = join(migrationsDir, `${timestamp}_create-documents.sql`)
  const samplePath = join(migrationsDir, `${timestamp + 1}_sample-documents.sql`)
  await writeFile(configPath, EXAMPLE_CONFIG, { flag: 'wx' })
  await writeFile(basePath, EXAMPLE_BASE_MIGRATION, { flag: 'wx' })
  await writeFile(samplePath, EXAMPLE_SAMPLE_MIGRATION, { flag: 'wx' })
  const created = [configPath, basePath, samplePath]
  const gitignore = join(dir, '.gitignore')
  const ignored = (await exists(gitignore)) ? await readFile(gitignore, 'utf8') : ''
  if (!ignored.split('\n').some((line) => line.trim() === `${EMBEDDED_DIR}/` || line.trim() === EMBEDDED_DIR)) {
    await appendFile(gitignore, `${ignored && !ignored.endsWith('\n') ? '\n' : ''}${EMBEDDED_DIR}/\n`)
    created.push(gitignore)
  }
  return { created }
}
