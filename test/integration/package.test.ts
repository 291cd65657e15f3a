import { execFile } from 'node:child_process'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/**
 * The package as users get it: `npm pack`, installed into an empty project with production
 * dependencies only (no devDependencies anywhere), then the whole first-contact path through npx.
 */
describe('the packed package, installed without devDependencies', () => {
  const dirs: string[] = []
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  })

  // npm install from the registry, on a machine that may be building the server image at the same
  // time: 54–58 s on a quiet 2-core CI machine, past 120 s on a loaded one. Not a speed check.
  it('runs init → generate → migrate → backfill → search from a production install, with the model it ships', { timeout: 600_000 }, async () => {
    const packDir = await mkdtemp(join(tmpdir(), 'pgml-kit-pack-'))
    const app = await mkdtemp(join(tmpdir(), 'pgml-kit-app-'))
    dirs.push(packDir, app)
    const packed = await run('npm', ['pack', '--pack-destination', packDir], { cwd: ROOT })
    // The repository's .npmrc holds only settings npm knows: no "Unknown project config" on every npm and npx call.
    expect(packed.stderr).not.toMatch(/Unknown (project|user|env) config/)
    const [tarball] = await readdir(packDir)
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
    // As the README tells users offline: onnxruntime-node's install script would download CUDA binaries; the CPU ones ship in the package.
    await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', join(packDir, tarball!)], { cwd: app, maxBuffer: 1 << 24, env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } })
    const installed = await readdir(join(app, 'node_modules'))
    expect(installed).not.toContain('vitest')
    expect(installed).not.toContain('typescript')

    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' }
    delete env.DATABASE_URL
    const cli = async (...args: string[]) => {
      try {
        return (await run('npx', ['--no-install', 'pgml-kit', ...args], { cwd: app, env, maxBuffer: 1 << 24 })).stdout
      } catch (error) {
        const e = error as { stdout?: string; stderr?: string; message: string }
        throw new Error(`pgml-kit ${args.join(' ')} failed: ${e.stderr ?? e.message}${e.stdout ?? ''}`)
      }
    }
    expect(await cli('--help')).toContain('pgml-kit')
    await cli('init')
    // init's config, unedited: the model pgml-kit ships (it works offline), in mode app.
    await cli('generate', '--name', 'add-embeddings')
    // init's sample rows: the quick start ends in an answer.
    expect(await cli('migrate')).toMatch(/applied .*sample-documents/)
    expect(await cli('backfill', 'documents.body_embedding')).toMatch(/^8 vectors written/)
    const hits = JSON.parse(await cli('search', 'documents.body_embedding', 'homes for families', '-k', '3', '--json')) as { title: string }[]
    expect(hits.map((h) => h.title)).toEqual(['Affordable housing programme', expect.any(String), expect.any(String)])
  })
})
