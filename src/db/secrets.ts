/**
 * Passwords never reach pgml-kit's output. Two tools, used together wherever a connection string
 * or a foreign error text is printed:
 * - `maskConnectionString` masks the password of a connection string by its structure, in every
 *   form libpq takes: `postgres[ql]://user:password@host/db`, `password=` (any case, its name
 *   percent-encoded or not) in the query string, and keyword/value strings
 *   (`host=h password='x y' dbname=d`, with libpq's quoting and backslash escapes, and a `dbname`
 *   that is itself a connection string). `sslpassword` is masked like `password`.
 * - `redactSecrets` removes known passwords by value from any text (a driver's message that echoes
 *   the connection string, a stack), as written and in their encoded forms, and masks connection
 *   strings found in it. `connectionSecrets` says which values: the passwords of a connection
 *   string (as masked here, and as pg reads it), and `$PGPASSWORD`.
 *
 * The URL's structure comes from the WHATWG URL parser (the one pg-connection-string hands the
 * string to). It is not the only reading: libpq ends the credentials at the first `@` unless a `/`
 * comes first, WHATWG at the last `@` before the first `/`, `?` or `#`. Where the two disagree, or
 * an `@` is left in the path, a password has an unencoded delimiter in it, and everything from
 * the first `:` to the last `@` is masked. pg-connection-string's own parse is not used here: it
 * reads the certificate files a URL names and warns about some sslmodes; and it does not read
 * keyword/value strings at all.
 */

