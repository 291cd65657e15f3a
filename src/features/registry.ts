import type pg from 'pg'
import { shellArg } from '../shell.js'
import { PgmlKitError } from '../errors.js'
import {
  ALIASES_OF_VERSION, ARCHIVE_VERSION, DEPLOYED_MODEL, DESCRIBE_VERSION, LIST_EVENTS, LIST_VERSIONS, LOCK_REGISTRY_PROJECT, READ_ALIAS,
  CAN_READ_PGML_MODELS, READ_VERSION, REGISTER_MISSING_VERSIONS, SET_ALIAS_EVENT, REGISTRY_EXISTS, REMOVE_ALIAS, SET_ALIAS, VERSION_OF_MODEL,
} from '../sql/render-registry.js'
import { ROUTE_OF_ALIAS, SERVING_EXISTS } from '../sql/render-serving.js'

/**
 * The model registry (runtime schema version 6): each model pgml trained for a project gets a
 * version number of that project; aliases name versions and are resolved at prediction time
 * (`kit.predict('churn@challenger', …)`, `pgml.predict(pgml_kit.model_id('churn@challenger'), …)`);
 * `champion` is the version pgml-kit deployed last and moves with every deployment. Every change
 * is an event with who (session_user), when, why and the version it moved from.
 */

/** Registry changes read what other sessions committed (the next version number, the alias's current version), whatever the role's default isolation. */
export const BEGIN_REGISTRY = 'BEGIN ISOLATION LEVEL READ COMMITTED'

/** The alias every deployment through pgml-kit moves to the deployed version. */
export const CHAMPION = 'champion'

const ALIAS_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/
/** `v3`: a version (no leading zero, at most 9 digits); every `v<digits>` is reserved, never an alias. */
const VERSION_REFERENCE = /^v([1-9][0-9]{0,8})$/
const RESERVED_ALIAS = /^v[0-9]+$/

export interface ModelVersion {
  readonly project: string
  readonly version: number
  /** pgml's model id. */
  readonly modelId: number
  /** What pgml knows of the model (null when pgml no longer has it). */
  readonly algorithm: string | null
  readonly status: string | null
  readonly metrics: Readonly<Record<string, number>>
  readonly trainedAt: string | null
  readonly description: string | null
  readonly tags: Readonly<Record<string, string>>
  readonly registeredAt: string
  readonly registeredBy: string
  /** Set when the version was archived: it is never served again. */
  readonly archived: { readonly at: string; readonly by: string; readonly reason: string | null } | null
  readonly aliases: readonly string[]
  /** Whether pgml serves it for `pgml.predict('<project>', …)` now. */
  readonly deployed: boolean
}

export type RegistryEventKind = 'registered' | 'deployed' | 'alias_set' | 'alias_removed' | 'described' | 'tagged' | 'archived' | 'route_set' | 'route_removed'

export interface RegistryEvent {
  readonly id: string
  readonly version: number | null
  readonly event: RegistryEventKind
  readonly alias: string | null
  readonly fromVersion: number | null
  /** session_user of the change. */
  readonly actor: string
  readonly at: string
  readonly reason: string | null
  readonly detail: Readonly<Record<string, unknown>>
}

/** A reference to one version of a project's models: `project@alias` or `project@v3`. */
export type ModelReference = { readonly project: string; readonly alias: string } | { readonly project: string; readonly version: number }

/** Splits `project@alias` / `project@v3` at its last `@`; null for a plain project name. */
export function parseModelReference(reference: string): ModelReference | null {
  const at = reference.lastIndexOf('@')
  if (at < 0) return null
  const project = reference.slice(0, at)
  const name = reference.slice(at + 1)
  if (project === '' || name === '') {
    throw new PgmlKitError('MODEL_REFERENCE_INVALID', `"${reference}" is not a model reference`, { hint: 'write project@alias (e.g. churn@champion) or project@v3' })
  }
  const version = VERSION_REFERENCE.exec(name)
  if (version) return { project, version: Number(version[1]) }
  if (RESERVED_ALIAS.test(name)) throw new PgmlKitError('MODEL_REFERENCE_INVALID', `"${reference}" is not a model reference`, { hint: 'a version is v followed by its number without leading zeros (v3), at most 9 digits' })
  return { project, alias: name }
}

