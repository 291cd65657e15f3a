import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { dockerAvailable, startServerContainer, type StartedServer } from './server-container.js'

export interface ServerTier {
  /** An administrator URL; each test creates its own database through it. */
  readonly url: string
  /** Where it comes from: PGML_KIT_TEST_DATABASE_URL, or the docker/postgres image. */
  readonly source: 'url' | 'docker'
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** A freshly initialised PGlite data directory (nothing installed), copied into each embedded test's project. */
    pgliteTemplate: string
    /** The server tier's PostgreSQL, or null when the tier is skipped. */
    server: ServerTier | null
  }
}

/**
 * Once per run. The server tier is, in this order: none when PGML_KIT_TEST_SERVER=skip;
 * PGML_KIT_TEST_DATABASE_URL; else the
 * docker/postgres image, started with testcontainers where a Docker engine answers (one container
 * for the run, removed at the end whatever the tests did); else none, said once with the reason (test/server and test/docker then fail).
 * Also initialises one PGlite data directory that embedded tests copy instead of each running
 * initdb (seconds per test).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let container: StartedServer | undefined
  const url = process.env.PGML_KIT_TEST_DATABASE_URL
  if (process.env.PGML_KIT_TEST_SERVER === 'skip') {
    process.stderr.write('\n[pgml-kit tests] server tier skipped: PGML_KIT_TEST_SERVER=skip (this run covers the pure and embedded tiers).\n\n')
    project.provide('server', null)
  } else if (url) {
    project.provide('server', { url, source: 'url' })
  } else {
    const docker = await dockerAvailable()
    if (docker.ok) {
      process.stderr.write('\n[pgml-kit tests] server tier: building and starting docker/postgres (PostgreSQL 17) with testcontainers\n')
      container = await startServerContainer()
      project.provide('server', { url: container.url, source: 'docker' })
    } else {
      process.stderr.write(`\n[pgml-kit tests] server tier skipped: PGML_KIT_TEST_DATABASE_URL is not set and no Docker engine answers (${docker.why}). test/server and test/docker will fail; PGML_KIT_TEST_SERVER=skip leaves them out.\n\n`)
      project.provide('server', null)
    }
  }
  const dir = await mkdtemp(join(tmpdir(), 'pgml-kit-template-'))
  const { PGlite } = await import('@electric-sql/pglite')
  const db = await PGlite.create({ dataDir: join(dir, 'data') })
  await db.close()
  project.provide('pgliteTemplate', join(dir, 'data'))
  return async () => {
    await container?.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
