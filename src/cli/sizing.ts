import pc from 'picocolors'
import type { LoadedConfig } from '../config/load.js'
import { openTarget } from '../db/target.js'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { readFill, readChunkFill, readPlanSizing, type Sizing } from '../indexes/sizing.js'
import { EMBEDDED_DIR } from '../db/embedded.js'
import { readSnapshot } from '../migrations/snapshot.js'
import type { GlobalOptions } from './options.js'
import { printable, withoutSecrets } from './output.js'
import { readLiveSchema } from '../migrations/live-schema.js'
import type { LiveSchema } from '../plan/live-checks.js'

/** What `plan` and `generate` read from a database given to them. */
export interface PlanDatabase {
  /** Table sizes, for 'auto' parameters, advice, IVFFlat deferral and staged model changes' switches. */
  readonly sizing?: Sizing
  /** The tables, keys and roles the config names, to refuse before writing what the migrations would refuse. */
  readonly live?: LiveSchema
}

/**
 * What `plan` and `generate` read from the database given with `--database-url` (or
 * `$DATABASE_URL`): table sizes, so the plan is sized for that database, and the tables, columns,
 * keys and roles the config names, so a config the migrations would refuse there is refused before
 * anything is written. Without one the plan is made from the config alone.
 */
export async function databaseFor(g: GlobalOptions, config: LoadedConfig): Promise<PlanDatabase> {
  const url = g.databaseUrl ?? process.env.DATABASE_URL
  if (!url) {
    const sizing = await embeddedFill(config)
    return sizing ? { sizing } : {}
  }
  // Asked for with --database-url, a database that does not answer is an error; found in $DATABASE_URL,
  // it only means the plan is made from the config alone (as without a database).
  if (g.databaseUrl === undefined) {
    return await read(url, config).catch((error: unknown) => {
      process.stderr.write(`${pc.yellow('note')} not checked or sized: $DATABASE_URL did not answer (${printable(withoutSecrets((error as Error).message))}); the plan is made from the config alone\n`)
      return {}
    })
  }
  return read(url, config)
}

async function read(url: string, config: LoadedConfig): Promise<PlanDatabase> {
  const target = await openTarget({ databaseUrl: url, cwd: config.root })
  try {
    const client = await target.connect('pgml-kit plan sizing')
    try {
      const live = await readLiveSchema(client, config.state, { dir: config.migrationsDir, settings: config.migrations }, target.description, config.tableRenames)
      // Sizes only matter to embedding columns, indexes and full-text columns.
      if (config.state.embeddingColumns.length + config.state.fullText.length === 0) return { live }
      return { live, sizing: await readPlanSizing(client, config.state, (await readSnapshot(config.migrationsDir)).state, target.description) }
    } finally {
      await client.end()
    }
  } finally {
    await target.close()
  }
}

/**
 * With no database given, a staged model change waiting for its switch is checked against the
 * project's embedded database, when it has one — the database migrate, backfill and status use by
 * default. Only how far its copies are filled: table sizes (for 'auto' parameters and advice) come
 * from a database given explicitly, never from a development copy.
 */
async function embeddedFill(config: LoadedConfig): Promise<Sizing | undefined> {
  const state = (await readSnapshot(config.migrationsDir)).state
  const copies = state.embeddingColumns.filter((c) => c.rollout)
  const chunkCopies = (state.chunkedColumns ?? []).filter((c) => c.rollout)
  if (copies.length + chunkCopies.length === 0 || !existsSync(join(config.root, EMBEDDED_DIR, 'data'))) return undefined
  const target = await openTarget({ databaseUrl: '', cwd: config.root })
  try {
    const client = await target.connect('pgml-kit plan')
    try {
      return { source: target.description, tables: new Map(), fill: new Map([...await readFill(client, copies), ...await readChunkFill(client, chunkCopies, state)]) }
    } finally {
      await client.end()
    }
  } finally {
    await target.close()
  }
}
