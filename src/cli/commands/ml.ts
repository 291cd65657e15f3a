import Table from 'cli-table3'
import { shellArg } from '../../shell.js'
import { CommanderError, type Command } from 'commander'
import pc from 'picocolors'
import { loadConfig } from '../../config/load.js'
import { openTarget } from '../../db/target.js'
import { deploy, listModels, materialize, materializeTrainingSet, train, trainSql, type ModelRow } from '../../features/ml.js'
import { PSI_MIN_ROWS, monitorHistory, monitorModels } from '../../features/monitor.js'
import { renderDriftChart } from '../../features/monitor-chart.js'
import { monitorEmbeddings } from '../../features/embedding-drift.js'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CHAMPION, archiveVersion, describeVersion, listVersions, modelHistory, registryInstalled, removeAlias, setAlias, type ModelVersion } from '../../features/registry.js'
import { EXIT, printable, printJson, tableText } from '../output.js'
import { globals, nonNegativeNumber, positiveInt, shareOption, sinceOption, type CommandContext } from '../options.js'
import { compareModels, maintainPredictionLog, readRoute, removeRoute, servingInstalled, setRoute } from '../../features/serving.js'
import type pg from 'pg'
import { PgmlKitError } from '../../errors.js'
import { quoteQualified } from '../../sql/quote.js'

/** A project name as a file name: anything but letters, digits, `-`, `_` and `.` becomes `_` (and a leading `.` too), so that no name writes outside the directory. */
export function chartFileName(project: string): string {
  return project.replace(/[^\p{L}\p{N}_.-]/gu, '_').replace(/^\./, '_')
}

/** Opens the target, hands `fn` a client, and closes both. */
export async function withClient<T>(cmd: Command, name: string, fn: (client: pg.ClientBase, config: Awaited<ReturnType<typeof loadConfig>>) => Promise<T>): Promise<T> {
  const g = globals(cmd)
  const config = await loadConfig(g.config)
  const target = await openTarget({ databaseUrl: g.databaseUrl, cwd: config.root })
  try {
    const client = await target.connect(name)
    try {
      return await fn(client, config)
    } finally {
      await client.end()
    }
  } finally {
    await target.close()
  }
}

function metricsText(metrics: Record<string, number>): string {
  return Object.entries(metrics).filter(([, v]) => typeof v === 'number').map(([k, v]) => `${printable(k)} ${v.toFixed(4)}`).join(', ')
}

function gateText(l: NonNullable<ModelRow['lineage']>): string {
  const verdict = l.gateVerdict ? `; gate ${l.gateVerdict.pass ? 'passed' : 'failed'}: ${l.gateVerdict.reason}` : ''
  const overrides = l.gateOverrides.map((o) => `; gate overridden ${o.at.slice(0, 19)} by ${o.role}: ${o.reason}`).join('')
  return verdict + overrides
}

function provenanceText(p: ModelRow['provenance']): string {
  if (!p) return ''
  const env = p.environment as { extensions?: Record<string, string>; pgml_version?: string; pgml_kit?: string; server_version?: string }
  const rows = p.rowCount === null ? `${p.relation} (rows not readable by the training role)` : `${p.relation}: ${p.rowCount} rows, sha256 ${p.rowsSha256?.slice(0, 12)}`
  return `${rows}; by ${p.trainedBy}; ${env.pgml_version ?? Object.entries(env.extensions ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')}; pgml-kit ${env.pgml_kit ?? '?'}; PostgreSQL ${env.server_version ?? '?'}`
}

