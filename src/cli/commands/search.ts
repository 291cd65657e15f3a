import type { Command } from 'commander'
import Table from 'cli-table3'
import { loadConfig } from '../../config/load.js'
import { oneConnectionPool } from '../../db/connect.js'
import { openTarget } from '../../db/target.js'
import { findColumn } from '../../model/find-column.js'
import { printable, printJson, tableText } from '../output.js'
import { globals, positiveInt } from '../options.js'
import { PgmlKitError } from '../../errors.js'
import type { ChunkedColumnNode } from '../../model/ir.js'
import type { LoadedConfig } from '../../config/load.js'

export function registerSearch(program: Command): void {
  program.command('search')
    .description('semantic search from the command line: the rows nearest to a text, with their distance')
    .argument('<column>', '<table>.<column>')
    .argument('<query>', 'text to search for')
    .option('-k <n>', 'rows to return', positiveInt('-k'), 5)
    .option('--ef-search <n>', 'hnsw.ef_search for this query (default: the config\'s efSearch, else the server\'s)', positiveInt('--ef-search'))
    .option('--probes <n>', 'ivfflat.probes for this query (default: the config\'s probes, else the server\'s)', positiveInt('--probes'))
    .option('--chunks', 'a chunked column: list the nearest chunks instead of documents (each with its best chunk)')
    .option('--hybrid', 'a chunked column with chunking.fullText: fuse vector and full-text search over its chunks')
    .action(async (arg: string, query: string, opts: { k: number; efSearch?: number; probes?: number; chunks?: boolean; hybrid?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      const chunked = (config.state.chunkedColumns ?? []).find((c) => arg === `${c.table}.${c.column}` || arg === `${c.schema}.${c.table}.${c.column}`)
      if (chunked) return searchChunked(chunked, query, opts, g, config)
      if (opts.chunks || opts.hybrid) throw new PgmlKitError('NOT_CHUNKED', `${arg} is not a chunked column: --chunks and --hybrid search chunks`, { hint: 'declare chunking on the column, or leave the option out' })
      const column = findColumn(config.state.embeddingColumns, arg, config.state.chunkedColumns)
      const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
      // Kysely and the query builders load only here: importing them takes about 0.3 s that no other command needs.
      const [{ Kysely, PostgresDialect }, { createKit }] = await Promise.all([import('kysely'), import('../../query/create-kit.js')])
      // One connection, opened through the target like every other command's (a failure to connect is a TargetError).
      const pool = oneConnectionPool(target, 'pgml-kit search')
      const db = new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool }) })
      try {
        // The config as loaded; its column refs are only known at run time here.
        const kit = createKit(config.source, { db, cwd: config.root }) as unknown as {
          search(ref: string, q: string, o: object): { select(cols: string[]): { execute(): Promise<Record<string, unknown>[]> } }
        }
        const columns = [...column.keyColumns, ...column.sourceColumns]
        const rows = await kit.search(`${column.table}.${column.column}`, query, { k: opts.k, ...(opts.efSearch ? { efSearch: opts.efSearch } : {}), ...(opts.probes ? { probes: opts.probes } : {}) }).select(columns).execute()
        if (g.json) return printJson(rows)
        const table = new Table({ head: [...columns.map((c) => printable(c)), 'distance'], style: { head: [], border: [] }, wordWrap: true, colWidths: [...columns.map((c) => (column.keyColumns.includes(c) ? 8 : 40)), 12] })
        for (const row of rows) table.push([...columns.map((c) => printable(row[c] ?? '')), Number(row.distance).toFixed(4)])
        process.stdout.write(tableText(table, { rules: true }))
      } finally {
        await db.destroy()
        await target.close()
      }
    })
}

/** `search` on a chunked column: documents with their best chunk (position and text, for citations), or chunks. */
async function searchChunked(node: ChunkedColumnNode, query: string, opts: { k: number; efSearch?: number; chunks?: boolean; hybrid?: boolean }, g: ReturnType<typeof globals>, config: LoadedConfig): Promise<void> {
  const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
  const [{ Kysely, PostgresDialect }, { createKit }] = await Promise.all([import('kysely'), import('../../query/create-kit.js')])
  const pool = oneConnectionPool(target, 'pgml-kit search')
  const db = new Kysely<Record<string, Record<string, unknown>>>({ dialect: new PostgresDialect({ pool }) })
  try {
    type Hit = { document?: Record<string, unknown>; key?: Record<string, unknown>; seq?: number; chunk: string | { seq: number; text: string; distance: number | null; score?: number } ; distance?: number | null; score?: number }
    const kit = createKit(config.source, { db, cwd: config.root }) as unknown as {
      searchChunks(ref: string, q: string, o: object): Promise<Hit[]>
      hybridSearchChunks(ref: string, q: string, o: object): Promise<Hit[]>
    }
    const ref = `${node.table}.${node.column}`
    const columns = opts.chunks ? [...node.keyColumns] : [...new Set([...node.keyColumns, ...node.templateColumns])]
    const options = { k: opts.k, return: opts.chunks ? 'chunks' : 'documents', ...(opts.chunks ? {} : { columns }), ...(opts.efSearch ? { efSearch: opts.efSearch } : {}) }
    const hits = opts.hybrid ? await kit.hybridSearchChunks(ref, query, options) : await kit.searchChunks(ref, query, options)
    if (g.json) return printJson(hits)
    const measure = opts.hybrid ? 'score' : 'distance'
    const table = new Table({ head: [...columns.map((c) => printable(c)), 'chunk', 'text', measure], style: { head: [], border: [] }, wordWrap: true, colWidths: [...columns.map(() => 14), 7, 56, 10] })
    for (const hit of hits) {
      const fields = hit.document ?? hit.key ?? {}
      const chunk = typeof hit.chunk === 'string' ? { seq: hit.seq ?? 0, text: hit.chunk, distance: hit.distance ?? null, score: hit.score } : hit.chunk
      const value = opts.hybrid ? chunk.score : chunk.distance
      table.push([...columns.map((c) => printable(fields[c] ?? '')), String(chunk.seq), printable(chunk.text.length > 300 ? `${chunk.text.slice(0, 297)}...` : chunk.text), value === null || value === undefined ? '—' : Number(value).toFixed(4)])
    }
    process.stdout.write(tableText(table, { rules: true }))
  } finally {
    await db.destroy()
    await target.close()
  }
}