function checkAlias(alias: string): void {
  if (!ALIAS_PATTERN.test(alias) || RESERVED_ALIAS.test(alias)) {
    throw new PgmlKitError('ALIAS_INVALID', `alias "${alias}" is not allowed`, {
      hint: 'an alias is lower-case letters, digits, "_" and "-", starting with a letter, at most 63 characters; v<number> names a version',
    })
  }
}

/** Whether the database has the registry (a migration of pgml-kit ≥ runtime 6 ran). */
export async function registryInstalled(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(REGISTRY_EXISTS)
  return rows[0]?.ok === true
}

export async function requireRegistry(client: pg.ClientBase): Promise<void> {
  if (!(await registryInstalled(client))) {
    throw new PgmlKitError('REGISTRY_MISSING', 'this database has no model registry (pgml_kit.model_versions)', {
      hint: 'declare the model under models in the config, then pgml-kit generate && pgml-kit migrate',
    })
  }
}

/** A permission error on the registry's tables, said with the config setting that grants it. */
export function registryNotPermitted(error: unknown, what: string): unknown {
  const e = error as { code?: string; message?: string }
  if (e.code !== '42501') return error
  // pgml's own catalog (reading a model's project) is pgml's grant, not the registry's.
  const onPgml = /\b(schema|table|relation|view) "?pgml"?(\.|\s|$)/.test(e.message ?? '') || /\bpgml\.(models|projects|deployments)\b/.test(e.message ?? '')
  return new PgmlKitError('REGISTRY_NOT_PERMITTED', `this role may not ${what}: ${e.message ?? 'permission denied'}`, {
    cause: error, where: onPgml ? 'pgml' : 'roles.trainer',
    hint: onPgml
      ? 'it needs to read pgml\'s catalog too: with pgml_compat, an administrator runs GRANT pgml_trainer TO <this role>'
      : 'add the role to roles.trainer in the config (or roles.app to read it), then pgml-kit generate && pgml-kit migrate (the migration grants it the registry)',
  })
}

/** Runs `fn` in a transaction (READ COMMITTED, whatever the role's default) holding the project's registry lock. `client` must not be in a transaction. */
export async function inRegistryTransaction<T>(client: pg.ClientBase, project: string, what: string, fn: () => Promise<T>): Promise<T> {
  await client.query(BEGIN_REGISTRY)
  try {
    await client.query(LOCK_REGISTRY_PROJECT, [project])
    const result = await fn()
    await client.query('COMMIT')
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw registryNotPermitted(error, what)
  }
}

/**
 * Inside the caller's transaction: gives the project's pgml models without a version the next
 * version numbers (training order). Returns the versions registered.
 */
export async function registerMissingInTransaction(client: pg.ClientBase, project: string): Promise<number[]> {
  await client.query(LOCK_REGISTRY_PROJECT, [project])
  // A role that may not read pgml's catalog (moving aliases needs only the registry) registers nothing.
  if (!(await client.query<{ ok: boolean }>(CAN_READ_PGML_MODELS)).rows[0]?.ok) return []
  const { rows } = await client.query<{ version: number }>(REGISTER_MISSING_VERSIONS, [project])
  return rows.map((r) => r.version).sort((a, b) => a - b)
}

/** Inside the caller's transaction: takes the project's registry lock, when the database has a registry. */
export async function lockRegistryProject(client: pg.ClientBase, project: string): Promise<void> {
  if (await registryInstalled(client)) await client.query(LOCK_REGISTRY_PROJECT, [project])
}

