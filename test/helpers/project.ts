import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import { generate } from '../../src/migrations/generate.js'
import { migrate, type MigrateResult } from '../../src/migrations/run.js'
import { DOCUMENTS_TABLE } from './fixtures.js'
import type { TestDatabase } from './targets.js'

/** A project on disk (config + migrations) bound to a test database, driven through the library. */
export class TestProject {
  #timestamp = 2_000_000_000_000
  readonly db: TestDatabase

  constructor(db: TestDatabase) {
    this.db = db
  }

  get migrationsDir(): string {
    return join(this.db.cwd, 'migrations')
  }

  /**
   * A plain `export default {...}`: loading it from the TypeScript sources stays quick (a config that
   * imports from 'pgml-kit' is loaded by the CLI, example and package tests, from dist/).
   */
  async writeConfig(config: PgmlKitConfig): Promise<void> {
    await writeFile(join(this.db.cwd, 'pgml-kit.config.ts'), `export default ${JSON.stringify(config, null, 2)}\n`)
  }

  async writeMigration(fileName: string, content: string): Promise<void> {
    await mkdir(this.migrationsDir, { recursive: true })
    await writeFile(join(this.migrationsDir, fileName), content)
  }

  async withDocumentsTable(config: PgmlKitConfig): Promise<this> {
    await this.writeMigration('1000000000000_create-documents.sql', DOCUMENTS_TABLE)
    await this.writeConfig(config)
    return this
  }

  /** Generates as a user who reviewed the plan: destructive steps allowed unless told otherwise. */
  async generate(name = 'change', options: { allowDestructive?: boolean } = {}): Promise<string[]> {
    const config = await loadConfig('pgml-kit.config.ts', this.db.cwd)
    const { written } = await generate(config, { name, timestamp: (this.#timestamp += 1000), allowDestructive: options.allowDestructive ?? true })
    return [...written]
  }

  async migrate(direction: 'up' | 'down' = 'up', count?: number): Promise<MigrateResult> {
    const config = await loadConfig('pgml-kit.config.ts', this.db.cwd)
    return migrate({
      databaseUrl: this.db.databaseUrl, cwd: this.db.cwd, dir: config.migrationsDir, settings: config.migrations, direction,
      ...(count === undefined ? {} : { count }),
    })
  }
}
