import type { EmbeddingColumnNode, FullTextNode, RolesNode, VectorIndexNode } from './ir.js'

/**
 * Where in the config an object of the desired state comes from, written as config errors write
 * paths (`tables.documents.embeddings.body_embedding.source[1]`). The tables of the config are keyed
 * by table name, so a node's table is its key. Used by messages that a config's author must act on:
 * the checks a migration runs first, the checks `generate` runs against a database, and the
 * statements of a migration file (so a failing one can be traced back to the config).
 */

export function tablePath(node: { readonly table: string }): string {
  return `tables.${node.table}`
}

/** An embedding column; the extra column of a staged model change belongs to the column it copies. */
export function embeddingPath(column: Pick<EmbeddingColumnNode, 'table' | 'column' | 'rollout'>): string {
  return `${tablePath(column)}.embeddings.${column.rollout?.of ?? column.column}`
}

export function sourcePath(column: Pick<EmbeddingColumnNode, 'table' | 'column' | 'rollout'>, position: number): string {
  return `${embeddingPath(column)}.source[${position}]`
}

export function primaryKeyPath(node: { readonly table: string }): string {
  return `${tablePath(node)}.primaryKey`
}

export function indexesPath(index: Pick<VectorIndexNode, 'table' | 'column'>): string {
  return `${tablePath(index)}.embeddings.${index.column}.indexes`
}

export function fullTextPath(node: Pick<FullTextNode, 'table'>): string {
  return `${tablePath(node)}.fullText`
}

export function fullTextSourcePath(node: Pick<FullTextNode, 'table'>, position: number): string {
  return `${fullTextPath(node)}.source[${position}]`
}

export function featureViewPath(view: { readonly name: string }): string {
  return `features.views.${view.name}`
}

export function trainingSetPath(set: { readonly name: string }): string {
  return `features.trainingSets.${set.name}`
}

/** `roles.app` or `roles.worker`: the first list that names the role. */
export function rolePath(roles: RolesNode, role: string): string {
  return roles.app.includes(role) ? 'roles.app' : roles.worker.includes(role) ? 'roles.worker' : 'roles.trainer'
}
