import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { EmbeddingMode } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { generate } from '../../src/migrations/generate.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/**
 * The repository's root example copied into `cwd` with its column in `mode`: the config edited,
 * and the example's embedding migrations generated again for that mode (same name and timestamp,
 * so they still run before the seed rows, as in the example).
 */
export async function exampleInMode(cwd: string, mode: EmbeddingMode): Promise<void> {
  await cp(join(ROOT, 'migrations'), join(cwd, 'migrations'), { recursive: true })
  await writeFile(join(cwd, 'pgml-kit.config.ts'), (await readFile(join(ROOT, 'pgml-kit.config.ts'), 'utf8')).replace(/mode: 'queue'/, `mode: '${mode}'`))
  for (const file of await readdir(join(cwd, 'migrations'))) {
    if (file.includes('add-document-embeddings') || file === '.pgml-kit-snapshot.json') await rm(join(cwd, 'migrations', file))
  }
  await generate(await loadConfig('pgml-kit.config.ts', cwd), { name: 'add-document-embeddings', timestamp: 1795318396886 })
}
