import { chmod, mkdir, stat } from 'node:fs/promises'
import { TargetError } from '../../errors.js'

/**
 * The embedded database's files are reachable by the user who runs pgml-kit only. PGlite writes
 * its files 0666 whatever the umask, and the owner's lock record holds the server's password, so
 * what protects them is a directory other users cannot traverse: `.pgml-kit/` is 0700 (made so,
 * or tightened when an older pgml-kit made it 0755), and pgml-kit's own files in it are 0600.
 *
 * A directory that belongs to another user is refused rather than used or tightened: it is
 * someone else's database, or one planted for this user to write into (its owner could read
 * everything written there, and swap the files underneath).
 */
export const PRIVATE_DIRECTORY_MODE = 0o700
export const PRIVATE_FILE_MODE = 0o600

/** The current user's uid; undefined where there are no POSIX owners (Windows). */
function currentUid(): number | undefined {
  return process.getuid?.()
}

/**
 * Makes `path` (a directory whose parent exists) private to the current user: creates it 0700, or
 * checks an existing one is a directory the current user owns and takes away every other user's
 * access to it. `uid` is the user it must belong to (the current one unless given).
 */
export async function ensurePrivateDirectory(path: string, uid: number | undefined = currentUid()): Promise<void> {
  try {
    await mkdir(path, { mode: PRIVATE_DIRECTORY_MODE })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw directoryError(path, error)
  }
  if (uid === undefined) return
  let info
  try {
    // Followed if it is a symbolic link: what matters is who owns the directory the files land in.
    info = await stat(path)
  } catch (error) {
    throw directoryError(path, error)
  }
  if (!info.isDirectory()) {
    throw new TargetError('EMBEDDED_DIR_INVALID', `${path} is not a directory`, {
      where: path, hint: 'remove or rename it; pgml-kit keeps the embedded database in that directory',
    })
  }
  if (info.uid !== uid) {
    throw new TargetError('EMBEDDED_DIR_NOT_OWNED',
      `${path} belongs to another user (uid ${info.uid}, not ${uid}): pgml-kit will not use or write into another user's embedded database`,
      {
        where: path,
        hint: `run pgml-kit as the user who owns ${path}, or, if you do not know where it came from, remove it (its owner can read and change everything in it) and run again`,
      })
  }
  // Also when the umask took bits away from the owner: the owner needs all three.
  if ((info.mode & 0o777) !== PRIVATE_DIRECTORY_MODE) {
    try {
      await chmod(path, PRIVATE_DIRECTORY_MODE)
    } catch (error) {
      throw directoryError(path, error)
    }
  }
}

function directoryError(path: string, error: unknown): TargetError {
  const code = (error as NodeJS.ErrnoException).code
  return new TargetError('EMBEDDED_DIR_FAILED', `cannot use ${path} for the embedded database: ${(error as Error).message}`, {
    where: path, cause: error,
    hint: code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
      ? 'run pgml-kit as the user who owns the project directory'
      : code === 'ENOENT' ? 'run pgml-kit in an existing project directory' : undefined,
  })
}
