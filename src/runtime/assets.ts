import { readFileSync } from 'node:fs'

/**
 * The SQL of the `pgml_kit` runtime schema ships as plain files under `sql/runtime/` so a DBA can
 * read them; generated migrations embed their text. They are package constants, read once.
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

export function runtimeUninstallSql(version: number): string {
  return readAsset(`${version}.down.sql`)
}
