import { afterAll, beforeAll } from 'vitest'
import pg from 'pg'
import { requireServerTier } from './targets.js'

/**
 * Two login roles on the server tier for the tests of a `describe`: an application role and a
 * worker role (created before the tests, dropped after), with nothing granted — production apps
 * never run as the role that migrates. `as(url, role)` is `url` logged in as that role.
 */
export function leastPrivilegeRoles(): { readonly app: string; readonly worker: string; as(url: string, role: 'app' | 'worker'): string } {
  const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const app = `pgml_kit_app_${suffix}`
  const worker = `pgml_kit_worker_${suffix}`
  const asAdmin = async (sql: string) => {
    const c = new pg.Client({ connectionString: requireServerTier().url })
    await c.connect()
    try { await c.query(sql) } finally { await c.end() }
  }
  beforeAll(async () => asAdmin(`CREATE ROLE ${app} LOGIN PASSWORD 'app'; CREATE ROLE ${worker} LOGIN PASSWORD 'worker'`))
  afterAll(async () => asAdmin(`DROP ROLE IF EXISTS ${app}; DROP ROLE IF EXISTS ${worker}`))
  return {
    app, worker,
    as(url, role) {
      const u = new URL(url)
      u.username = role === 'app' ? app : worker
      u.password = role
      return u.toString()
    },
  }
}
