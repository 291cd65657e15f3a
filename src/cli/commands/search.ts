import type { Command } from 'commander'
import Table from 'cli-table3'
import { loadConfig } from '../../config/load.js'
import { oneConnectionPool } from '../../db/connect.js'
import { openTarget } from '../../db/target.js'
import { findColumn } from '../../model/find-column.js'
import { printable, printJson } from '../output.js'
import { globals, positiveInt } from '../options.js'

export function registerSearch(program: Command): void {
  program.command('search')
    .description('semantic search from the command line: the rows nearest to a text, with their distance')
    .argument('<column>', '<table>.<column>')
    .argument('<query>', 'text to search for')
    .option('-k <n>', 'rows to return', positiveInt('-k'), 5)
    .option('--ef-search <n>', 'hnsw.ef_search for this query (default: the config\'s efSearch, else the server\'s)', positiveInt('--ef-search'))
    .option('--probes <n>', 'ivfflat.probes for this query (default: the config\'s probes, else the server\'s)', positiveInt('--probes'))
    .action(async (arg: string, query: string, opts: { k: number; efSearch?: number; probes?: number }, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      const column = findColumn(config.state.embeddingColumns, arg)
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
        process.stdout.write(`${table.toString()}\n`)
      } finally {
        await db.destroy()
        await target.close()
      }
    })
}
