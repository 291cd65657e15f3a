import { join } from 'node:path'
import type { Command } from 'commander'
import pc from 'picocolors'
import { installPgmlCompat } from '../../extension/install.js'
import { printJson } from '../output.js'
import { globals } from '../options.js'

export function registerExtension(program: Command): void {
  const extension = program.command('extension').description('the pgml_compat PostgreSQL extension (the pgml SQL API in PL/Python)')
  extension.command('install')
    .description("copy pgml_compat into this machine's PostgreSQL extension directory (run it on the database server)")
    .option('--pg-config <path>', 'pg_config of the server (default: on PATH, else the newest in /usr/lib/postgresql)')
    .action(async (opts: { pgConfig?: string }, cmd: Command) => {
      const g = globals(cmd)
      const result = await installPgmlCompat(opts.pgConfig ? { pgConfig: opts.pgConfig } : {})
      if (g.json) return printJson(result)
      for (const file of result.files) process.stdout.write(`${pc.green('installed')} ${join(result.extensionDir, file)}\n`)
      process.stdout.write(`${pc.green('installed')} ${result.modelsDir} (the models pgml-kit ships)\n`)
      process.stdout.write(`\nnext, in the server's postgresql.conf (pgml_compat reads it from the configuration only), then SELECT pg_reload_conf():\n`
        + `  pgml_compat.models_dir = '/path/to/your/models:${result.modelsDir}'   # <dir>/<model id>/onnx/model.onnx, first match wins\n`
        + `and in each database (as a superuser):\n  CREATE EXTENSION pgml_compat CASCADE;\n  GRANT USAGE ON SCHEMA pgml TO <app owner> WITH GRANT OPTION;   -- README: Security model\n`)
    })
}
