import { commentText } from '../sql/quote.js'

/**
 * In a generated file, the statements of each step are preceded by the config object they come
 * from — `-- config: tables.documents.fullText` — or, for pgml-kit's own steps (its runtime schema,
 * extensions, the checks that run first), by `-- (pgml-kit's own step)`; a marker holds until the
 * next one. For the reviewer, and so that `migrate` can say which config object a failing
 * statement came from.
 */
const MARKER = '-- config: '
const OWN = "-- (pgml-kit's own step)"
const MARKERS = /^-- (?:config: (.*)|\(pgml-kit's own step\))$/gm

/** The marker for a step from `origin`, or for one of pgml-kit's own (null). */
export function renderOrigin(origin: string | null): string {
  return origin === null ? OWN : `${MARKER}${commentText(origin)}`
}

/** Whether a section of a file carries origins (files generated before they did do not). */
export function hasOrigins(text: string): boolean {
  return new RegExp(MARKERS.source, 'm').test(text)
}

/**
 * Where the statement that failed in a section came from: the last origin up to the end of
 * `statement` (a step's first statement carries its step's origin as a leading comment; the
 * others follow it). With no statement known (a section run as one query), the section's origin
 * if it holds one step's statements only. Null when unknown.
 */
export function originOf(section: string, statement: string | null): string | null {
  const at = statement === null ? -1 : section.indexOf(statement)
  if (statement === null || at < 0) {
    const origins = new Set([...section.matchAll(MARKERS)].map((m) => m[1] ?? null))
    return origins.size === 1 ? [...origins][0]! : null
  }
  return [...section.slice(0, at + statement.length).matchAll(MARKERS)].pop()?.[1] ?? null
}

/**
 * The line of a failed statement to show: the one at the error's `position` (1-based, in
 * characters, as PostgreSQL reports it) or else its first line that is not a comment, trimmed and
 * cut to `width` characters.
 */
export function failedLine(statement: string, position: number | null, width = 120): string {
  let line: string
  if (position !== null) {
    const chars = Array.from(statement)
    const at = Math.min(chars.length, Math.max(0, position - 1))
    let start = at
    while (start > 0 && chars[start - 1] !== '\n') start--
    let end = at
    while (end < chars.length && chars[end] !== '\n') end++
    line = chars.slice(start, end).join('')
  } else {
    line = statement.split('\n').find((l) => l.trim() !== '' && !l.trim().startsWith('--')) ?? ''
  }
  line = line.trim()
  return Array.from(line).length > width ? `${Array.from(line).slice(0, width - 1).join('')}…` : line
}
