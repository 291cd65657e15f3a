import type pg from 'pg'
import { PgmlKitError } from '../errors.js'
import { chunkedCopy, parseChunkTableComment, withChunkSettings, type ChunkSettings } from '../model/chunk-rollout.js'
import type { ChunkedColumnNode } from '../model/ir.js'
import { quoteQualified } from '../sql/quote.js'
import { OWNER_HAS_RIGHTS_OF, READ_CHUNK_TABLE_COMMENT, READ_CHUNK_TABLES, RELEASE_SAVEPOINT, ROLLBACK_TO_SAVEPOINT, SAVEPOINT, renderLockChunkTables } from '../sql/render-chunks.js'

/**
 * A chunk table as the database has it: the config's chunked column (or a staged change's copy of
 * it, `<column>__next` / `<column>__previous`) with the settings the table's comment records — the
 * ones its chunks are made with, which during a staged change are not the config's for the live
 * table — and that comment, which a write checks again under its lock (chunkSettingsGuard).
 */
export interface ServedChunks {
  readonly node: ChunkedColumnNode
  /** The table's comment when it was read (null: none, a table from before settings were recorded: the config's settings are used). */
  readonly comment: string | null
  /** Whether the table exists (a live table not migrated yet does not). */
  readonly present: boolean
}

/**
 * The chunk tables of the config's chunked columns that the database has — each live table, and
 * the copies of a staged chunking change that pgml-kit made — with their own settings. A live table not migrated yet
 * is served with the config's settings (its jobs cannot exist yet). A table whose recorded model
 * is not the config's is refused: its chunks would be embedded with another model than searches use.
 */
export async function servedChunkedColumns(client: pg.ClientBase, columns: readonly ChunkedColumnNode[]): Promise<ServedChunks[]> {
  if (columns.length === 0) return []
  const live = columns.filter((c) => !c.rollout)
  const candidates = live.flatMap((c) => [c, chunkedCopy(c, 'next'), chunkedCopy(c, 'previous')])
  const { rows } = await client.query<{ present: boolean; comment: string | null; owner: string | null }>(READ_CHUNK_TABLES, [candidates.map((c) => c.schema), candidates.map((c) => c.chunkTable)])
  const out: ServedChunks[] = []
  for (let i = 0; i < candidates.length; i += 3) {
    const [liveRow, ...copyRows] = [rows[i], rows[i + 1], rows[i + 2]]
    const node = candidates[i]!
    if (!liveRow?.present) {
      // Not migrated yet: the config's settings (no job can exist yet); no copy is served without it.
      out.push({ node, comment: null, present: false })
      continue
    }
    // A copy is one pgml-kit made: owned by a role with the live chunk table's owner's rights (the
    // migrating role, or a superuser that migrated). A table of that name made by another role (any
    // role with CREATE on the schema can make one) is never read, written nor trusted for its comment.
    const copies: { node: ChunkedColumnNode; row: NonNullable<typeof liveRow> }[] = []
    for (const [k, row] of copyRows.entries()) {
      if (!row?.present) continue
      const trusted = row.owner === liveRow.owner || (await client.query<{ ok: boolean }>(OWNER_HAS_RIGHTS_OF, [row.owner, liveRow.owner])).rows[0]?.ok === true
      if (trusted) copies.push({ node: candidates[i + 1 + k]!, row })
    }
    const settings = parseChunkTableComment(liveRow.comment)
    if (!settings && copies.length > 0) {
      throw new PgmlKitError('CHUNK_SETTINGS_UNKNOWN', `the chunk table ${node.schema}.${node.chunkTable} records no pgml-kit settings in its comment, and a staged chunking change of ${node.table}.${node.column} is in progress: its chunks cannot be kept without knowing how they were made`, {
        hint: 'pgml-kit migrate writes the comment with the shadow stage; if it was replaced by hand, put back the one in the migration that created the shadow',
      })
    }
    out.push({ node: settings ? applySettings(node, settings) : node, comment: liveRow.comment, present: true })
    for (const copy of copies) {
      const own = parseChunkTableComment(copy.row.comment)
      if (!own) {
        throw new PgmlKitError('CHUNK_SETTINGS_UNKNOWN', `the chunk table ${copy.node.schema}.${copy.node.chunkTable} records no pgml-kit settings in its comment`, {
          hint: 'put back the comment of the migration that created it (COMMENT ON TABLE), or drop the staged change',
        })
      }
      out.push({ node: applySettings(copy.node, own), comment: copy.row.comment, present: true })
    }
  }
  return out
}

