import { describe, expect, it } from 'vitest'
import { describeConnectError, redactUrl } from '../../src/db/connect.js'
import { connectionSecrets, maskConnectionString, redactSecrets } from '../../src/db/secrets.js'

/**
 * Passwords with every character that has a meaning somewhere in a connection string. Each is
 * written between `Zq` and `Xy` so that a leak of any part of it is easy to find.
 */
const HOSTILE = ['@', '/', '?', '&', '=', '#', ':', "'", '"', ' ', '\\', '%', '%41', '+', ';', ',', '@/?&=#']
const passwords = ['S3cr3tPw', ...HOSTILE.map((c) => `Zq${c}Xy`)]

/** Every way `secret` could show up in a text: as written, decoded, percent-encoded. */
function leaks(text: string, secret: string): string[] {
  const forms = new Set([secret, encodeURIComponent(secret), encodeURI(secret), secret.replace(/['\\]/g, '\\$&')])
  // A password with a delimiter in it: neither half alone may show either (Zq... and ...Xy are unique to it).
  return [...forms].filter((form) => text.includes(form)).concat(/Zq|Xy/.test(text) ? ['a part of it'] : [])
}

/** libpq's keyword/value quoting: single quotes, with \' and \\ escaped. */
const libpqQuote = (value: string) => `'${value.replace(/['\\]/g, '\\$&')}'`

interface Form {
  readonly name: string
  readonly write: (password: string) => string
  /** What the masked string is, whatever the password. */
  readonly masked: string
}

const forms: Form[] = [
  { name: 'userinfo, percent-encoded', write: (p) => `postgres://app:${encodeURIComponent(p)}@db.example:5432/app`, masked: 'postgres://app:***@db.example:5432/app' },
  { name: 'userinfo, written as is', write: (p) => `postgres://app:${p}@db.example:5432/app`, masked: 'postgres://app:***@db.example:5432/app' },
  { name: 'postgresql:// userinfo with a query string', write: (p) => `postgresql://app:${encodeURIComponent(p)}@db.example/app?sslmode=disable`, masked: 'postgresql://app:***@db.example/app?sslmode=disable' },
  { name: 'upper-case scheme', write: (p) => `POSTGRES://app:${encodeURIComponent(p)}@db.example/app`, masked: 'POSTGRES://app:***@db.example/app' },
  { name: 'query string password=, percent-encoded', write: (p) => `postgres://db.example/app?user=app&password=${encodeURIComponent(p)}`, masked: 'postgres://db.example/app?user=app&password=***' },
  { name: 'query string, other parameters after it', write: (p) => `postgres://db.example/app?password=${encodeURIComponent(p)}&sslmode=disable&user=app`, masked: 'postgres://db.example/app?password=***&sslmode=disable&user=app' },
  { name: 'query string PASSWORD= in upper case', write: (p) => `postgres://db.example/app?user=app&PASSWORD=${encodeURIComponent(p)}`, masked: 'postgres://db.example/app?user=app&PASSWORD=***' },
  { name: 'query string with the key percent-encoded', write: (p) => `postgres://db.example/app?user=app&pass%77ord=${encodeURIComponent(p)}`, masked: 'postgres://db.example/app?user=app&pass%77ord=***' },
  { name: 'query string sslpassword=', write: (p) => `postgres://app@db.example/app?sslpassword=${encodeURIComponent(p)}`, masked: 'postgres://app@db.example/app?sslpassword=***' },
  { name: 'both userinfo and query string', write: (p) => `postgres://app:${encodeURIComponent(p)}@db.example/app?password=${encodeURIComponent(p)}`, masked: 'postgres://app:***@db.example/app?password=***' },
  { name: 'keyword/value, quoted', write: (p) => `host=db.example password=${libpqQuote(p)} dbname=app`, masked: 'host=db.example password=*** dbname=app' },
  { name: 'keyword/value, unquoted with backslash escapes', write: (p) => `host=db.example password=${p.replace(/[\s'\\]/g, '\\$&')} dbname=app`, masked: 'host=db.example password=*** dbname=app' },
  { name: 'keyword/value, spaces around =', write: (p) => `host = db.example  password = ${libpqQuote(p)}  dbname = app`, masked: 'host = db.example  password = ***  dbname = app' },
  { name: 'keyword/value, upper-case keyword, last', write: (p) => `dbname=app PASSWORD=${libpqQuote(p)}`, masked: 'dbname=app PASSWORD=***' },
  { name: 'keyword/value with a URL as dbname', write: (p) => `dbname=${libpqQuote(`postgres://app:${encodeURIComponent(p)}@db.example/app`)} connect_timeout=5`, masked: "dbname='postgres://app:***@db.example/app' connect_timeout=5" },
]

describe('maskConnectionString', () => {
  for (const form of forms) {
    it(`masks the password: ${form.name}`, () => {
      for (const password of passwords) {
        const written = form.write(password)
        const masked = maskConnectionString(written)
        expect(masked, written).toBe(form.masked)
        expect(leaks(masked, password), written).toEqual([])
        expect(redactUrl(written)).toBe(masked)
      }
    })
  }

  it('leaves everything but the password as written, and strings without one as they are', () => {
    expect(maskConnectionString('postgres://app@db.example:6432/app?sslmode=require&application_name=a%40b')).toBe('postgres://app@db.example:6432/app?sslmode=require&application_name=a%40b')
    expect(maskConnectionString('postgres://app:s3cret@[::1]:5432/app?application_name=me@home')).toBe('postgres://app:***@[::1]:5432/app?application_name=me@home')
    expect(maskConnectionString('postgres://app:s3cret@h1:5432,h2:5433/app')).toBe('postgres://app:***@h1:5432,h2:5433/app')
    expect(maskConnectionString('postgres://app:@db/app')).toBe('postgres://app:@db/app')
    expect(maskConnectionString('postgres//nope')).toBe('postgres//nope')
    expect(maskConnectionString('')).toBe('')
    expect(maskConnectionString('host=/var/run/postgresql dbname=app')).toBe('host=/var/run/postgresql dbname=app')
  })

  it('masks what a malformed string would have had as a password', () => {
    // libpq refuses an unterminated quote and a keyword without '='; the password was there all the same.
    expect(maskConnectionString("host=h password='never closed dbname=app")).toBe('host=h password=***')
    expect(maskConnectionString('host=h password s3cret dbname=app')).toBe('host=h password *** dbname=app')
    // An '&' written as is in a query string password: pg reads "Zq", the password meant was "Zq&Xy".
    expect(maskConnectionString('postgres://db/app?password=Zq&Xy&sslmode=disable')).toBe('postgres://db/app?password=***&sslmode=disable')
    // An '@' in the query string next to a password with a '?' in it: the host is hidden too, never the password shown.
    expect(maskConnectionString('postgres://app:Zq?Xy@db/app?application_name=me@home')).toBe('postgres://app:***@home')
  })
})

describe('connectionSecrets and redactSecrets', () => {
  it('remove the password of every form from a text that echoes it, as written or decoded', () => {
    for (const form of forms) {
      for (const password of passwords) {
        const written = form.write(password)
        const secrets = connectionSecrets(written, {})
        // A driver message echoing the connection string, and the password alone in three spellings.
        const text = `could not connect with "${written}" (password ${password}, ${encodeURIComponent(password)}, ${JSON.stringify(password)})`
        const redacted = redactSecrets(text, secrets)
        expect(leaks(redacted, password), `${form.name}: ${redacted}`).toEqual([])
        expect(redacted).toContain(form.masked)
      }
    }
  })

  it('mask a short password where it stands alone, not inside the words around it', () => {
    const secrets = connectionSecrets('postgres://app:x@db.internal/app')
    expect(redactSecrets('index check found the cause; the password x was refused (x+y)', secrets))
      .toBe('index check found the cause; the password *** was refused (***+y)')
    // A long one is masked wherever it occurs, inside words too.
    expect(redactSecrets('prefix-s3cretpass-suffix', connectionSecrets('postgres://app:s3cretpass@db/app'))).toBe('prefix-***-suffix')
  })

  it('keep $PGPASSWORD out too', () => {
    const secrets = connectionSecrets('postgres://app@db.example/app', { PGPASSWORD: 'Zq env Xy' })
    expect(secrets).toContain('Zq env Xy')
    expect(redactSecrets('auth failed for Zq env Xy / Zq%20env%20Xy', secrets)).toBe('auth failed for *** / ***')
    expect(connectionSecrets(undefined, { PGPASSWORD: 'Zq1Xy' })).toEqual(['Zq1Xy'])
  })

  it('mask connection strings found in a text, and keyword/value passwords, even with no secret known', () => {
    expect(redactSecrets('cannot connect to postgres://app:Zq1Xy@db/app: refused. Also postgresql://db/app?password=Zq2Xy, and host=db password=\'Zq 3Xy\' dbname=app', []))
      .toBe('cannot connect to postgres://app:***@db/app: refused. Also postgresql://db/app?password=***, and host=db password=*** dbname=app')
  })

  it('do not mask a password that is also the user, host or database name: those are printed as such', () => {
    const url = 'postgres://postgres:postgres@localhost/postgres'
    expect(maskConnectionString(url)).toBe('postgres://postgres:***@localhost/postgres')
    expect(redactSecrets(`cannot connect to ${maskConnectionString(url)}: password authentication failed for postgres`, connectionSecrets(url, {})))
      .toBe('cannot connect to postgres://postgres:***@localhost/postgres: password authentication failed for postgres')
  })
})

describe('describeConnectError', () => {
  it('names the target with its password masked, also when the driver message echoes the URL', () => {
    for (const form of forms.filter((f) => f.write('x').startsWith('postgres'))) {
      for (const password of passwords) {
        const url = form.write(password)
        const echo = Object.assign(new Error(`connection to ${url} failed: password=${password}`), { code: 'XX000' })
        const error = describeConnectError(echo, url)
        expect(error.code).toBe('CONNECTION_FAILED')
        for (const text of [error.message, error.where ?? '', error.hint ?? '']) expect(leaks(text, password), `${url}: ${text}`).toEqual([])
      }
    }
  })

  it('reads the user from the query string as pg does', () => {
    const error = describeConnectError(Object.assign(new Error('password authentication failed for user "app"'), { code: '28P01' }), 'postgres://db.example/app?user=app&password=Zq1Xy')
    expect(error.message).toBe('cannot connect to postgres://db.example/app?user=app&password=***: password authentication failed for app')
  })
})
