import pg from 'pg'
import { detectCapabilities, type Capabilities } from './db/capabilities.js'
import { openTarget, type TargetOptions } from './db/target.js'
import type { MigrationSettings } from './model/ir.js'
import { listMigrations } from './migrations/files.js'
import { readApplied, type AppliedMigration } from './migrations/run.js'
import { readQueueStats, type QueueStats } from './worker/queue.js'

export interface CatalogEntry {
  readonly table: string
  readonly column: string
  readonly model: string
  readonly dimensions: number
  readonly vectorType: string
  readonly mode: string
  readonly sourceColumns: readonly string[]
}

export interface Status {
  readonly target: { readonly kind: 'server' | 'embedded'; readonly description: string }
  readonly capabilities: Capabilities
  readonly applied: readonly AppliedMigration[]
  readonly pending: readonly string[]
  /** Applied migrations whose file is no longer in the migrations directory. */
  readonly missing: readonly string[]
  readonly embeddingColumns: readonly CatalogEntry[]
  /** Per queue-mode column: depth, leased, retrying, oldest job age, dead letters. */
  readonly queues: readonly QueueStats[]
}

/**
 * Applied and pending migrations, what the target can do, and the embedding columns its
 * `pgml_kit` catalog records.
 */
export async function readStatus(options: TargetOptions & { dir: string; settings: MigrationSettings }): Promise<Status> {
  const target = await openTarget(options)
  try {
    const client = new pg.Client({ connectionString: target.url })
    await client.connect()
    try {
      const [files, applied, capabilities] = await Promise.all([
        listMigrations(options.dir), readApplied(client, options.settings), detectCapabilities(client),
      ])
      const done = new Set(applied.map((a) => a.name))
      const onDisk = new Set(files.map((f) => f.name))
      const { rows: hasCatalog } = await client.query<{ ok: boolean }>(`SELECT to_regclass('pgml_kit.embedding_columns') IS NOT NULL AS ok`)
      const embeddingColumns: CatalogEntry[] = []
      if (hasCatalog[0]?.ok) {
        const { rows } = await client.query<{ table_schema: string; table_name: string; column_name: string; model_id: string; dimensions: number; vector_type: string; mode: string; source_columns: string[] }>(
          'SELECT table_schema, table_name, column_name, model_id, dimensions, vector_type, mode, source_columns FROM pgml_kit.embedding_columns ORDER BY 1, 2, 3')
        for (const r of rows) {
          embeddingColumns.push({ table: `${r.table_schema}.${r.table_name}`, column: r.column_name, model: r.model_id, dimensions: r.dimensions, vectorType: r.vector_type, mode: r.mode, sourceColumns: r.source_columns })
        }
      }
      return {
        target: { kind: target.kind, description: target.description },
        capabilities,
        applied,
        pending: files.filter((f) => !done.has(f.name)).map((f) => f.name),
        missing: applied.filter((a) => !onDisk.has(a.name)).map((a) => a.name),
        embeddingColumns,
        queues: await readQueueStats(client),
      }
    } finally {
      await client.end()
    }
  } finally {
    await target.close()
  }
}
