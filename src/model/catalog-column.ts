import type { Distance, EmbeddingMode } from '../config/schema.js'
import { columnKey, type EmbeddingColumnNode, type VectorType } from './ir.js'

/**
 * A row of `pgml_kit.embedding_columns` as the database has it (read as jsonb: fields added by
 * later runtime versions may be missing on older ones).
 */
export interface CatalogRow {
  readonly table_schema: string
  readonly table_name: string
  readonly column_name: string
  readonly model_id: string
  readonly model_revision: string | null
  readonly dimensions: number
  readonly vector_type: VectorType
  readonly mode: EmbeddingMode
  readonly source_columns: readonly string[]
  readonly source_separator: string
  readonly source_expression: string
  readonly document_prefix: string
  readonly query_prefix: string
  readonly normalize: boolean
  readonly key_columns?: readonly string[]
  readonly pooling?: 'mean' | 'cls' | null
  readonly distance?: Distance | null
  readonly rollout_role?: 'next' | 'previous' | null
  readonly rollout_of?: string | null
}

/** A column as the live database describes it, with the fingerprint of its catalog row (see renderCatalogFingerprint). */
export interface LiveColumn {
  readonly node: EmbeddingColumnNode
  /** Null for a column the catalog does not have (or cannot be read): a guard then expects no row. */
  readonly fingerprint: string | null
}

/**
 * The column the catalog row describes. The catalog, not the config, is what the database holds:
 * during a staged model change the config names the new model while the live column still holds
 * the old one. `declared` (the config's column of that name) fills what an older runtime's row
 * lacks: the distance, and the pooling when the row's model is the config's.
 */
export function columnFromCatalog(row: CatalogRow, declared?: EmbeddingColumnNode): EmbeddingColumnNode {
  const sameModel = declared !== undefined && declared.model.id === row.model_id && declared.model.revision === row.model_revision && declared.model.dimensions === row.dimensions
  const pooling = row.pooling !== undefined ? row.pooling : sameModel ? declared.model.pooling : null
  return {
    schema: row.table_schema, table: row.table_name, column: row.column_name,
    sourceColumns: [...row.source_columns], separator: row.source_separator,
    model: {
      id: row.model_id, revision: row.model_revision, dimensions: row.dimensions,
      documentPrefix: row.document_prefix, queryPrefix: row.query_prefix, normalize: row.normalize, pooling: pooling ?? null,
    },
    vectorType: row.vector_type, mode: row.mode,
    keyColumns: row.key_columns && row.key_columns.length > 0 ? [...row.key_columns] : declared?.keyColumns ?? ['id'],
    distance: row.distance ?? declared?.distance ?? 'cosine',
    triggerFunction: null,
    ...(row.rollout_role ? { rollout: { role: row.rollout_role, of: row.rollout_of ?? row.column_name } } : {}),
  }
}

/**
 * What a worker or backfill serves for the config's `columns`: each one as the catalog describes
 * it, and the extra columns of its staged model change (a shadow being filled, a previous one kept
 * in sync). A declared column the catalog does not have (not migrated yet) is served as the config says.
 */
export function columnsOfConfig(columns: readonly EmbeddingColumnNode[], live: readonly LiveColumn[]): LiveColumn[] {
  const out: LiveColumn[] = []
  for (const column of columns) {
    const own = live.find((l) => columnKey(l.node) === columnKey(column) && !l.node.rollout)
    out.push(own ?? { node: column, fingerprint: null })
    for (const extra of live) {
      if (extra.node.rollout && extra.node.schema === column.schema && extra.node.table === column.table && extra.node.rollout.of === column.column) out.push(extra)
    }
  }
  return out
}
