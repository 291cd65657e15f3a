import { CommanderError, type Command } from 'commander'
import { relative } from 'node:path'
import pc from 'picocolors'
import { embeddedPaths } from '../../db/embedded.js'
import { openTarget, redactUrl } from '../../db/target.js'
import { EXIT, printJson } from '../output.js'
import { globals, positiveInt } from '../options.js'

export function registerDev(program: Command): void {
  program.command('dev')
    .description('keep the embedded database running for psql and other tools until Ctrl-C')
    .option('-p, --port <port>', 'port on 127.0.0.1 (0: any free port)', (v) => (v === '0' ? 0 : positiveInt('--port')(v)), 54329)
    .action(async (opts: { port: number }, cmd: Command) => {
      const g = globals(cmd)
      const target = await openTarget({ cwd: process.cwd(), port: opts.port })
      if (target.kind !== 'embedded') {
        await target.close()
        throw new CommanderError(EXIT.usage, 'pgml-kit.dev', 'dev serves the embedded database; unset DATABASE_URL to use it')
      }
      // The URL carries the password, which stays in its 0600 file: shown masked, with where to read it.
      const passwordFile = embeddedPaths(process.cwd()).passwordFile
      const url = new URL(target.url)
      if (g.json) printJson({ url: redactUrl(target.url), passwordFile })
      else {
        const withPassword = `postgres://${url.username}:$(cat ${relative(process.cwd(), passwordFile)})@${url.host}${url.pathname}`
        process.stdout.write(`${pc.green('serving')} ${target.description}\n`
          + `  URL       ${redactUrl(target.url)}\n`
          + `  password  in ${relative(process.cwd(), passwordFile)} (readable by you only)\n`
          + `  export DATABASE_URL="${withPassword}"\n`
          + '  psql "$DATABASE_URL"\n'
          + 'Ctrl-C to stop.\n')
      }
      await new Promise<void>((resolve) => {
        const stop = () => resolve()
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
      await target.close()
    })
}