/** Registers every model pgml has for the project that has no version yet; returns their versions. */
export async function syncVersions(client: pg.ClientBase, project: string): Promise<number[]> {
  await requireRegistry(client)
  return inRegistryTransaction(client, project, `register models of "${project}"`, () => registerMissingInTransaction(client, project))
}

/**
 * Inside the caller's transaction, right after pgml.deploy: registers the deployed model if it is
 * new, refuses an archived version (the transaction, and so the deployment, is rolled back), moves
 * `champion` to it and records a `deployed` event (who, why, from which version, `detail`).
 * Returns the version deployed, or null when the registry is not installed.
 */
export async function recordDeployment(client: pg.ClientBase, project: string, options: { readonly reason?: string | null; readonly detail?: Readonly<Record<string, unknown>> } = {}): Promise<{ readonly version: number; readonly fromVersion: number | null } | null> {
  if (!(await registryInstalled(client))) return null
  try {
    await registerMissingInTransaction(client, project)
    const { rows: deployed } = await client.query<{ model_id: string }>(DEPLOYED_MODEL, [project])
    const modelId = deployed[0]?.model_id
    if (modelId === undefined) return null
    const { rows } = await client.query<{ version: number; archived: boolean }>(VERSION_OF_MODEL, [project, modelId])
    const version = rows[0]!.version
    if (rows[0]!.archived) {
      throw new PgmlKitError('MODEL_ARCHIVED', `version ${version} of "${project}" (model ${modelId}) is archived and is never served again; not deployed`, {
        hint: `pgml-kit models ${shellArg(project)} lists the live versions; deploy one of them by id (pgml-kit deploy ${shellArg(project)} --model <id>)`,
      })
    }
    const { rows: before } = await client.query<{ version: number }>(READ_ALIAS, [project, CHAMPION])
    const fromVersion = before[0]?.version ?? null
    await moveAlias(client, project, CHAMPION, version, 'deployed', options.reason ?? null, { model_id: Number(modelId), ...options.detail })
    return { version, fromVersion }
  } catch (error) {
    throw registryNotPermitted(error, `record the deployment of "${project}" in the model registry`)
  }
}

/** Points the alias at the version; the registry's trigger records the event (kind, reason, detail as given, who and the version before from the row). */
async function moveAlias(client: pg.ClientBase, project: string, alias: string, version: number, event: 'alias_set' | 'deployed', reason: string | null, detail: Readonly<Record<string, unknown>>): Promise<void> {
  await client.query(SET_ALIAS_EVENT, [event, reason ?? '', JSON.stringify(detail)])
  await client.query(SET_ALIAS, [project, alias, version])
  await client.query(SET_ALIAS_EVENT, ['', '', ''])
}

async function liveVersion(client: pg.ClientBase, project: string, version: number): Promise<{ modelId: string; tags: Record<string, string>; description: string | null }> {
  const { rows } = await client.query<{ model_id: string; archived: boolean; tags: Record<string, string>; description: string | null }>(READ_VERSION, [project, version])
  const row = rows[0]
  if (!row) throw new PgmlKitError('MODEL_VERSION_UNKNOWN', `project "${project}" has no version ${version}`, { hint: `pgml-kit models ${shellArg(project)} lists its versions` })
  if (row.archived) throw new PgmlKitError('MODEL_ARCHIVED', `version ${version} of "${project}" is archived and is never served again`, { hint: `pgml-kit models ${shellArg(project)} lists the live versions` })
  return { modelId: row.model_id, tags: row.tags, description: row.description }
}

/**
 * Points `alias` of the project at `version` (a live one), atomically, with an `alias_set` event
 * that records the version it named before. `champion` moves only with a deployment
 * (`deploy --model <id>`), so that it is always the version pgml serves.
 */
