import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { loadConfig } from '../../src/config/load.js'
import pg from 'pg'
import { generate, type GenerateResult } from '../../src/migrations/generate.js'
import { readPlanSizing, type Sizing } from '../../src/indexes/sizing.js'
import { readSnapshot } from '../../src/migrations/snapshot.js'
import { migrate, type MigrateResult } from '../../src/migrations/run.js'
import { runWorker, type WorkerTotals } from '../../src/worker/run-worker.js'
import { backfill } from '../../src/worker/backfill.js'
import { readColumnWithCopies } from '../../src/db/live-catalog.js'
import { localEmbedderLoader } from '../../src/embed/embedder-for-config.js'
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

  /**
   * Generates as a user who reviewed the plan: destructive steps allowed unless told otherwise.
   * `sized`: against the test database, as `generate --database-url` (sizes, and whether the new
   * model's column of a staged model change is filled); `switch: 'always'` as `generate --switch`.
   */
  async generate(name = 'change', options: { allowDestructive?: boolean; sized?: boolean; switch?: 'always' | 'never' } = {}): Promise<string[]> {
    return [...(await this.generateWith(name, options)).written]
  }

  async generateWith(name: string, options: { allowDestructive?: boolean; sized?: boolean; switch?: 'always' | 'never' } = {}): Promise<GenerateResult> {
    const config = await loadConfig('pgml-kit.config.ts', this.db.cwd)
    const sizing = options.sized ? await this.sizing() : undefined
    return generate(config, {
      name, timestamp: (this.#timestamp += 1000), allowDestructive: options.allowDestructive ?? true,
      ...(options.switch ? { switch: options.switch } : {}), ...(sizing ? { sizing } : {}),
    })
  }

  /** What `plan --database-url` reads from the test database. */
  async sizing(): Promise<Sizing> {
    const config = await loadConfig('pgml-kit.config.ts', this.db.cwd)
    const client = new pg.Client({ connectionString: this.db.url })
    await client.connect()
    try {
      return await readPlanSizing(client, config.state, (await readSnapshot(config.migrationsDir)).state, 'test database')
    } finally {
      await client.end()
    }
  }

  async migrate(direction: 'up' | 'down' = 'up', count?: number): Promise<MigrateResult> {
    const config = await loadConfig('pgml-kit.config.ts', this.db.cwd)
    return migrate({
      databaseUrl: this.db.databaseUrl, cwd: this.db.cwd, dir: config.migrationsDir, settings: config.migrations, direction,
      ...(count === undefined ? {} : { count }),
    })
  }

  /** As `pgml-kit worker --once`: the config's columns as the catalog has them, with the local models the config names. */
  async work(options: { batchSize?: number } = {}): Promise<WorkerTotals> {
    const config = await loadConfig('pgml-kit.config.ts', this.db.cwd)
    return runWorker({
      url: this.db.url, columns: config.state.embeddingColumns, loadEmbedder: localEmbedderLoader(config.embedder),
      chunked: config.state.chunkedColumns ?? [], loadChunkEmbedder: localEmbedderLoader(config.embedder), once: true, ...options,
    })
  }

  /** As `pgml-kit backfill <table>.<column>` for the config's first column: it, then the copies of its staged model change. */
  async backfill(options: { batchSize?: number } = {}): Promise<void> {
    const config = await loadConfig('pgml-kit.config.ts', this.db.cwd)
    for (const column of await readColumnWithCopies(this.db.url, config.state.embeddingColumns[0]!)) {
      await backfill({ url: this.db.url, column, loadEmbedder: localEmbedderLoader(config.embedder), ...options })
    }
  }
}
