import { describe, expect, it } from 'vitest'
import { requireServerTier } from '../helpers/targets.js'
import { SERVER_IMAGE } from '../helpers/server-container.js'

/**
 * `docker stop` (and `docker compose down`) sends the image's STOPSIGNAL, SIGINT, to PID 1. It must
 * reach PostgreSQL, which then shuts down fast and clean. Before, the entrypoint left `runuser` as
 * PID 1, which did not pass the signal on: Docker killed PostgreSQL ten seconds later and the next
 * start began with crash recovery.
 */
describe('the docker/postgres image', () => {
  it('shuts PostgreSQL down cleanly on docker stop', async () => {
    if (requireServerTier().source !== 'docker') throw new Error('test/docker needs the server tier to be the docker/postgres image')
    const { GenericContainer, Wait } = await import('testcontainers')
    let log = ''
    const container = await new GenericContainer(SERVER_IMAGE)
      .withEnvironment({ POSTGRES_PASSWORD: 'pgml-kit-test' })
      .withWaitStrategy(Wait.forHealthCheck())
      .withStartupTimeout(120_000)
      .withLogConsumer((stream) => stream.on('data', (chunk: Buffer | string) => { log += chunk.toString() }))
      .start()
    try {
      const pid1 = await container.exec(['ps', '-o', 'user=,comm=', '-p', '1'])
      expect(pid1.output.trim().split(/\s+/)).toEqual(['postgres', 'postgres'])
    } finally {
      // A stop signal PostgreSQL never saw would end in SIGKILL after this long.
      await container.stop({ timeout: 30_000, remove: true })
    }
    expect(log).toMatch(/received fast shutdown request/)
    expect(log).toMatch(/database system is shut down/)
  })
})