function applySettings(node: ChunkedColumnNode, settings: ChunkSettings): ChunkedColumnNode {
  const m = settings.model
  if (m.id !== node.model.id || m.revision !== node.model.revision || m.dimensions !== node.model.dimensions || settings.vectorType !== node.vectorType) {
    throw new PgmlKitError('CHUNK_MODEL_MISMATCH', `the chunk table ${node.schema}.${node.chunkTable} holds ${m.id}${m.revision ? `@${m.revision}` : ''} ${settings.vectorType}(${m.dimensions}) vectors, and the config says ${node.model.id}${node.model.revision ? `@${node.model.revision}` : ''} ${node.vectorType}(${node.model.dimensions}) for ${node.table}.${node.rollout?.of ?? node.column}`, {
      hint: 'run with the config the database was migrated with (pgml-kit generate and migrate first)',
    })
  }
  return withChunkSettings(node, settings)
}

/**
 * What a write of `served`'s chunks checks first in its transaction: the chunk table locked against
 * a switch (ROW EXCLUSIVE, as writing takes anyway), then its comment read again; a different one
 * means a staged change's switch renamed the tables since the settings were read — the chunks made
 * are not this table's, and nothing is written.
 */
export interface ChunkSettingsGuard {
  readonly lock: string
  readonly read: string
  readonly table: string
  readonly expected: string | null
}

export function chunkSettingsGuard(served: ServedChunks): ChunkSettingsGuard {
  return { lock: renderLockChunkTables([served.node]), read: READ_CHUNK_TABLE_COMMENT, table: quoteQualified(served.node.schema, served.node.chunkTable), expected: served.comment }
}

/** Runs the guard in the caller's open transaction: true when the table still has the settings the chunks were made with. */
export async function checkChunkSettings(client: pg.ClientBase, guard: ChunkSettingsGuard): Promise<boolean> {
  await client.query(guard.lock)
  const comment = (await client.query<{ comment: string | null }>(guard.read, [guard.table])).rows[0]?.comment ?? null
  return comment === guard.expected
}

/**
 * The chunk tables of `node` in the caller's transaction, locked against a switch (ROW EXCLUSIVE)
 * and read again under the lock: the embedding writer writes each with its own settings, and a
 * switch waits for the write's transaction (or went before it, and is what is read).
 */
export async function lockedChunkTables(client: pg.ClientBase, node: ChunkedColumnNode): Promise<ServedChunks[]> {
  for (let attempt = 1; ; attempt++) {
    const present = (await servedChunkedColumns(client, [node])).filter((s) => s.present)
    if (present.length === 0) return []
    // The live table alone (no staged change, the usual case): its name always names a table.
    if (present.length === 1 && !present[0]!.node.rollout) {
      await client.query(renderLockChunkTables([present[0]!.node]))
      return (await servedChunkedColumns(client, [node])).filter((s) => s.present)
    }
    // A switch, its down or the drop of the previous chunks may rename or drop a copy between
    // the read and the lock: the lock is then taken again on the names as they are now.
    await client.query(SAVEPOINT)
    try {
      await client.query(renderLockChunkTables(present.map((s) => s.node)))
      await client.query(RELEASE_SAVEPOINT)
    } catch (error) {
      await client.query(ROLLBACK_TO_SAVEPOINT)
      if ((error as { code?: unknown }).code !== '42P01' || attempt >= 5) throw error
      continue
    }
    return (await servedChunkedColumns(client, [node])).filter((s) => s.present)
  }
}