export async function setAlias(client: pg.ClientBase, project: string, alias: string, version: number, options: { readonly reason?: string } = {}): Promise<{ readonly fromVersion: number | null }> {
  checkAlias(alias)
  if (alias === CHAMPION) {
    throw new PgmlKitError('ALIAS_RESERVED', `"${CHAMPION}" is the version pgml-kit deployed last; it moves with a deployment`, { hint: `pgml-kit deploy ${shellArg(project)} --model <model id of the version>` })
  }
  await requireRegistry(client)
  return inRegistryTransaction(client, project, `move aliases of "${project}"`, async () => {
    await registerMissingInTransaction(client, project)
    await liveVersion(client, project, version)
    const { rows } = await client.query<{ version: number }>(READ_ALIAS, [project, alias])
    const fromVersion = rows[0]?.version ?? null
    await moveAlias(client, project, alias, version, 'alias_set', options.reason ?? null, {})
    return { fromVersion }
  })
}

/** Removes an alias (not `champion`), with an `alias_removed` event. */
export async function removeAlias(client: pg.ClientBase, project: string, alias: string, options: { readonly reason?: string } = {}): Promise<void> {
  checkAlias(alias)
  if (alias === CHAMPION) throw new PgmlKitError('ALIAS_RESERVED', `"${CHAMPION}" is the version pgml-kit deployed last and cannot be removed`)
  await requireRegistry(client)
  await inRegistryTransaction(client, project, `move aliases of "${project}"`, async () => {
    const { rows } = await client.query<{ version: number }>(READ_ALIAS, [project, alias])
    if (!rows[0]) throw new PgmlKitError('ALIAS_UNKNOWN', `project "${project}" has no alias "${alias}"`, { hint: `pgml-kit models ${shellArg(project)}` })
    const serving = (await client.query<{ ok: boolean }>(SERVING_EXISTS)).rows[0]?.ok === true
    const routed = serving ? (await client.query<{ alias: string }>(ROUTE_OF_ALIAS, [project, alias])).rows : []
    if (routed[0]) throw new PgmlKitError('ALIAS_ROUTED', `"${project}@${alias}" is the challenger of the project's route; remove the route first`, { hint: `pgml-kit models unroute ${shellArg(project)}` })
    await client.query(SET_ALIAS_EVENT, ['alias_removed', options.reason ?? '', '{}'])
    await client.query(REMOVE_ALIAS, [project, alias])
    await client.query(SET_ALIAS_EVENT, ['', '', ''])
  })
}

/**
 * Archives a version: it keeps its row and history but is never served again (model_id() refuses
 * it, deployments refuse it). Refused while an alias names it or pgml serves it; a reason is required.
 */
export async function archiveVersion(client: pg.ClientBase, project: string, version: number, options: { readonly reason: string }): Promise<void> {
  if (options.reason.trim() === '') throw new PgmlKitError('ARCHIVE_REASON_REQUIRED', 'archiving a version needs a reason, recorded with it')
  await requireRegistry(client)
  await inRegistryTransaction(client, project, `archive versions of "${project}"`, async () => {
    await registerMissingInTransaction(client, project)
    const { modelId } = await liveVersion(client, project, version)
    const { rows: aliases } = await client.query<{ alias: string }>(ALIASES_OF_VERSION, [project, version])
    if (aliases.length > 0) {
      throw new PgmlKitError('MODEL_VERSION_IN_USE', `version ${version} of "${project}" is named by ${aliases.map((a) => `@${a.alias}`).join(', ')}; not archived`, {
        hint: aliases.some((a) => a.alias === CHAMPION) ? `deploy another version first (pgml-kit deploy ${shellArg(project)} --model <id>)` : `move the alias first: pgml-kit models alias ${shellArg(project)} <alias> <version>`,
      })
    }
    const { rows: deployed } = await client.query<{ model_id: string }>(DEPLOYED_MODEL, [project])
    if (deployed[0]?.model_id === modelId) {
      throw new PgmlKitError('MODEL_VERSION_IN_USE', `version ${version} of "${project}" is the model pgml serves for it; not archived`, { hint: `deploy another version first (pgml-kit deploy ${shellArg(project)} --model <id>)` })
    }
    // The registry's trigger records the event (and checks again what is checked above).
    await client.query(ARCHIVE_VERSION, [project, version, options.reason])
  })
}

