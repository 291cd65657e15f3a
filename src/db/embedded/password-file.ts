import { randomBytes, randomUUID } from 'node:crypto'
import { chmod, link, readFile, stat, unlink, writeFile } from 'node:fs/promises'
import { TargetError } from '../../errors.js'
import { PRIVATE_FILE_MODE } from './private-directory.js'

/**
 * The embedded server's password: 256 random bits, made once per `.pgml-kit/` directory and kept
 * in a 0600 file inside it, so the URL that `pgml-kit dev` serves stays the same across restarts
 * and takeovers (an application's `DATABASE_URL` keeps working). Deleting the file changes it the
 * next time an owner starts.
 */
const PASSWORD = /^[0-9a-f]{64}$/

export async function readOrCreatePassword(file: string): Promise<string> {
  const existing = await readPassword(file)
  if (existing !== undefined) return existing
  // Written in full beside it, then linked into place: linking fails if another process made one
  // first (then theirs is used), and nobody ever reads a half-written file.
  const temporary = `${file}.${randomUUID()}.tmp`
  try {
    await writeFile(temporary, `${randomBytes(32).toString('hex')}\n`, { mode: PRIVATE_FILE_MODE, flag: 'wx' })
    await link(temporary, file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error
    })
  } catch (error) {
    throw passwordError(file, error)
  } finally {
    await unlink(temporary).catch(() => undefined)
  }
  const created = await readPassword(file)
  if (created === undefined) throw passwordError(file, new Error('it disappeared while it was being made'))
  return created
}

async function readPassword(file: string): Promise<string | undefined> {
  let text
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw passwordError(file, error)
  }
  const password = text.trim()
  if (!PASSWORD.test(password)) {
    throw new TargetError('EMBEDDED_PASSWORD_INVALID', `${file} does not hold a password pgml-kit made (64 hexadecimal digits)`, {
      where: file, hint: `delete ${file}; the next pgml-kit command makes a new one`,
    })
  }
  try {
    if (((await stat(file)).mode & 0o077) !== 0) await chmod(file, PRIVATE_FILE_MODE)
  } catch (error) {
    throw passwordError(file, error)
  }
  return password
}

function passwordError(file: string, error: unknown): TargetError {
  return new TargetError('EMBEDDED_PASSWORD_FAILED', `cannot read or make the embedded server's password in ${file}: ${(error as Error).message}`, {
    where: file, cause: error, hint: 'run pgml-kit as the user who owns the project directory',
  })
}
