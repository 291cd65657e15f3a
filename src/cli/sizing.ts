import pc from 'picocolors'
import type { LoadedConfig } from '../config/load.js'
import { openTarget } from '../db/target.js'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { readFill, readPlanSizing, type Sizing } from '../indexes/sizing.js'
import { EMBEDDED_DIR } from '../db/embedded.js'
import { readSnapshot } from '../migrations/snapshot.js'
import type { GlobalOptions } from './options.js'
import { printable, withoutSecrets } from './output.js'

/**
 * Table sizes for `plan` and `generate`, read from the database given with `--database-url` (or
 * `$DATABASE_URL`): the plan is then sized for that database. Without one (or with no index in
 * the config) the plan is made from the config alone.
 */
export async function sizingFor(g: GlobalOptions, config: LoadedConfig): Promise<Sizing | undefined> {
  const url = g.databaseUrl ?? process.env.DATABASE_URL
  if (!url) return embeddedFill(config)
  if (config.state.embeddingColumns.length + config.state.fullText.length === 0) return undefined
  // Asked for with --database-url, a database that does not answer is an error; found in $DATABASE_URL,
  // it only means the plan is made from the config alone (as without a database).
  if (g.databaseUrl === undefined) {
    return await read(url, config).catch((error: unknown) => {
      process.stderr.write(`${pc.yellow('note')} not sized: $DATABASE_URL did not answer (${printable(withoutSecrets((error as Error).message))}); the plan is made from the config alone\n`)
      return undefined
    })
  }
  return read(url, config)
}

async function read(url: string, config: LoadedConfig): Promise<Sizing> {
  const target = await openTarget({ databaseUrl: url, cwd: config.root })
  try {
    const client = await target.connect('pgml-kit plan sizing')
    try {
      return await readPlanSizing(client, config.state, (await readSnapshot(config.migrationsDir)).state, target.description)
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
  const copies = (await readSnapshot(config.migrationsDir)).state.embeddingColumns.filter((c) => c.rollout)
  if (copies.length === 0 || !existsSync(join(config.root, EMBEDDED_DIR, 'data'))) return undefined
  const target = await openTarget({ databaseUrl: '', cwd: config.root })
  try {
    const client = await target.connect('pgml-kit plan')
    try {
      return { source: target.description, tables: new Map(), fill: await readFill(client, copies) }
    } finally {
      await client.end()
    }
  } finally {
    await target.close()
  }
}
