import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readDirectives, type MigrationDirectives } from './directives.js'

export interface MigrationOnDisk {
  readonly name: string
  readonly path: string
  readonly directives: MigrationDirectives
}

const MIGRATION_EXTENSIONS = /\.(sql|js|cjs|mjs|ts|cts|mts)$/

function numericPrefix(name: string): number {
  const match = /^(\d+)/.exec(name)
  return match ? Number(match[1]) : Number.NaN
}

/** Migration files in the order node-pg-migrate runs them (numeric prefix, then name). */
export async function listMigrations(dir: string): Promise<MigrationOnDisk[]> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
  const files = entries
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && !e.name.startsWith('.') && MIGRATION_EXTENSIONS.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => numericPrefix(a) - numericPrefix(b) || a.localeCompare(b))
  return Promise.all(files.map(async (file) => {
    const path = join(dir, file)
    const directives = file.endsWith('.sql') ? readDirectives(await readFile(path, 'utf8')) : { noTransaction: false, requires: [], downRequires: [] }
    return { name: file.replace(MIGRATION_EXTENSIONS, ''), path, directives }
  }))
}
