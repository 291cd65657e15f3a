import { fileURLToPath } from 'node:url'

/**
 * The server tier's PostgreSQL when no PGML_KIT_TEST_DATABASE_URL is given: the image in
 * docker/postgres (PostgreSQL 17 + pgvector + PL/Python + pgml_compat), built (Docker's layer cache
 * makes later builds instant) and started with testcontainers, one container per test run.
 */
/** PGML_KIT_TEST_IMAGE: another tag, so that two checkouts testing on one Docker engine do not build over each other's image. */
export const SERVER_IMAGE = process.env.PGML_KIT_TEST_IMAGE ?? 'pgml-kit/postgres:17'
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const MODELS_DIR = fileURLToPath(new URL('../fixtures/models', import.meta.url))
const CONTAINER_MOUNT = '/var/lib/pgml-kit/models'

export interface StartedServer {
  readonly url: string
  stop(): Promise<void>
}

/** Whether a Docker engine answers (DOCKER_HOST, or the default socket). */
export async function dockerAvailable(): Promise<{ ok: true } | { ok: false; why: string }> {
  // Ryuk (testcontainers' reaper) is an image that cannot be pulled here; the run removes its container itself.
  process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true'
  try {
    const { getContainerRuntimeClient } = await import('testcontainers')
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no answer within 10 s')), 10_000)),
    ])
    return { ok: true }
  } catch (error) {
    return { ok: false, why: (error as Error).message.split('\n')[0] ?? 'unknown' }
  }
}

export async function startServerContainer(): Promise<StartedServer> {
  const { GenericContainer, Wait } = await import('testcontainers')
  await GenericContainer.fromDockerfile(ROOT, 'docker/postgres/Dockerfile').build(SERVER_IMAGE, { deleteOnExit: false })
  const password = 'pgml-kit-test'
  const container = await new GenericContainer(SERVER_IMAGE)
    .withEnvironment({ POSTGRES_PASSWORD: password })
    // As docker/compose.yaml: parallel index builds need more /dev/shm than Docker's 64 MB.
    .withSharedMemorySize(1024 * 1024 * 1024)
    .withExposedPorts(5432)
    .withBindMounts([{ source: MODELS_DIR, target: CONTAINER_MOUNT, mode: 'ro' }])
    .withCommand(['postgres', '-c', 'max_connections=200', '-c', 'fsync=off'])
    .withWaitStrategy(Wait.forHealthCheck())
    .withStartupTimeout(120_000)
    .start()
  return {
    url: `postgres://postgres:${password}@${container.getHost()}:${container.getMappedPort(5432)}/postgres`,
    async stop() {
      await container.stop({ remove: true, removeVolumes: true })
    },
  }
}
