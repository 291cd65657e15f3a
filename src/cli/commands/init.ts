import type { Command } from 'commander'
import pc from 'picocolors'
import { init } from '../../init.js'
import { printJson } from '../output.js'
import { globals } from '../options.js'

export function registerInit(program: Command): void {
  program.command('init')
    .description('scaffold pgml-kit.config.ts and a base migration in the current directory')
    .action(async (_opts, cmd: Command) => {
      const { created } = await init(process.cwd())
      if (globals(cmd).json) return printJson({ created })
      for (const path of created) process.stdout.write(`${pc.green('created')} ${path}\n`)
      process.stdout.write(`\nnext: pgml-kit generate --name add-embeddings && pgml-kit migrate && pgml-kit backfill documents.body_embedding && pgml-kit search documents.body_embedding 'homes for families'\n`)
    })
}
