import { readFileSync } from 'node:fs'

/**
 * The SQL of the `pgml_kit` runtime schema ships as plain files under `sql/runtime/` so a DBA can
 * read them; generated migrations embed their text. They are package constants, read once.
 * Every version's script is idempotent (the runtime is shared by all pgml-kit projects in a
 * database), and `uninstall.sql` removes the schema only when nothing uses it.
 */
const cache = new Map<string, string>()

function readAsset(name: string): string {
  let text = cache.get(name)
  if (text === undefined) {
    text = readFileSync(new URL(`../../sql/runtime/${name}`, import.meta.url), 'utf8').trim()
    cache.set(name, text)
  }
  return text
}

export function runtimeInstallSql(version: number): string {
  return readAsset(`${version}.up.sql`)
}

export function runtimeUninstallSql(): string {
  return readAsset('uninstall.sql')
}
