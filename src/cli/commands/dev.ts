import { CommanderError, type Command } from 'commander'
import { relative } from 'node:path'
import pc from 'picocolors'
import { onStop } from '../stop.js'
import { embeddedPaths } from '../../db/embedded.js'
import { keepEmbeddedServed, type ServedChange, type ServedState } from '../../db/keep-served.js'
import { isEmbedded, redactUrl } from '../../db/target.js'
import { EXIT, printable } from '../output.js'
import { globals, positiveInt } from '../options.js'

export function registerDev(program: Command): void {
  program.command('dev')
    .description('keep the embedded database running for psql and other tools until Ctrl-C (taking it over if the process serving it exits)')
    .option('-p, --port <port>', 'port on 127.0.0.1 (0: any free port)', (v) => (v === '0' ? 0 : positiveInt('--port')(v)), 54329)
    .action(async (opts: { port: number }, cmd: Command) => {
      const g = globals(cmd)
      if (!isEmbedded({ databaseUrl: g.databaseUrl })) {
        throw new CommanderError(EXIT.usage, 'pgml-kit.dev', 'dev serves the embedded database; unset DATABASE_URL to use it')
      }
      const cwd = process.cwd()
      const { dataDir, passwordFile } = embeddedPaths(cwd)
      // The URL carries the password, which stays in its 0600 file: shown masked, with where to read it.
      const passwordPath = relative(cwd, passwordFile)
      const servedBy = (s: ServedState) => (s.owner ? 'this process' : 'another pgml-kit process')
      // --json: one line when it starts and one for every change of who serves the database.
      const json = (s: ServedState, change?: string) => process.stdout.write(`${JSON.stringify({
        url: redactUrl(s.url), passwordFile, servedBy: servedBy(s), pid: s.ownerPid, ...(change === undefined ? {} : { change }),
      })}\n`)
      const exportLine = (s: ServedState) => {
        const url = new URL(s.url)
        return `  export DATABASE_URL="postgres://${url.username}:$(cat ${passwordPath})@${url.host}${url.pathname}"\n`
      }
      const onServed = (s: ServedState) => {
        if (g.json) return json(s)
        process.stdout.write(`${pc.green('serving')} embedded PGlite + pgvector in ${printable(dataDir)}${s.owner ? '' : ` (served by another pgml-kit process, pid ${s.ownerPid}; if it exits, this one takes over on the same URL)`}\n`
          + `  URL       ${redactUrl(s.url)}\n`
          + `  password  in ${passwordPath} (readable by you only)\n`
          + exportLine(s)
          + '  psql "$DATABASE_URL"\n'
          + 'Ctrl-C to stop.\n')
      }
      const onChange = (c: ServedChange) => {
        const before = c.previous.ended === 'exited'
          ? `its owner, pid ${c.previous.pid}, exited`
          : `it stopped in this process: ${printable(c.previous.error?.message ?? 'unknown error')}`
        const where = c.sameUrl ? `on the same URL ${redactUrl(c.url)}` : `on a NEW URL ${redactUrl(c.url)} (the old port was taken)`
        const line = c.owner
          ? `took over the embedded database (${before}): serving it here ${where}`
          : `the embedded database changed hands (${before}): pid ${c.ownerPid} serves it now, ${where}`
        if (g.json) return json(c, line)
        process.stdout.write(`${pc.yellow(line)}\n${c.sameUrl ? '' : exportLine(c)}`)
      }
      const stopping = onStop()
      const controller = { signal: stopping.signal }
      // Keeps the process alive while it only follows another owner (a pending promise alone does not).
      const alive = setInterval(() => undefined, 1 << 30)
      try {
        await keepEmbeddedServed({
          cwd, port: opts.port, signal: controller.signal, onServed, onChange,
          onWaiting: (error) => process.stderr.write(`waiting to take over the embedded database: ${printable(error.message)}\n`),
        })
      } finally {
        clearInterval(alive)
        stopping.dispose()
      }
    })
}
