import { readSearchCatalog, type Query } from '../db/live-catalog.js'
import { columnKey, type EmbeddingColumnNode } from '../model/ir.js'
import type { LiveColumn } from '../model/catalog-column.js'

/** What a search uses for a column of the config: the column as the database has it, and the fingerprint to expect. */
export interface SearchColumn {
  readonly node: EmbeddingColumnNode
  /** The catalog row's fingerprint (null: the catalog has no row); undefined: not checked (not read yet, or not readable). */
  readonly fingerprint: string | null | undefined
}

/**
 * A kit's copy of the `pgml_kit` catalog rows of the config's columns: the model, prefixes, type
 * and distance each column holds *in the database*. The query builders embed queries with it, not
 * with the config — during a staged model change the config already names the new model while the
 * column searches use still holds the old one, until the switch commits. Read once, on first need;
 * every search then checks, in the same statement, that the row is unchanged (a probe column the
 * kit compares and removes), and reads it again when it changed.
 */
export class CatalogCache {
  readonly #declared: readonly EmbeddingColumnNode[]
  #columns: ReadonlyMap<string, LiveColumn> | null = null
  #readable = false
  #vectorSchema: string | null = null
  #loading: Promise<boolean> | null = null
  /** Bumped on every read that changed something: a query compiled before is compiled again. */
  version = 0

  constructor(declared: readonly EmbeddingColumnNode[]) {
    this.#declared = declared
  }

  /** Whether the role can read the catalog (known after the first load). */
  get readable(): boolean {
    return this.#readable
  }

  /**
   * The schema pgvector is installed in (known after the first load; null before, or when it is
   * not installed): searches name its operators and types qualified with it, so they are found
   * whatever the application role's search_path.
   */
  get vectorSchema(): string | null {
    return this.#vectorSchema
  }

  /** Whether the catalog was read. */
  get loaded(): boolean {
    return this.#columns !== null
  }

  /** Reads the catalog unless it was read already (`own`: see refresh). */
  async ensure(query: Query, own = false): Promise<void> {
    if (this.#columns === null) await this.refresh(query, own)
  }

  /**
   * Reads the catalog again; true when anything a search uses changed. Concurrent callers share one
   * read — except a caller that holds a connection of its own (`own`: a transaction, a pinned
   * session), which reads on it: waiting for a read another caller started would wait for a free
   * connection of the pool, which the holders of all of them would never give back.
   */
  refresh(query: Query, own = false): Promise<boolean> {
    if (own) return this.#read(query)
    this.#loading ??= this.#read(query).finally(() => {
      this.#loading = null
    })
    return this.#loading
  }

  async #read(query: Query): Promise<boolean> {
    const { live, vectorSchema } = await readSearchCatalog(query, this.#declared)
    const next = new Map((live ?? []).filter((l) => !l.node.rollout).map((l) => [columnKey(l.node), l]))
    const before = this.#columns
    const changed = before === null || this.#readable !== (live !== null) || next.size !== before.size || this.#vectorSchema !== vectorSchema
      || [...next].some(([key, l]) => before.get(key)?.fingerprint !== l.fingerprint)
    this.#columns = next
    this.#readable = live !== null
    this.#vectorSchema = vectorSchema
    if (changed) this.version++
    return changed
  }

  /** The column as searches use it now: the catalog's row, or the config's column when there is none (or it cannot be read). */
  column(declared: EmbeddingColumnNode): SearchColumn {
    if (this.#columns === null || !this.#readable) return { node: declared, fingerprint: undefined }
    const live = this.#columns.get(columnKey(declared))
    return live ? { node: live.node, fingerprint: live.fingerprint } : { node: declared, fingerprint: null }
  }
}
