import { execFileSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile, chmod, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { installPgmlCompat } from '../../src/extension/install.js'
import { parseStatements } from '../helpers/sql.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

describe('the pgml_compat install script', () => {
  it('is up to date with its template and Python source', () => {
    expect(() => execFileSync(process.execPath, [join(ROOT, 'scripts/build-pgml-compat.mjs'), '--check'], { stdio: 'pipe' })).not.toThrow()
  })

  it('parses with the PostgreSQL parser (after the psql guard line), install and upgrade scripts', async () => {
    const sql = await readFile(join(ROOT, 'extensions/pgml_compat/pgml_compat--0.5.0.sql'), 'utf8')
    expect(parseStatements(sql.replace(/^\\echo .*$/m, ''))).toBeGreaterThan(30)
    const upgrade = await readFile(join(ROOT, 'extensions/pgml_compat/pgml_compat--0.4.0--0.5.0.sql'), 'utf8')
    expect(parseStatements(upgrade.replace(/^\\echo .*$/m, ''))).toBeGreaterThan(10)
  })

  it('pgml-kit extension install copies the control file and scripts to pg_config --sharedir/extension, and the shipped models beside them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgml-kit-ext-'))
    try {
      await mkdir(join(dir, 'share', 'extension'), { recursive: true })
      const fake = join(dir, 'pg_config')
      await writeFile(fake, `#!/bin/sh\n[ "$1" = "--sharedir" ] && echo ${join(dir, 'share')}\n`)
      await chmod(fake, 0o755)
      const result = await installPgmlCompat({ pgConfig: fake })
      expect(result.extensionDir).toBe(join(dir, 'share', 'extension'))
      expect((await readdir(result.extensionDir)).sort()).toEqual(['pgml_compat--0.1.0--0.2.0.sql', 'pgml_compat--0.1.0.sql', 'pgml_compat--0.2.0--0.3.0.sql', 'pgml_compat--0.2.0.sql', 'pgml_compat--0.3.0--0.4.0.sql', 'pgml_compat--0.3.0.sql', 'pgml_compat--0.4.0--0.5.0.sql', 'pgml_compat--0.4.0.sql', 'pgml_compat--0.5.0.sql', 'pgml_compat.control'])
      // …and the models pgml-kit ships, where pgml_compat.models_dir can point.
      expect(result.modelsDir).toBe(join(dir, 'share', 'pgml_compat', 'models'))
      expect((await readdir(join(result.modelsDir, 'pgml-kit', 'wordnet-static-128', 'onnx')))).toEqual(['model.onnx'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