/**
 * Sets a version's description and/or tags (`tags`: a value sets the tag, null removes it), with a
 * `described` and/or `tagged` event.
 */
export async function describeVersion(client: pg.ClientBase, project: string, version: number, change: { readonly description?: string | null; readonly tags?: Readonly<Record<string, string | null>> }): Promise<ModelVersion> {
  await requireRegistry(client)
  await inRegistryTransaction(client, project, `describe versions of "${project}"`, async () => {
    await registerMissingInTransaction(client, project)
    const { rows } = await client.query<{ tags: Record<string, string>; description: string | null }>(READ_VERSION, [project, version])
    const row = rows[0]
    if (!row) throw new PgmlKitError('MODEL_VERSION_UNKNOWN', `project "${project}" has no version ${version}`, { hint: `pgml-kit models ${shellArg(project)} lists its versions` })
    const tags: Record<string, string> = { ...row.tags }
    for (const [key, value] of Object.entries(change.tags ?? {})) {
      if (key === '') throw new PgmlKitError('TAG_INVALID', 'a tag needs a name')
      if (value === null) delete tags[key]
      else tags[key] = value
    }
    const description = change.description === undefined ? row.description : change.description
    // The registry's trigger records what changed (described, tagged).
    await client.query(DESCRIBE_VERSION, [project, version, description, JSON.stringify(tags)])
  })
  return (await listVersions(client, project, { sync: false })).find((v) => v.version === version)!
}

type VersionRow = {
  version: number; model_id: string; algorithm: string | null; status: string | null; metrics: Record<string, number> | null; created_at: Date | null
  description: string | null; tags: Record<string, string>; registered_at: Date; registered_by: string; archived_at: Date | null; archived_by: string | null; archive_reason: string | null
  aliases: string[]; deployed: boolean
}

/**
 * The project's versions, oldest first. With `sync` (default) the models pgml trained since are
 * registered first (which needs the registry's write grant; a role without it reads what is there).
 */
export async function listVersions(client: pg.ClientBase, project: string, options: { readonly sync?: boolean } = {}): Promise<ModelVersion[]> {
  await requireRegistry(client)
  if (options.sync !== false) {
    await syncVersions(client, project).catch((error: unknown) => {
      if (!(error instanceof PgmlKitError && error.code === 'REGISTRY_NOT_PERMITTED')) throw error
    })
  }
  const { rows } = await client.query<VersionRow>(LIST_VERSIONS, [project]).catch((error: unknown) => { throw registryNotPermitted(error, `read the registry of "${project}"`) })
  const iso = (d: Date | null) => (d === null ? null : new Date(d).toISOString())
  return rows.map((r) => ({
    project, version: r.version, modelId: Number(r.model_id), algorithm: r.algorithm, status: r.status, metrics: r.metrics ?? {}, trainedAt: iso(r.created_at),
    description: r.description, tags: r.tags, registeredAt: iso(r.registered_at)!, registeredBy: r.registered_by,
    archived: r.archived_at === null ? null : { at: iso(r.archived_at)!, by: r.archived_by ?? '', reason: r.archive_reason },
    aliases: r.aliases, deployed: r.deployed,
  }))
}

/** Every registry event of the project, oldest first. */
export async function modelHistory(client: pg.ClientBase, project: string): Promise<RegistryEvent[]> {
  await requireRegistry(client)
  const { rows } = await client.query<{ id: string; version: number | null; event: RegistryEventKind; alias: string | null; from_version: number | null; actor: string; at: Date; reason: string | null; detail: Record<string, unknown> }>(LIST_EVENTS, [project]).catch((error: unknown) => { throw registryNotPermitted(error, `read the registry of "${project}"`) })
  return rows.map((r) => ({ id: r.id, version: r.version, event: r.event, alias: r.alias, fromVersion: r.from_version, actor: r.actor, at: new Date(r.at).toISOString(), reason: r.reason, detail: r.detail }))
}