function printModels(rows: readonly ModelRow[], lineage: boolean, versions: readonly ModelVersion[] | null): void {
  const registry = versions !== null
  const table = new Table({
    head: [...(registry ? ['version'] : []), 'model', 'algorithm', 'status', 'metrics', 'created (UTC)', 'deployed', ...(registry ? ['aliases', 'tags / description'] : []), ...(lineage ? ['lineage'] : [])],
    style: { head: [], border: [] }, wordWrap: true,
    // Wide enough for pgml's longest status ("successful") and a date with its time.
    colWidths: [...(registry ? [12] : []), 8, 12, 13, 40, 18, 10, ...(registry ? [26, 30] : []), ...(lineage ? [60] : [])],
  })
  for (const m of rows) {
    const l = m.lineage
    const v = versions?.find((x) => x.modelId === m.id)
    const registryCells = registry
      ? [v ? (v.archived ? pc.dim(`${v.version} archived`) : String(v.version)) : '', printable((v?.aliases ?? []).map((a) => `@${a}`).join(' ')),
        printable([...Object.entries(v?.tags ?? {}).map(([k, x]) => `${k}=${x}`), ...(v?.description ? [v.description] : [])].join('; '))]
      : []
    table.push([...registryCells.slice(0, 1), m.id, printable(m.algorithm), printable(m.status), metricsText(m.metrics), printable(utcMinute(m.createdAt)), m.deployed ? pc.green('deployed') : '', ...registryCells.slice(1), ...(lineage
      ? [l || m.provenance ? printable([provenanceText(m.provenance), l ? `${l.trainingSet ? `training set ${l.trainingSet} (${l.definitionSha256?.slice(0, 12)})` : l.relation}; ${l.featureViews.map((v) => `${v.name} (${v.definitionSha256.slice(0, 12)}) up to ${v.highWaterMark ?? 'nothing'}`).join('; ')}${gateText(l)}` : ''].filter((x) => x !== '').join('; ')) : pc.dim('not trained by pgml-kit')]
      : [])])
  }
  process.stdout.write(tableText(table))
}

