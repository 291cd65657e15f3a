import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { TargetError } from '../../errors.js'
import { PRIVATE_DIRECTORY_MODE, PRIVATE_FILE_MODE } from './private-directory.js'

/**
 * A lock held by one process at a time over something on disk (the embedded data directory, the
 * migration run), made to be taken over safely when its holder dies — including by several
 * processes noticing at the same moment.
 *
 * The lock is a directory of numbered holder records, `g<generation>.json`. The record with the
 * highest generation is the current holder, if that process is alive. Taking the lock means
 * creating the next generation's record with an exclusive create (`wx`): of all processes that
 * try the same number, exactly one succeeds, and nothing current is ever moved or deleted to make
 * room. A process that raced with an old view of the directory checks, after creating its record,
 * that no higher generation exists, and backs off if one does.
 *
 * A holder is gone when its process is: on the same machine, its pid no longer runs (with the
 * process start time compared on Linux, so a reused pid is not mistaken for it). Only a holder on
 * another machine (a shared or mounted directory) is judged by its heartbeat. Liveness, not lock
 * age, decides, because the holder's event loop may be busy for long stretches.
 *
 * What a holder publishes (the embedded server's URL, with its password) is for the same user's
 * processes only: the directory is made 0700 and the records 0600.
 */
const HEARTBEAT_MS = 2_000
/** A holder on another host whose heartbeat is older than this is gone. */
const REMOTE_STALE_MS = 30_000
/** A record still being written (or left unreadable by a crash while writing it). */
const UNREADABLE_STALE_MS = 10_000
const RECORD = /^g(\d{12})\.json$/

export interface LockHolder {
  readonly pid: number
  /** Process start time (Linux, clock ticks since boot), to tell a reused pid apart. */
  readonly startTime: string | null
  readonly host: string
  readonly token: string
  /** What the holder publishes, e.g. the embedded server's address. */
  readonly details: Readonly<Record<string, unknown>>
}

export interface HeldLock {
  readonly holder: LockHolder
  /** Publishes details (merged) for processes that find the lock taken. */
  publish(details: Record<string, unknown>): Promise<void>
  /** Called once if a later generation appears (it should never happen while alive; stop at once). */
  onLost(listener: () => void): void
  release(): Promise<void>
}

