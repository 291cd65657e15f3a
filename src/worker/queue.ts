import type pg from 'pg'
import { DEAD_LETTER_STATS, QUEUE_STATS, RETRY_DEAD_LETTERS } from '../sql/render-worker.js'
import { CATALOG_QUEUE_COLUMNS, RELATION_EXISTS } from '../sql/render-introspection.js'
import { columnKey, columnLabel } from '../model/ir.js'

export interface QueueStats {
  readonly column: string
  readonly depth: number
  readonly leased: number
  readonly retrying: number
  readonly oldestSeconds: number | null
  readonly deadLetters: number
}

async function hasQueue(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(RELATION_EXISTS, ['pgml_kit', 'embedding_jobs'])
  return rows[0]?.ok ?? false
}

/** Queue depth, jobs leased by workers, jobs retrying, the oldest job's age, and dead letters, per column. */
export async function readQueueStats(client: pg.ClientBase): Promise<QueueStats[]> {
  if (!(await hasQueue(client))) return []
  type Key = { table_schema: string; table_name: string; column_name: string }
  const name = (r: Key) => columnLabel({ schema: r.table_schema, table: r.table_name, column: r.column_name })
  // Kept apart by the column's identity, not its label: `a.b`.`c`.`d` and `a`.`b`.`c.d` read alike.
  const key = (r: Key) => columnKey({ schema: r.table_schema, table: r.table_name, column: r.column_name })
  const [queue, dead] = await Promise.all([
    client.query<Key & { depth: number; leased: number; retrying: number; oldest_seconds: number | null }>(QUEUE_STATS),
    client.query<Key & { dead: number }>(DEAD_LETTER_STATS),
  ])
  const stats = new Map<string, QueueStats>()
  // Every queue-mode column is listed, an empty queue included.
  const columns = await client.query<Key>(CATALOG_QUEUE_COLUMNS)
  for (const r of columns.rows) stats.set(key(r), { column: name(r), depth: 0, leased: 0, retrying: 0, oldestSeconds: null, deadLetters: 0 })
  for (const r of queue.rows) stats.set(key(r), { column: name(r), depth: r.depth, leased: r.leased, retrying: r.retrying, oldestSeconds: r.oldest_seconds, deadLetters: 0 })
  for (const r of dead.rows) {
    const existing = stats.get(key(r))
    stats.set(key(r), { ...(existing ?? { column: name(r), depth: 0, leased: 0, retrying: 0, oldestSeconds: null }), deadLetters: r.dead })
  }
  return [...stats.values()].sort((a, b) => a.column.localeCompare(b.column))
}

/** Puts dead letters (of one column, or all) back in the queue with fresh attempts; returns how many. */
export async function retryDeadLetters(client: pg.ClientBase, column?: { schema: string; table: string; column: string }): Promise<number> {
  if (!(await hasQueue(client))) return 0
  const { rowCount } = await client.query(RETRY_DEAD_LETTERS, [column?.schema ?? null, column?.table ?? null, column?.column ?? null])
  return rowCount ?? 0
}