const MASK = '***'
const SCHEME = /^(\s*)(postgres(?:ql)?:\/\/)/i
/** Where a URL starts inside a text. */
const URL_IN_TEXT = /postgres(?:ql)?:\/\/[^\s'"`<>]*/gi
/** A keyword/value password inside a text (libpq quoting, or up to the next space). */
const KEYWORD_PASSWORD_IN_TEXT = /\b([a-z_]*password)(\s*=\s*)(?!\*\*\*)('(?:[^'\\]|\\.)*(?:'|$)|(?:[^\s\\]|\\.)+)/gi

/** libpq's two secret connection parameters: password and sslpassword. */
function isSecretKey(key: string): boolean {
  return /password/i.test(key)
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

function isSpace(c: string | undefined): boolean {
  return c !== undefined && /\s/.test(c)
}

// ---------------------------------------------------------------------------------------------
// URLs

interface UrlParts {
  /** Leading space and the scheme with its `//`. */
  readonly head: string
  /** What stands before the `@` that ends the credentials; undefined without credentials. */
  readonly userinfo: string | undefined
  /** The rest: hosts, path, query string. */
  readonly tail: string
}

/** Where the credentials end (the index of their `@` in `rest`, the text after `scheme://`), or -1. */
function credentialsEnd(text: string, rest: string): number {
  // libpq: the first '@', unless a '/' comes before it.
  const libpq = /^[^@/]*@/.test(rest) ? rest.indexOf('@') : -1
  // WHATWG (pg): the authority ends at the first '/', '?' or '#'; its last '@' ends the credentials.
  const authorityEnd = rest.search(/[/?#]/)
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd)
  const whatwg = authority.lastIndexOf('@')
  const path = authorityEnd < 0 ? '' : rest.slice(authorityEnd).split('?')[0]!
  if (libpq === whatwg && !path.includes('@') && parses(text)) return whatwg
  // The readings disagree, an '@' is left in the path, or pg could not read it: a password has an
  // unencoded '@', '/', '?' or '#' in it. Its end is the last '@' (an '@' in the query string then
  // hides the host too).
  return rest.lastIndexOf('@')
}

function parses(text: string): boolean {
  try {
    new URL(text.trim())
    return true
  } catch {
    return false
  }
}

function splitUrl(text: string): UrlParts | undefined {
  const scheme = SCHEME.exec(text)
  if (!scheme) return undefined
  const head = scheme[0]
  const rest = text.slice(head.length)
  const at = credentialsEnd(text, rest)
  return at < 0 ? { head, userinfo: undefined, tail: rest } : { head, userinfo: rest.slice(0, at), tail: rest.slice(at + 1) }
}

/** The query string's parameters, each as written: `key=value`, a secret's value including any `&` piece without `=` after it. */
function queryParams(tail: string): { readonly before: string; readonly params: readonly { key: string; raw: string; value: string | undefined }[] } {
  const q = tail.indexOf('?')
  if (q < 0) return { before: tail, params: [] }
  const params: { key: string; raw: string; value: string | undefined }[] = []
  for (const piece of tail.slice(q + 1).split('&')) {
    const eq = piece.indexOf('=')
    const last = params[params.length - 1]
    // "password=a&b": pg reads password "a" and a parameter "b"; the password meant was "a&b".
    if (eq < 0 && last && isSecretKey(last.key) && last.value !== undefined) {
      last.raw += `&${piece}`
      last.value += `&${piece}`
      continue
    }
    params.push(eq < 0
      ? { key: decode(piece.replace(/\+/g, ' ')).trim(), raw: piece, value: undefined }
      : { key: decode(piece.slice(0, eq).replace(/\+/g, ' ')).trim(), raw: piece, value: piece.slice(eq + 1) })
  }
  return { before: tail.slice(0, q + 1), params }
}

function maskUrl(parts: UrlParts): string {
  let userinfo = ''
  if (parts.userinfo !== undefined) {
    const colon = parts.userinfo.indexOf(':')
    userinfo = `${colon < 0 || colon === parts.userinfo.length - 1 ? parts.userinfo : `${parts.userinfo.slice(0, colon)}:${MASK}`}@`
  }
  const { before, params } = queryParams(parts.tail)
  const query = params.map((p) => (p.value !== undefined && isSecretKey(p.key) ? `${p.raw.slice(0, p.raw.indexOf('='))}=${MASK}` : p.raw)).join('&')
  return `${parts.head}${userinfo}${before}${query}`
}

function urlSecrets(text: string, parts: UrlParts): string[] {
  const found: string[] = []
  if (parts.userinfo !== undefined) {
    const colon = parts.userinfo.indexOf(':')
    if (colon >= 0) found.push(parts.userinfo.slice(colon + 1))
  }
  for (const p of queryParams(parts.tail).params) if (p.value !== undefined && isSecretKey(p.key)) found.push(p.value, p.value.replace(/\+/g, ' '))
  // What pg sends: the WHATWG reading (a query parameter wins over the credentials).
  try {
    const url = new URL(text.trim())
    found.push(url.password)
    for (const [key, value] of url.searchParams) if (isSecretKey(key)) found.push(value)
  } catch { /* pg cannot read it either: what is masked above is all there is */ }
  return found.flatMap((s) => [s, decode(s)])
}

function urlShown(text: string): string[] {
  try {
    const url = new URL(text.trim())
    const shown = [decode(url.username), url.hostname, decode(url.pathname.slice(1))]
    for (const key of ['user', 'host', 'dbname']) shown.push(...url.searchParams.getAll(key))
    return shown
  } catch {
    return []
  }
}

// ---------------------------------------------------------------------------------------------
// keyword/value strings

interface Setting {
  /** Where the keyword starts and the value (quotes included) starts and ends. */
  readonly start: number
  readonly valueStart: number
  readonly end: number
  readonly key: string
  /** The value as libpq reads it: unquoted, backslash escapes resolved. */
  readonly value: string
}

/**
 * Reads `key = value` settings as libpq's conninfo_parse does: values are single-quoted (with
 * `\'` and `\\`) or run to the next space (with backslash escapes). A keyword without `=` is
 * skipped, as is the word after it when the keyword names a password.
 */
function keywordSettings(text: string): Setting[] {
  const settings: Setting[] = []
  let i = 0
  const n = text.length
  while (i < n) {
    while (isSpace(text[i])) i++
    if (i >= n) break
    const start = i
    while (i < n && text[i] !== '=' && !isSpace(text[i])) i++
    const key = text.slice(start, i)
    let j = i
    while (isSpace(text[j])) j++
    if (text[j] !== '=') {
      // libpq refuses "password x"; the x was meant as a password all the same.
      if (isSecretKey(key)) {
        const valueStart = j
        while (j < n && !isSpace(text[j])) j++
        settings.push({ start, valueStart, end: j, key, value: text.slice(valueStart, j) })
      }
      i = j
      continue
    }
    j++
    while (isSpace(text[j])) j++
    const valueStart = j
    let value = ''
    if (text[j] === "'") {
      j++
      while (j < n && text[j] !== "'") {
        if (text[j] === '\\' && j + 1 < n) j++
        value += text[j]
        j++
      }
      if (j < n) j++ // the closing quote (an unterminated value runs to the end)
    } else {
      while (j < n && !isSpace(text[j])) {
        if (text[j] === '\\' && j + 1 < n) j++
        value += text[j]
        j++
      }
    }
    settings.push({ start, valueStart, end: j, key, value })
    i = j
  }
  return settings
}

function quote(value: string): string {
  return `'${value.replace(/['\\]/g, '\\$&')}'`
}

function maskKeywordValue(text: string): string {
  let out = ''
  let last = 0
  for (const s of keywordSettings(text)) {
    let masked: string | undefined
    if (isSecretKey(s.key)) masked = MASK
    // dbname may itself be a connection string (libpq expands it).
    else if (s.key === 'dbname' && (SCHEME.test(s.value) || s.value.includes('='))) {
      const inner = maskConnectionString(s.value)
      if (inner !== s.value) masked = quote(inner)
    }
    if (masked === undefined) continue
    out += `${text.slice(last, s.valueStart)}${masked}`
    last = s.end
  }
  return out + text.slice(last)
}

function keywordSecrets(text: string): string[] {
  return keywordSettings(text).flatMap((s) => {
    if (isSecretKey(s.key)) return [s.value, text.slice(s.valueStart, s.end)]
    if (s.key === 'dbname' && (SCHEME.test(s.value) || s.value.includes('='))) return secretsOf(s.value)
    return []
  })
}

// ---------------------------------------------------------------------------------------------

/**
 * A connection string with its passwords masked (`***`), for humans: the rest (user, hosts,
 * database, other parameters) as written. Anything else comes back as it is.
 *
 * @example
 * maskConnectionString('postgres://app@db/app?password=s3cret') // 'postgres://app@db/app?password=***'
 */
export function maskConnectionString(text: string): string {
  const parts = splitUrl(text)
  if (parts) return maskUrl(parts)
  return text.includes('=') ? maskKeywordValue(text) : text
}

function secretsOf(text: string): string[] {
  const parts = splitUrl(text)
  if (parts) return urlSecrets(text, parts)
  return text.includes('=') ? keywordSecrets(text) : []
}

/**
 * The passwords to keep out of any output, for a run with this connection string (or none): its
 * passwords (as masked here, and as pg reads them), and `$PGPASSWORD`. A password that is also
 * the user name, host or database name (or the scheme's `postgres`) is left out: those are printed
 * as such anyway, and masking them would garble every message.
 */
export function connectionSecrets(connectionString: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const found = [...(connectionString ? secretsOf(connectionString) : []), ...(env.PGPASSWORD ? [env.PGPASSWORD] : [])]
  const shown = new Set(['postgres', 'postgresql', ...(connectionString ? urlShown(connectionString) : []),
    ...(connectionString && !splitUrl(connectionString) ? keywordSettings(connectionString).filter((s) => ['user', 'host', 'dbname'].includes(s.key)).map((s) => s.value) : [])])
  return [...new Set(found)].filter((s) => s !== '' && !shown.has(s))
}

/** The ways a password can be written in a URL, a keyword/value string or JSON. */
function spellings(secret: string): string[] {
  const userinfo = (() => {
    try {
      const url = new URL('postgres://host')
      url.password = secret
      return url.password
    } catch {
      return secret
    }
  })()
  return [secret, encodeURIComponent(secret), encodeURI(secret), userinfo, new URLSearchParams({ p: secret }).toString().slice(2),
    secret.replace(/['\\]/g, '\\$&'), JSON.stringify(secret).slice(1, -1)]
}

/**
 * `text` with every connection string in it masked and every one of `secrets` (in any of its
 * spellings) replaced by `***`: for driver messages, stacks and anything else not built from masked
 * parts.
 */
/** Secrets shorter than this are masked only where they stand alone (see redactSecrets). */
const SHORT_SECRET = 6

export function redactSecrets(text: string, secrets: readonly string[]): string {
  // The known values first, whole (a password with a space in it would otherwise be cut in two below).
  let out = text
  const all = [...new Set(secrets.filter((s) => s !== '').flatMap(spellings))].sort((a, b) => b.length - a.length)
  for (const secret of all) {
    // A short secret is masked where it stands alone, not inside a word: a password "x" would
    // otherwise turn "index" into "inde***".
    if (secret.length >= SHORT_SECRET) out = out.split(secret).join(MASK)
    else out = out.replace(new RegExp(`(?<![\\p{L}\\p{N}_])${secret.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\p{L}\\p{N}_])`, 'gu'), MASK)
  }
  // A URL in a sentence ends before the punctuation that follows it ("cannot connect to <url>: ...").
  return out.replace(URL_IN_TEXT, (found) => {
    const url = found.replace(/[.,;:!)\]]+$/, '')
    return `${maskConnectionString(url)}${found.slice(url.length)}`
  }).replace(KEYWORD_PASSWORD_IN_TEXT, (_all, key: string, eq: string) => `${key}${eq}${MASK}`)
}
