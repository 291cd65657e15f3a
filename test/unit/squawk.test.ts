import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { EMPTY_STATE } from '../../src/model/ir.js'
import { planMigration } from '../../src/plan/plan-migration.js'
import { renderMigrationFiles, type MigrationFile } from '../../src/migrations/render-files.js'
import { resolveConfig } from '../../src/model/resolve.js'
import { embeddingModes } from '../../src/config/schema.js'
import { generatedSteps, operationKinds } from '../helpers/change-catalog.js'

/**
 * Squawk (squawk-cli, the migration linter) over everything generate writes: the root example's
 * config in each mode, and a large config taken through every kind of change. Every finding must
 * be fixed in the generator or carry a `-- squawk-ignore <rule> -- <reason>` comment in the SQL.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SQUAWK = join(ROOT, 'node_modules', '.bin', 'squawk')
const run = promisify(execFile)

interface Finding { file: string; line: number; rule_name: string; message: string }

const dirs: string[] = []
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

async function squawk(files: readonly MigrationFile[]): Promise<Finding[]> {
  const dir = await mkdtemp(join(tmpdir(), 'pgml-kit-squawk-'))
  dirs.push(dir)
  const findings: Finding[] = []
  for (const transactional of [true, false]) {
    const group = files.filter((f) => f.transactional === transactional)
    if (group.length === 0) continue
    const paths: string[] = []
    for (const file of group) {
      const path = join(dir, file.fileName)
      await writeFile(path, file.content)
      paths.push(path)
    }
    // node-pg-migrate runs a transactional file inside BEGIN … COMMIT; the others statement by statement.
    const args = ['--reporter', 'json', '--pg-version', '15.0', ...(transactional ? ['--assume-in-transaction'] : []), ...paths]
    const { stdout } = await run(SQUAWK, args, { maxBuffer: 64 * 1024 * 1024 }).catch((error: { stdout?: string; code?: number }) => {
      // Squawk exits non-zero when it finds something; its report is still on stdout.
      if (typeof error.stdout === 'string' && error.stdout.trim().startsWith('[')) return { stdout: error.stdout }
      throw error
    })
    findings.push(...(JSON.parse(stdout) as Finding[]).map((f) => ({ ...f, file: f.file.split('/').pop()! })))
  }
  return findings
}

const describeFindings = (findings: readonly Finding[]) => findings.map((f) => `${f.file}:${f.line} ${f.rule_name}: ${f.message}`)

describe('squawk over the generated SQL', () => {
  it('reports what it should: the harness sees a finding in SQL without a reason', async () => {
    const content = '-- Up Migration\nALTER TABLE "public"."t" DROP COLUMN "c";\n-- Down Migration\n'
    const findings = await squawk([{ name: 'x', fileName: '1_unexplained.sql', content, transactional: true, requiresPgml: { up: false, down: false }, operations: [] }])
    expect(findings.map((f) => f.rule_name)).toContain('ban-drop-column')
  })

  it.each(embeddingModes)('finds nothing unexplained in the example\'s first migrations (mode %s)', async (mode) => {
    // The example's column and settings, in each mode.
    const config = await loadConfig('pgml-kit.config.ts', ROOT)
    expect(config.state.embeddingColumns[0]?.model.id).toBe('pgml-kit/wordnet-static-128')
    const state = resolveConfig({ tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: 'pgml-kit/wordnet-static-128', mode, indexes: [{ method: 'hnsw', distance: 'cosine', m: 16, efConstruction: 64 }] } } } } }).state
    const files = renderMigrationFiles(planMigration(EMPTY_STATE, state), { name: `example-${mode}`, timestamp: 1_795_318_396_886, settings: config.migrations })
    expect(describeFindings(await squawk(files))).toEqual([])
  })

  it('finds nothing unexplained in a large config taken through every kind of change', async () => {
    const steps = generatedSteps()
    const { OPERATION_KINDS } = await import('../../src/plan/operation.js')
    // Every kind of step is generated at least once, so squawk sees all of them.
    expect([...OPERATION_KINDS].filter((k) => !operationKinds(steps).has(k))).toEqual([])
    const files = steps.flatMap((s) => s.files)
    expect(files.length).toBeGreaterThan(10)
    expect(describeFindings(await squawk(files))).toEqual([])
  })
})
