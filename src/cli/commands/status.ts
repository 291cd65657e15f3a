import type { Command } from 'commander'
import Table from 'cli-table3'
import pc from 'picocolors'
import { formatBytes } from '../../indexes/advice.js'
import { loadConfig } from '../../config/load.js'
import { readStatus } from '../../status.js'
import { EXIT, printable, printJson, tableText } from '../output.js'
import { globals, type CommandContext } from '../options.js'
import { readSnapshot } from '../../migrations/snapshot.js'
import { generatedState } from '../../migrations/generate.js'

export function registerStatus(program: Command, ctx: CommandContext): void {
  program.command('status')
    .description('applied and pending migrations, target capabilities, managed embedding columns')
    .option('--truncation', 'count the rows whose text is longer than their model\'s window (the model embeds only the start of those): reads every long text and loads the models')
    .option('--drift', 'compare the live database with the migrations\' snapshot (columns, triggers, indexes, catalog, grants), print the fix for each difference, and exit 1 if there is any')
    .action(async (opts: { drift?: boolean; truncation?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const config = await loadConfig(g.config)
      const snapshot = opts.drift ? await readSnapshot(config.migrationsDir) : null
      const status = await readStatus({ databaseUrl: g.databaseUrl, cwd: config.root, dir: config.migrationsDir, settings: config.migrations, state: await generatedState(config), ...(snapshot ? { drift: snapshot.state } : {}), ...(opts.truncation ? { truncation: { loadEmbedder: (await import('../../embed/embedder-for-config.js')).localEmbedderLoader(config.embedder) } } : {}) })
      // Warnings (rows without vectors yet) are printed, not failed on: nothing is broken.
      if (status.drift && status.drift.some((d) => d.severity !== 'warning')) ctx.exit.code = EXIT.checkFailed
      if (g.json) return printJson(status)
      const c = status.capabilities
      process.stdout.write(`${pc.bold('target')}    ${printable(status.target.description)}\n`)
      process.stdout.write(`${pc.bold('postgres')}  ${printable(c.serverVersion)}\n`)
      process.stdout.write(`${pc.bold('pgvector')}  ${c.vector.installed ? `${printable(c.vector.installed)} installed` : c.vector.available ? `${printable(c.vector.available)} available, not installed` : pc.red('not available')}\n`)
      const pgml = { pgml: `PostgresML ${printable(c.pgmlVersion)}`, pgml_compat: `pgml_compat ${printable(c.pgmlVersion)}`, unmanaged: 'pgml.embed present (not from an extension)', installable: 'available, not installed', absent: 'absent (modes "trigger" and "generated" need it)' }[c.pgml]
      process.stdout.write(`${pc.bold('pgml')}      ${pgml}\n\n`)
      const table = new Table({ head: ['migration', 'state'], style: { head: [], border: [] } })
      for (const a of status.applied) table.push([printable(a.name), `applied ${a.runOn.toISOString()}`])
      for (const p of status.pending) table.push([printable(p), pc.yellow('pending')])
      for (const m of status.missing) table.push([printable(m), pc.red('applied, file missing')])
      process.stdout.write(tableText(table))
      if (status.embeddingColumns.length > 0) {
        const truncation = status.embeddingColumns.some((e) => e.truncation !== undefined)
        const columns = new Table({ head: ['embedding column', 'stage', 'model', 'type', 'mode', 'source', 'vectors', ...(truncation ? ['truncated'] : [])], style: { head: [], border: [] } })
        const short = (table: string, column: string) => printable(`${table.replace(/^public\./, '')}.${column}`)
        for (const e of status.embeddingColumns) {
          const p = e.progress
          const vectors = p === null ? pc.dim('-') : p.missing === 0 ? pc.green(`all ${p.withText}`)
            : `${pc.yellow(`${Math.floor((100 * (p.withText - p.missing)) / Math.max(1, p.withText))}%`)}, ${p.missing} missing (pgml-kit backfill ${short(e.table, e.rollout?.of ?? e.column)})`
          const stage = e.rollout === null ? 'live' : e.rollout.role === 'next' ? `next model of ${e.rollout.of}` : `previous model of ${e.rollout.of}`
          const t = e.truncation
          const truncated = t === undefined ? [] : [t === null ? pc.dim('-') : t.truncated === 0 ? pc.green('none') : pc.yellow(`${t.truncated} rows past ${t.window} tokens`)]
          columns.push([printable(`${e.table}.${e.column}`), printable(stage), printable(e.model), printable(`${e.vectorType}(${e.dimensions})`), printable(e.mode), e.sourceColumns.map((s) => printable(s)).join(', '), vectors, ...truncated])
        }
        process.stdout.write(tableText(columns))
        // What each staged model change needs next.
        for (const e of status.embeddingColumns) {
          if (!e.rollout) continue
          const p = e.progress
          const of = short(e.table, e.rollout.of)
          const line = e.rollout.role === 'next'
            ? p !== null && p.missing > 0
              ? `model change of ${of} to ${e.model}: ${e.column} is ${Math.floor((1000 * (p.withText - p.missing)) / Math.max(1, p.withText)) / 10}% filled — run pgml-kit backfill ${of}, then pgml-kit generate (it writes the switch once the column is filled)`
              : `model change of ${of} to ${e.model}: ${e.column} is filled — pgml-kit generate --database-url <this database> writes the switch`
            : `model change of ${of} switched: ${e.column} keeps the previous model (${e.model}) in sync so the switch can be undone (pgml-kit migrate down); pgml-kit generate --allow-destructive drops it`
          process.stdout.write(`${pc.cyan('next')} ${printable(line)}\n`)
        }
      }
      if (status.embeddingColumns.some((e) => (e.truncation?.truncated ?? 0) > 0)) {
        process.stdout.write(`${pc.cyan('note')} a truncated row is embedded from its first tokens only: declare chunking on the column to embed whole texts\n`)
      }
      if (status.chunkedColumns.length > 0) {
        const chunked = new Table({ head: ['chunked column', 'chunk table', 'chunking', 'model', 'mode', 'rows', 'chunks'], style: { head: [], border: [] } })
        for (const c of status.chunkedColumns) {
          const n = c.counts
          const rows = n === null ? pc.yellow('not migrated') : n.rowsWithoutChunks === 0 ? pc.green(`all ${n.rowsWithText}`) : pc.yellow(`${n.rowsWithoutChunks} of ${n.rowsWithText} without chunks${c.mode === 'queue' ? ' (pgml-kit worker)' : ''}`)
          const chunks = n === null ? '-' : `${n.chunks}${n.chunksOfOtherModels > 0 ? pc.yellow(` (${n.chunksOfOtherModels} by another model)`) : ''}`
          const role = c.role === 'next' ? pc.cyan(' (next: filling)') : c.role === 'previous' ? pc.dim(' (previous)') : ''
          chunked.push([printable(`${c.table}.${c.column}`) + role, printable(c.chunkTable), printable(c.chunking), printable(c.model), printable(c.mode), rows, chunks])
        }
        process.stdout.write(tableText(chunked))
        for (const problem of new Set(status.chunkedColumns.flatMap((c) => (c.problem ? [c.problem] : [])))) process.stdout.write(`${pc.yellow('warning')} ${printable(problem)}\n`)
      }
      if (status.featureViews.length > 0) {
        const views = new Table({ head: ['feature view', 'last run', 'runs', 'pending entities', 'lag'], style: { head: [], border: [] } })
        for (const { view, lag } of status.featureViews) {
          if (!lag) { views.push([printable(view), pc.yellow('not migrated'), '-', '-', '-']); continue }
          const pending = lag.pendingEntities === null ? 'query source' : `${lag.pendingEntities}${lag.fullRefreshPending ? ' + full refresh' : ''}`
          views.push([printable(view), printable(lag.lastRunAt ?? 'never'), lag.runs, pending, Number.isFinite(lag.lagSeconds) ? `${lag.lagSeconds.toFixed(1)} s` : 'never materialised'])
        }
        process.stdout.write(tableText(views))
      }
      if (status.models.length > 0) {
        const models = new Table({ head: ['model', 'champion', 'versions', 'route', 'prediction log', 'last monitor'], style: { head: [], border: [] } })
        for (const m of status.models) {
          const route = m.route === null ? '-' : m.route.mode === 'shadow' ? printable(`shadow @${m.route.alias}`) : printable(`canary @${m.route.alias} ${(m.route.share * 100).toFixed(1)}%`)
          const log = m.log === null ? '-' : `${(m.log.sample * 100).toFixed(1)}%, ${m.log.retentionDays} days`
          const monitor = m.lastMonitor === null ? pc.dim('never (pgml-kit monitor)') : `${printable(m.lastMonitor.at.slice(0, 16).replace('T', ' '))} ${m.lastMonitor.alarms.length > 0 ? pc.red(printable(`alarm: ${m.lastMonitor.alarms.join(', ')}`)) : pc.green('ok')}`
          models.push([printable(m.project), m.champion === null ? pc.dim('none') : `v${m.champion}`, m.versions, route, log, monitor])
        }
        process.stdout.write(tableText(models))
      }
      if (status.queues.length > 0) {
        const queues = new Table({ head: ['queue', 'depth', 'leased', 'retrying', 'oldest job', 'dead letters'], style: { head: [], border: [] } })
        for (const q of status.queues) {
          queues.push([printable(q.column), q.depth, q.leased, q.retrying, q.oldestSeconds === null ? '-' : `${q.oldestSeconds.toFixed(1)} s`, q.deadLetters > 0 ? pc.red(String(q.deadLetters)) : '0'])
        }
        process.stdout.write(tableText(queues))
      }
      if (status.indexes.length > 0) {
        const indexes = new Table({ head: ['vector index', 'column', 'state', 'size', 'last check'], style: { head: [], border: [] }, wordWrap: true })
        for (const i of status.indexes) {
          const state = i.state === 'ok' ? pc.green('ok') : `${pc.red(printable(i.state))}: ${printable(i.detail)}${status.pending.length === 0 ? ' — pgml-kit index repair' : ''}`
          const c = i.lastCheck
          const check = c === null ? pc.dim('never (pgml-kit index check)')
            : printable(`recall@${c.k} ${c.recall ?? '-'}`) + (c.recommended === null ? pc.red(printable(c.recall !== null && c.recall < c.targetRecall ? ` below ${c.targetRecall}` : `, ${c.targetRecall} not shown on unseen queries`)) : printable(` at ${c.parameter} ${c.recommended}`)) + printable(`${c.filter ? ' (filtered)' : ''}, ${c.checkedAt.slice(0, 10)}`)
          indexes.push([printable(i.index), printable(i.column), state, i.sizeBytes === null ? '-' : formatBytes(i.sizeBytes), check])
        }
        process.stdout.write(tableText(indexes))
      }
      if (status.missingPrivileges.length > 0) {
        const privileges = new Table({ head: ['role', 'lacks', 'fix'], style: { head: [], border: [] }, wordWrap: true, colWidths: [18, 38, 60] })
        for (const m of status.missingPrivileges) {
          const fix = printable(m.fix)
          privileges.push([printable(`${m.role} (${m.purpose})`), pc.red(printable(m.missing)), m.grantedBy === 'pgml-kit' ? `pgml-kit migrate grants it (or: ${fix})` : m.grantedBy === 'administrator' ? `an administrator grants it (pgml is not yours to pass on): ${fix}` : fix])
        }
        process.stdout.write(tableText(privileges))
      }
      if (status.drift) {
        const errors = status.drift.filter((d) => d.severity !== 'warning')
        const warnings = status.drift.filter((d) => d.severity === 'warning')
        if (errors.length === 0) process.stdout.write(`${pc.green('no drift')}: the database matches the migrations' snapshot\n`)
        else process.stdout.write(`\n${pc.red(pc.bold(`drift: ${errors.length} difference(s) from the migrations' snapshot`))}\n`)
        if (warnings.length > 0) process.stdout.write(`${pc.yellow(pc.bold(`${warnings.length} warning(s)`))}: nothing is broken, but searches miss rows\n`)
        for (const d of [...errors, ...warnings]) {
          const mark = d.severity === 'warning' ? pc.yellow(`warning ${printable(d.kind)}`) : pc.red(printable(d.kind))
          process.stdout.write(`\n${mark} ${printable(d.object)}: ${printable(d.problem)}\n${pc.dim('fix:')} ${d.fix.split('\n').map((line) => printable(line)).join('\n     ')}\n`)
        }
      }
    })
}