export function registerMl(program: Command, ctx: CommandContext): void {
  program.command('materialize')
    .description('bring the feature views\' offline and online tables up to date with every committed insert, update and delete of their sources')
    .argument('[views...]', 'feature views (default: all)')
    .option('--full', 'compare each whole source with its tables, fix and report every difference (the change log makes this unnecessary, except after triggers were bypassed)')
    .action(async (views: string[], opts: { full?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      await withClient(cmd, 'pgml-kit materialize', async (client, config) => {
        const results = await materialize(client, config.state, views, { full: opts.full === true })
        if (g.json) return printJson(results)
        for (const r of results) {
          const what = r.fullRefresh ? `full refresh, ${r.entities} entities` : `${r.entities} changed entities`
          const changed = r.offlineInserted + r.offlineDeleted + r.onlineUpserted + r.onlineDeleted > 0
          process.stdout.write(`${pc.green('materialized')} ${printable(r.view)} (${what}): offline +${r.offlineInserted} −${r.offlineDeleted} rows, online ${r.onlineUpserted} written, ${r.onlineDeleted} removed${r.fullRefresh && !changed ? ' — no differences' : ''}\n`)
        }
      })
    })

  program.command('training-set')
    .description('copy a training set (the point-in-time join, as it is now) into a new table: entity keys, label time, features, label')
    .argument('<name>', 'training set')
    .requiredOption('--to <table>', 'table to create (name or schema.name)')
    .action(async (name: string, opts: { to: string }, cmd: Command) => {
      const g = globals(cmd)
      await withClient(cmd, 'pgml-kit training-set', async (client, config) => {
        const copy = await materializeTrainingSet(client, config.state, name, opts.to)
        if (g.json) return printJson({ trainingSet: name, table: copy.table, rows: copy.rows, columns: copy.columns })
        const set = config.state.trainingSets.find((s) => s.name === name)!
        process.stdout.write(`${pc.green('wrote')} ${copy.rows} rows of training set ${printable(name)} to ${printable(copy.table)}: ${copy.columns.map((c) => printable(c)).join(', ')}\n`)
        process.stdout.write(`${pc.dim(`the entity keys and the label time are there to join back and inspect; to train, train on ${printable(quoteQualified(set.schema, set.name))} (features and label only)`)}\n`)
      })
    })

  program.command('train')
    .description('train a model the config declares with pgml.train; with a deployment gate, deploy it only if it passes')
    .argument('<project>', 'models.<project> in the config')
    .option('--dry-run', 'print the exact SQL train runs, and run nothing')
    .action(async (project: string, opts: { dryRun?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      if (opts.dryRun) {
        const config = await loadConfig(g.config)
        const sql = trainSql(config, project)
        return g.json ? printJson({ sql }) : void process.stdout.write(`${sql}\n`)
      }
      await withClient(cmd, 'pgml-kit train', async (client, config) => {
        const result = await train(client, config, project, {
          onWait: () => process.stderr.write(`waiting: another train (or a gated deploy) of ${printable(project)} is running in this database; this one starts when it ends\n`),
          onRetry: (attempt, of) => process.stderr.write(`training again (attempt ${attempt} of ${of}): another session deployed a model while this one trained, and the training was rolled back\n`),
        })
        if (g.json) return printJson(result)
        for (const m of result.models) process.stdout.write(`${pc.green('trained')} model ${m.id} (${printable(m.algorithm)}): ${metricsText(m.metrics)}\n`)
        if (result.gate) process.stdout.write(`${result.gate.startsWith('deployed') ? pc.green('gate') : pc.yellow('gate')} ${printable(result.gate)}\n`)
        process.stdout.write(`deployed: ${result.deployed === null ? 'none' : `model ${result.deployed}`}\n`)
        for (const note of result.notes) process.stderr.write(`${pc.yellow('note')} ${printable(note)}\n`)
      })
    })

  const models = program.command('models')
    .description('the models of a project: registry versions and aliases, metrics, which one is deployed (subcommands: alias, unalias, archive, describe, history)')
    .argument('<project>', 'pgml project')
    .option('--lineage', 'with the training set and feature views (definitions and high-water marks) each model was trained on')
    .action(async (project: string, opts: { lineage?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      await withClient(cmd, 'pgml-kit models', async (client, config) => {
        const rows = await listModels(client, config, project)
        let versions: ModelVersion[] | null = null
        if (await registryInstalled(client)) {
          try {
            versions = await listVersions(client, project)
          } catch (error) {
            if (!(error instanceof PgmlKitError && error.code === 'REGISTRY_NOT_PERMITTED')) throw error
            process.stderr.write(`${pc.yellow('note')} no registry versions shown: ${printable(error.message)}\n`)
          }
        }
        if (g.json) return printJson(versions === null ? rows : rows.map((m) => ({ ...m, registry: versions.find((v) => v.modelId === m.id) ?? null })))
        if (rows.length === 0) return void process.stdout.write(`no models for project ${printable(project)}\n`)
        printModels(rows, Boolean(opts.lineage), versions)
        const route = versions ? await readRoute(client, project).catch(() => null) : null
        if (route) process.stdout.write(`route: ${route.mode === 'shadow' ? 'shadow' : `canary ${(route.share * 100).toFixed(1)}% of entity keys`} → @${printable(route.alias)} (version ${route.version}), set by ${printable(route.setBy)} at ${route.setAt.slice(0, 19).replace('T', ' ')}\n`)
        const champion = versions?.find((v) => v.aliases.includes(CHAMPION))
        const deployed = versions?.find((v) => v.deployed)
        if (deployed?.archived) {
          process.stderr.write(`${pc.red('warning')} pgml serves version ${deployed.version} (model ${deployed.modelId}), which is ARCHIVED: it was deployed outside pgml-kit (pgml.deploy in SQL). Deploy a live version: pgml-kit deploy ${printable(shellArg(project))} --model <id>\n`)
        } else if (versions && deployed && champion?.version !== deployed.version) {
          process.stderr.write(`${pc.yellow('note')} pgml serves version ${deployed.version} (model ${deployed.modelId}), but @${CHAMPION} names ${champion ? `version ${champion.version}` : 'none'}: a deployment outside pgml-kit (pgml.deploy in SQL). pgml-kit deploy ${printable(shellArg(project))} --model ${deployed.modelId} records it\n`)
        }
      })
    })

  const done = (text: string) => process.stdout.write(`${pc.green('done')} ${printable(text)}\n`)
  models.command('alias')
    .description('point an alias of a project (challenger, staging, ...) at a version; applications predict with kit.predict(\'<project>@<alias>\', …) or pgml.predict(pgml_kit.model_id(\'<project>@<alias>\'), …)')
    .argument('<project>', 'pgml project')
    .argument('<alias>', 'lower-case name; champion moves only with pgml-kit deploy')
    .argument('<version>', 'version number (pgml-kit models <project> lists them)', positiveInt('<version>'))
    .option('--reason <text>', 'why, recorded with the move')
    .action(async (project: string, alias: string, version: number, opts: { reason?: string }, cmd: Command) => {
      await withClient(cmd, 'pgml-kit models alias', async (client) => {
        const { fromVersion } = await setAlias(client, project, alias, version, opts.reason !== undefined ? { reason: opts.reason } : {})
        done(`${project}@${alias} → version ${version}${fromVersion === null ? ' (new alias)' : ` (was version ${fromVersion})`}`)
      })
    })
  models.command('unalias')
    .description('remove an alias of a project')
    .argument('<project>', 'pgml project')
    .argument('<alias>', 'the alias')
    .option('--reason <text>', 'why, recorded')
    .action(async (project: string, alias: string, opts: { reason?: string }, cmd: Command) => {
      await withClient(cmd, 'pgml-kit models unalias', async (client) => {
        await removeAlias(client, project, alias, opts.reason !== undefined ? { reason: opts.reason } : {})
        done(`${project}@${alias} removed`)
      })
    })
  models.command('archive')
    .description('archive a version: kept with its history, never served again (refused while an alias names it or it is deployed)')
    .argument('<project>', 'pgml project')
    .argument('<version>', 'version number', positiveInt('<version>'))
    .requiredOption('--reason <text>', 'why, recorded with it')
    .action(async (project: string, version: number, opts: { reason: string }, cmd: Command) => {
      await withClient(cmd, 'pgml-kit models archive', async (client) => {
        await archiveVersion(client, project, version, { reason: opts.reason })
        done(`version ${version} of ${project} archived`)
      })
    })
  models.command('describe')
    .description('set the description and tags of a version')
    .argument('<project>', 'pgml project')
    .argument('<version>', 'version number', positiveInt('<version>'))
    .option('--description <text>', 'the description (an empty one removes it)')
    .option('--tag <key=value...>', 'set tags')
    .option('--untag <key...>', 'remove tags')
    .action(async (project: string, version: number, opts: { description?: string; tag?: string[]; untag?: string[] }, cmd: Command) => {
      const tags: Record<string, string | null> = {}
      for (const t of opts.tag ?? []) {
        const eq = t.indexOf('=')
        if (eq <= 0) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `--tag needs key=value, got ${t}`)
        tags[t.slice(0, eq)] = t.slice(eq + 1)
      }
      for (const key of opts.untag ?? []) tags[key] = null
      if (opts.description === undefined && Object.keys(tags).length === 0) throw new CommanderError(EXIT.usage, 'pgml-kit.option', 'describe needs --description, --tag or --untag')
      await withClient(cmd, 'pgml-kit models describe', async (client) => {
        const v = await describeVersion(client, project, version, {
          ...(opts.description !== undefined ? { description: opts.description === '' ? null : opts.description } : {}),
          ...(Object.keys(tags).length > 0 ? { tags } : {}),
        })
        if (globals(cmd).json) return printJson(v)
        done(`version ${version} of ${project}: ${v.description ?? 'no description'}; tags ${JSON.stringify(v.tags)}`)
      })
    })
  models.command('history')
    .description('every registration, deployment, alias move, description, tag and archive of a project: who, when, why')
    .argument('<project>', 'pgml project')
    .action(async (project: string, _opts: unknown, cmd: Command) => {
      await withClient(cmd, 'pgml-kit models history', async (client) => {
        const events = await modelHistory(client, project)
        if (globals(cmd).json) return printJson(events)
        if (events.length === 0) return void process.stdout.write(`no registry events for project ${printable(project)}\n`)
        const table = new Table({ head: ['when', 'who', 'event', 'version', 'alias', 'from', 'reason'], style: { head: [], border: [] } })
        for (const e of events) table.push([printable(e.at.slice(0, 19).replace('T', ' ')), printable(e.actor), e.event, e.version ?? '', printable(e.alias ?? ''), e.fromVersion ?? '', printable(e.reason ?? '')])
        process.stdout.write(tableText(table))
      })
    })

  models.command('route')
    .description('route a project\'s traffic to a challenger alias: --shadow (predicted beside the champion on logged requests, never returned) or --canary <share> (serves that share of entity keys, by a stable hash); for kit.predict / predictOnline of projects with serving in the config, and pgml_kit.predict in SQL')
    .argument('<project>', 'pgml project')
    .argument('<alias>', 'the challenger: an alias other than champion (pgml-kit models alias <project> challenger <version>)')
    .option('--shadow', 'run the challenger in shadow')
    .option('--canary <share>', 'serve the challenger to this share of entity keys (0.1 or 10%)', shareOption('--canary'))
    .option('--reason <text>', 'why, recorded with the route')
    .action(async (project: string, alias: string, opts: { shadow?: boolean; canary?: number; reason?: string }, cmd: Command) => {
      if (Boolean(opts.shadow) === (opts.canary !== undefined)) throw new CommanderError(EXIT.usage, 'pgml-kit.option', 'route needs exactly one of --shadow and --canary <share>')
      await withClient(cmd, 'pgml-kit models route', async (client, config) => {
        const route = await setRoute(client, project, alias, opts.shadow ? 'shadow' : 'canary', { ...(opts.canary !== undefined ? { share: opts.canary } : {}), ...(opts.reason !== undefined ? { reason: opts.reason } : {}) })
        if (globals(cmd).json) return printJson(route)
        done(`${project}: ${route.mode === 'shadow' ? `${project}@${alias} (version ${route.version}) runs in shadow` : `${project}@${alias} (version ${route.version}) serves ${(route.share * 100).toFixed(1)}% of entity keys`}`)
        const champion = (await listVersions(client, project)).find((v) => v.aliases.includes(CHAMPION))
        if (champion?.version === route.version) process.stderr.write(`${pc.yellow('note')} @${printable(alias)} names version ${route.version}, the champion's own: the route changes nothing until one of them moves\n`)
        const model = config.models.find((m) => m.project === project)
        if (!model?.serving) process.stderr.write(`${pc.yellow('note')} models.${printable(project)}.serving is not in the config: kit.predict goes straight to pgml.predict and does not follow the route (SQL callers of pgml_kit.predict do)\n`)
        else if (route.mode === 'shadow' && !model.serving.log) process.stderr.write(`${pc.yellow('note')} a shadow runs only on logged requests: declare models.${printable(project)}.serving.log\n`)
      })
    })
  models.command('unroute')
    .description('send all of a project\'s traffic to its champion again')
    .argument('<project>', 'pgml project')
    .option('--reason <text>', 'why, recorded')
    .action(async (project: string, opts: { reason?: string }, cmd: Command) => {
      await withClient(cmd, 'pgml-kit models unroute', async (client) => {
        const removed = await removeRoute(client, project, opts.reason !== undefined ? { reason: opts.reason } : {})
        done(removed ? `${project}: ${removed.mode} of @${removed.alias} removed; all traffic to @${CHAMPION}` : `${project} had no route`)
      })
    })
  models.command('compare')
    .description('the arms of a project\'s logged traffic: requests, errors, mean prediction per version; the shadow\'s agreement with the champion; each arm\'s score on labelled requests (serving.labels)')
    .argument('<project>', 'pgml project')
    .option('--since <when>', 'logged since (30m, 24h, 7d, or a timestamp)', sinceOption('--since'))
    .option('--tolerance <x>', 'regression: two predictions agree when within this of each other (default 0)', nonNegativeNumber('--tolerance'))
    .action(async (project: string, opts: { since?: Date; tolerance?: number }, cmd: Command) => {
      await withClient(cmd, 'pgml-kit models compare', async (client, config) => {
        const c = await compareModels(client, config, project, { ...(opts.since ? { since: opts.since } : {}), ...(opts.tolerance !== undefined ? { tolerance: opts.tolerance } : {}) })
        if (globals(cmd).json) return printJson(c)
        const route = c.route ? `${c.route.mode === 'shadow' ? 'shadow' : `canary ${(c.route.share * 100).toFixed(1)}%`} of @${printable(c.route.alias)} (version ${c.route.version})` : 'no route'
        process.stdout.write(`${printable(project)} since ${c.since.slice(0, 19).replace('T', ' ')}: ${route}\n`)
        if (c.arms.length > 0) {
          const score = c.task === 'classification' ? ['accuracy'] : ['RMSE', 'MAE']
          const table = new Table({ head: ['arm', 'version', 'model', 'requests', 'errors', 'mean prediction', 'labelled', ...score], style: { head: [], border: [] } })
          const num = (x: number | null) => (x === null ? '' : x.toFixed(4))
          for (const a of c.arms) table.push([a.arm, a.version ?? '', a.modelId ?? '', a.requests, a.errors, num(a.meanPrediction), a.labelled, ...(c.task === 'classification' ? [num(a.accuracy)] : [num(a.rmse), num(a.mae)])])
          process.stdout.write(tableText(table))
        }
        if (c.shadow) {
          const s = c.shadow
          process.stdout.write(`shadow against champion on ${s.pairs} requests: agreement ${s.agreement === null ? '-' : `${(s.agreement * 100).toFixed(1)}%`}${c.task === 'regression' ? ` (within ${s.tolerance})` : ''}, mean |difference| ${s.meanAbsoluteDifference?.toFixed(4) ?? '-'}, correlation ${s.correlation?.toFixed(4) ?? '-'}\n`)
        }
        for (const note of c.notes) process.stderr.write(`${pc.yellow('note')} ${printable(note)}\n`)
      })
    })

  program.command('monitor')
    .description('compare the rows of each deployed model\'s relation now with its training baseline: feature and prediction drift (PSI, KS) and prediction drift on served traffic, feature-store skew; and embedding columns with monitor in the config with their baselines (centroid, nearest-neighbour distances); exit 1 on an alarm (for cron)')
    .argument('[projects...]', 'models of the config (default: every one with a deployed version)')
    .option('--history', 'the recorded runs of each project instead, oldest first')
    .option('--baseline', 'keep this run\'s samples of the embedding columns as their new baselines')
    .option('--chart <dir>', 'with --history: write <dir>/<project>.svg, each metric\'s PSI over the runs with the alarm threshold and the runs that alarmed')
    .action(async (projects: string[], opts: { history?: boolean; chart?: string; baseline?: boolean }, cmd: Command) => {
      if (opts.chart !== undefined && !opts.history) throw new CommanderError(EXIT.usage, 'pgml-kit.option', '--chart goes with --history')
      const g = globals(cmd)
      await withClient(cmd, 'pgml-kit monitor', async (client, config) => {
        const unknown = projects.filter((p) => !config.models.some((m) => m.project === p))
        if (unknown.length > 0) throw new PgmlKitError('MODEL_UNKNOWN', `no model ${unknown.map((p) => `"${p}"`).join(', ')} in the config`, { hint: `models: ${config.models.map((m) => m.project).join(', ') || 'none'}` })
        if (opts.history) {
          const names = projects.length > 0 ? projects : config.models.map((m) => m.project)
          const runs = Object.fromEntries(await Promise.all(names.map(async (p) => [p, await monitorHistory(client, p)] as const)))
          if (opts.chart !== undefined) {
            await mkdir(opts.chart, { recursive: true })
            for (const [project, list] of Object.entries(runs)) {
              const file = join(opts.chart, `${chartFileName(project)}.svg`)
              await writeFile(file, renderDriftChart(project, list, config.models.find((m) => m.project === project)!.monitor.psi))
              if (!g.json) process.stderr.write(`${pc.dim(`wrote ${printable(file)}`)}\n`)
            }
          }
          if (g.json) return printJson(runs)
          for (const [project, list] of Object.entries(runs)) {
            process.stdout.write(`${printable(project)}: ${list.length} run(s)\n`)
            for (const r of list) {
              const worst = r.metrics.reduce((m, x) => (Number.isFinite(x.psi) && x.psi > m.psi ? x : m), { name: '-', psi: 0 } as { name: string; psi: number })
              process.stdout.write(`  ${r.at.slice(0, 19).replace('T', ' ')}  v${r.version ?? '?'}  ${r.currentRows} rows  max PSI ${worst.psi.toFixed(3)} (${printable(worst.name)})  ${r.alarms.length > 0 ? pc.red(`alarm: ${printable(r.alarms.join(', '))}`) : pc.green('ok')}\n`)
            }
          }
          return
        }
        // The prediction log's coming partitions, and what is past retention, as monitor runs from cron.
        if (await servingInstalled(client)) {
          try {
            const m = await maintainPredictionLog(client)
            if (!g.json && m.created + m.dropped + m.deleted + m.moved > 0) process.stderr.write(`${pc.dim(`prediction log: ${m.created} partition(s) added (${m.moved} row(s) moved out of the default partition), ${m.dropped} past retention dropped, ${m.deleted} row(s) past retention deleted`)}\n`)
            if (!g.json && m.skipped > 0) process.stderr.write(`${pc.yellow('note')} prediction log: ${m.skipped} day(s) not partitioned now (the default partition was busy); the next run does them\n`)
            if (!g.json && m.kept.length > 0) process.stderr.write(`${pc.yellow('note')} prediction log: ${m.kept.length} partition(s) past retention not dropped now (the log was busy); the next run drops them\n`)
          } catch (error) {
            if (!(error instanceof PgmlKitError) && (error as { code?: unknown }).code !== '55P03') throw error
            if (!g.json) process.stderr.write(`${pc.yellow('note')} the prediction log was not maintained: ${printable((error as Error).message)}\n`)
          }
        }
        const reports = config.models.length > 0 || projects.length > 0 ? await monitorModels(client, config, projects) : []
        // Embedding columns with monitor in the config, when no project is named.
        const columns = projects.length === 0 ? await monitorEmbeddings(client, config, { newBaseline: Boolean(opts.baseline) }) : []
        const alarmed = reports.some((r) => r.alarms.length > 0) || columns.some((c) => c.alarms.length > 0)
        if (g.json) printJson([...reports, ...columns])
        else if (reports.length === 0 && columns.length === 0) process.stdout.write(config.embeddingMonitors.length === 0 && config.models.length === 0 ? 'nothing to monitor: no models, and no embedding column with monitor in the config\n' : 'no deployed model to monitor\n')
        for (const r of g.json ? [] : reports) {
          if (r.error !== undefined) {
            process.stderr.write(`${pc.red('error')} ${printable(r.project)}: not checked: ${printable(r.error)}${r.hint ? `\n  hint: ${printable(r.hint)}` : ''}\n`)
            continue
          }
          process.stdout.write(`${printable(r.project)} version ${r.version ?? '?'} (model ${r.modelId}): ${r.currentRows} rows now against ${r.baselineRows} at training: ${r.alarms.length > 0 ? pc.red(`DRIFT ${printable(r.alarms.join(', '))}`) : pc.green('no drift')}\n`)
          const table = new Table({ head: ['', 'PSI', 'KS D', 'KS p', 'NULL', ''], style: { head: [], border: [] } })
          for (const m of r.metrics) table.push([printable(m.name), m.psi.toFixed(3), m.ksD.toFixed(3), m.ksP < 1e-4 ? m.ksP.toExponential(1) : m.ksP.toFixed(4), m.nullsNow === null ? '' : `${(100 * (m.nullsBefore ?? 0)).toFixed(1)}% → ${(100 * m.nullsNow).toFixed(1)}%`, m.alarm ? pc.red(`alarm: ${m.reasons.join(', ')}`) : ''])
          if (r.metrics.length > 0) process.stdout.write(tableText(table))
          for (const v of r.skew) process.stdout.write(`  skew ${printable(v.view)}: ${v.differences === 0 ? 'online rows match the offline table' : pc.red(`${v.differences} online row(s) differ (pgml-kit features check ${printable(v.view)})`)}\n`)
          process.stdout.write(pc.dim(`  alarm at PSI ≥ ${r.psiThreshold} (${PSI_MIN_ROWS} rows or more on each side), KS p < ${r.alphaPerTest.toPrecision(2)} per test, or a NULL share that changed at that level\n`))
          for (const note of r.notes) process.stderr.write(`${pc.yellow('note')} ${printable(note)}\n`)
        }
        for (const c of g.json ? [] : columns) {
          const head = `${printable(c.column)}: ${c.sampled} of ${c.rowsNow} vectors sampled`
          if (c.baseline === null) {
            process.stdout.write(`${head}: ${c.baselineCaptured ? pc.cyan('baseline kept') : 'not compared'}\n`)
          } else {
            process.stdout.write(`${head} against the baseline of ${c.baseline.capturedAt.slice(0, 19).replace('T', ' ')} (${c.baseline.sampled} vectors): ${c.alarms.length > 0 ? pc.red(`DRIFT ${c.alarms.join(', ')}`) : pc.green('no drift')}\n`)
            const p = (x: number | null) => (x === null ? '-' : x < 1e-4 ? x.toExponential(1) : x.toFixed(4))
            process.stdout.write(`  centroid: shift ${c.centroidShift === null ? '-' : c.centroidShift.toFixed(4)} (1 − cosine), ${c.centroidRatio === null ? '-' : c.centroidRatio.toFixed(2)}× the change expected without drift, p ${p(c.centroidP)}${c.alarms.includes('centroid') ? pc.red(' alarm') : ''}\n`)
            process.stdout.write(`  nearest neighbours: median distance ${c.nnMedianBefore?.toFixed(4) ?? '-'} → ${c.nnMedianNow?.toFixed(4) ?? '-'}, KS D ${c.nnKsD?.toFixed(3) ?? '-'}, p ${p(c.nnKsP)}${c.alarms.includes('neighbours') ? pc.red(' alarm') : ''}\n`)
            process.stdout.write(pc.dim(`  alarm at p < ${(c.alpha / 2).toPrecision(2)} per test\n`))
          }
          for (const note of c.notes) process.stderr.write(`${pc.yellow('note')} ${printable(note)}\n`)
        }
        // 1: drift (an alarm); 3: a project could not be checked. Cron tells the two apart.
        if (reports.some((r) => r.error !== undefined)) ctx.exit.code = 3
        else if (alarmed) ctx.exit.code = EXIT.checkFailed
      })
    })

  program.command('deploy')
    .description('deploy a model of a project: by strategy (pgml.deploy) or by id')
    .argument('<project>', 'pgml project')
    .option('--strategy <strategy>', 'best_score, most_recent or rollback')
    .option('--algorithm <name>', 'with --strategy: only models of this algorithm')
    .option('--model <id>', 'deploy this model (held to the project\'s deployment gate, when the config gives one)', positiveInt('--model'))
    .option('--override-gate <reason>', 'with --model: deploy it even though it fails the gate; the reason is recorded with the model\'s lineage')
    .action(async (project: string, opts: { strategy?: string; algorithm?: string; model?: number; overrideGate?: string }, cmd: Command) => {
      const g = globals(cmd)
      if ((opts.strategy === undefined) === (opts.model === undefined)) throw new CommanderError(EXIT.usage, 'pgml-kit.option', 'deploy needs exactly one of --strategy or --model')
      if (opts.strategy !== undefined && !['best_score', 'most_recent', 'rollback'].includes(opts.strategy)) throw new CommanderError(EXIT.usage, 'pgml-kit.option', `--strategy must be best_score, most_recent or rollback, got ${opts.strategy}`)
      if (opts.overrideGate !== undefined && opts.model === undefined) throw new CommanderError(EXIT.usage, 'pgml-kit.option', '--override-gate goes with --model: a strategy is not held to the gate')
      if (opts.overrideGate !== undefined && opts.overrideGate.trim() === '') throw new CommanderError(EXIT.usage, 'pgml-kit.option', '--override-gate needs a reason, recorded with the deployment')
      await withClient(cmd, 'pgml-kit deploy', async (client, config) => {
        const result = await deploy(client, config, project, opts.model !== undefined ? { model: opts.model } : { strategy: opts.strategy as 'best_score', ...(opts.algorithm ? { algorithm: opts.algorithm } : {}) }, {
          ...(opts.overrideGate !== undefined ? { overrideGate: opts.overrideGate } : {}),
          onWait: () => process.stderr.write(`waiting: a train (or a gated deploy) of ${printable(project)} is running in this database; the gate is checked when it ends\n`),
        })
        if (g.json) return printJson({ deployed: result.deployed?.id ?? null, version: result.registry?.version ?? null, fromVersion: result.registry?.fromVersion ?? null, gate: result.gate, override: result.override, notes: result.notes })
        const deployed = result.deployed
        if (result.override) {
          process.stderr.write(`${pc.yellow('warning')} gate overridden: model ${result.gate?.model ?? '?'} fails the gate (${printable(result.gate?.reason ?? '')}) and was deployed because: ${printable(result.override.reason)}\n`)
          process.stderr.write(result.override.recordedIn
            ? `  recorded in ${printable(result.override.recordedIn)} (gate_overrides of model ${result.gate?.model ?? '?'}); pgml-kit models ${printable(shellArg(project))} --lineage shows it\n`
            : '  not recorded in the database (see the note below): keep this output\n')
        } else if (result.gate) {
          process.stdout.write(`${pc.green('gate')} passed: ${printable(result.gate.reason)}\n`)
        }
        process.stdout.write(`${pc.green('deployed')} model ${deployed?.id ?? '?'} of ${printable(project)}${deployed ? ` (${printable(deployed.algorithm)}: ${metricsText(deployed.metrics)})` : ''}\n`)
        if (result.registry) {
          const was = result.registry.fromVersion !== null && result.registry.fromVersion !== result.registry.version ? ` (was version ${result.registry.fromVersion})` : ''
          process.stdout.write(`  registry: version ${result.registry.version} is now ${printable(project)}@${CHAMPION}${was}\n`)
        }
        for (const note of result.notes) process.stderr.write(`${pc.yellow('note')} ${printable(note)}\n`)
      })
    })
}

/** An ISO timestamp as `YYYY-MM-DD HH:MM` in UTC (what the database gave, to the minute). */
function utcMinute(iso: string): string {
  const at = new Date(iso)
  return Number.isNaN(at.getTime()) ? iso : at.toISOString().slice(0, 16).replace('T', ' ')
}