function processStartTime(pid: number): string | null {
  if (process.platform !== 'linux') return null
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 22 (starttime), counted after the command name, which may itself contain spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null
  } catch {
    return null
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function lockError(path: string, error: unknown): TargetError {
  const code = (error as NodeJS.ErrnoException).code
  return new TargetError('LOCK_FAILED', `cannot use the lock ${path}: ${(error as Error).message}`, {
    where: path, cause: error,
    hint: code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
      ? 'the directory is not writable by this user; run pgml-kit as the user who owns the project directory'
      : undefined,
  })
}

const recordName = (generation: number) => `g${String(generation).padStart(12, '0')}.json`

/** The highest generation present (0 when none). */
async function latestGeneration(path: string): Promise<number> {
  let latest = 0
  for (const name of await readdir(path)) {
    const match = RECORD.exec(name)
    if (match) latest = Math.max(latest, Number(match[1]))
  }
  return latest
}

type Read = { readonly holder: LockHolder } | { readonly unreadable: true } | { readonly missing: true }

async function readRecord(path: string, generation: number): Promise<Read> {
  try {
    return { holder: JSON.parse(await readFile(join(path, recordName(generation)), 'utf8')) as LockHolder }
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? { missing: true } : { unreadable: true }
  }
}

async function isGone(path: string, generation: number, read: Read): Promise<boolean> {
  if ('missing' in read) return true
  const age = async () => Date.now() - (await stat(join(path, recordName(generation)))).mtimeMs
  try {
    if ('unreadable' in read) return (await age()) > UNREADABLE_STALE_MS
    const { holder } = read
    if (holder.host !== hostname()) return (await age()) > REMOTE_STALE_MS
    if (!isRunning(holder.pid)) return true
    const now = processStartTime(holder.pid)
    return holder.startTime !== null && now !== null && now !== holder.startTime
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true
    throw error
  }
}

/** Takes the lock at `path` (a directory), or returns who holds it (null while a holder is writing its record). */
export async function tryLock(path: string): Promise<HeldLock | { readonly held: LockHolder | null }> {
  try {
    await mkdir(path, { recursive: true, mode: PRIVATE_DIRECTORY_MODE })
    for (let attempt = 0; attempt < 10; attempt++) {
      const latest = await latestGeneration(path)
      if (latest > 0) {
        const read = await readRecord(path, latest)
        if (!(await isGone(path, latest, read))) return { held: 'holder' in read ? read.holder : null }
      }
      const generation = latest + 1
      const holder: LockHolder = {
        pid: process.pid, startTime: processStartTime(process.pid), host: hostname(), token: randomUUID(), details: {},
      }
      try {
        await writeFile(join(path, recordName(generation)), JSON.stringify(holder), { flag: 'wx', mode: PRIVATE_FILE_MODE })
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue
        throw error
      }
      // Someone working from an older view may have taken a higher generation meanwhile: theirs wins.
      if ((await latestGeneration(path)) > generation) {
        await rm(join(path, recordName(generation)), { force: true })
        continue
      }
      return await hold(path, generation, holder)
    }
    const latest = await latestGeneration(path)
    const read = await readRecord(path, latest)
    return { held: 'holder' in read ? read.holder : null }
  } catch (error) {
    if (error instanceof TargetError) throw error
    throw lockError(path, error)
  }
}

async function hold(path: string, generation: number, initial: LockHolder): Promise<HeldLock> {
  let holder = initial
  const file = join(path, recordName(generation))
  // Earlier generations are history now; removing them keeps the directory small.
  for (const name of await readdir(path)) {
    const match = RECORD.exec(name)
    if (match && Number(match[1]) < generation) await rm(join(path, name), { force: true })
    else if (name.endsWith('.tmp') && !name.startsWith(recordName(generation))) await rm(join(path, name), { force: true })
  }
  const lostListeners: (() => void)[] = []
  let lost = false
  let released = false
  const heartbeat = setInterval(() => {
    void (async () => {
      const latest = await latestGeneration(path).catch(() => generation)
      if (released) return
      if (latest > generation) {
        lost = true
        clearInterval(heartbeat)
        for (const listener of lostListeners) listener()
        return
      }
      const now = new Date()
      await utimes(file, now, now).catch(() => undefined)
    })()
  }, HEARTBEAT_MS)
  heartbeat.unref()
  return {
    get holder() {
      return holder
    },
    async publish(details) {
      holder = { ...holder, details: { ...holder.details, ...details } }
      // Written beside and renamed over, so a reader never sees half a record.
      const temporary = `${file}.${randomUUID()}.tmp`
      await writeFile(temporary, JSON.stringify(holder), { flag: 'wx', mode: PRIVATE_FILE_MODE })
      await rename(temporary, file)
    },
    onLost(listener) {
      if (lost) listener()
      else lostListeners.push(listener)
    },
    async release() {
      if (released) return
      released = true
      clearInterval(heartbeat)
      await rm(file, { force: true })
    },
  }
}

/** Who holds the lock at `path` now, if anyone (for tools and tests). */
export async function currentHolder(path: string): Promise<LockHolder | null> {
  try {
    const latest = await latestGeneration(path)
    if (latest === 0) return null
    const read = await readRecord(path, latest)
    return 'holder' in read && !(await isGone(path, latest, read)) ? read.holder : null
  } catch {
    return null
  }
}

/** Waits up to `waitMs` for the lock; throws `busy()` if it stays taken. */
export async function lock(path: string, waitMs: number, busy: (holder: LockHolder | null) => Error): Promise<HeldLock> {
  const deadline = Date.now() + waitMs
  for (;;) {
    const result = await tryLock(path)
    if (!('held' in result)) return result
    if (Date.now() >= deadline) throw busy(result.held)
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 150))
  }
}
