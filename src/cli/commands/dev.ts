import { CommanderError, type Command } from 'commander'
import pc from 'picocolors'
import { openTarget } from '../../db/target.js'
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
      if (g.json) printJson({ url: target.url })
      else process.stdout.write(`${pc.green('serving')} ${target.description}\n  DATABASE_URL=${target.url}\n  psql ${target.url}\nCtrl-C to stop.\n`)
      await new Promise<void>((resolve) => {
        const stop = () => resolve()
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
      await target.close()
    })
}
