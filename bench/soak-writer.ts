/**
 * The soak's writer (bench/soak.ts starts it): changes rows of `docs` at random until SIGTERM, the
 * way an application does — inserts, updates that change the text, updates that do not, NULL
 * sources, bulk updates, deletes and re-inserts of the same key. It survives the embedded owner
 * being killed (it reconnects, or becomes the owner itself); a change whose commit was cut off is
 * simply tried again or skipped: the final check compares every row with its current text.
 *
 *   node --import tsx bench/soak-writer.ts <project dir> <database url or ''> <seed rows> <random seed>
 */
import { openTarget } from '../src/db/target.js'
import { isConnectionLost } from '../src/db/connect.js'

const [cwd = '.', databaseUrl = '', seedRowsText = '2000', seedText = '1'] = process.argv.slice(2)
const seedRows = Number(seedRowsText)
let state = Number(seedText) >>> 0
const random = () => {
  state = (state * 1664525 + 1013904223) >>> 0
  return state / 2 ** 32
}
const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)] as T
const WORDS = 'river housing budget park library school tram bicycle permit garden museum clinic market bridge tax harbour council festival water energy'.split(' ')
const text = (n: number) => Array.from({ length: n }, () => pick(WORDS)).join(' ')

const target = await openTarget({ cwd, databaseUrl })
let client = await target.connect('soak writer')
let stopping = false
process.on('SIGTERM', () => { stopping = true })

async function run<R extends Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await client.query<R>(sql, params)).rows
    } catch (error) {
      if (!isConnectionLost(error) && !isConnectionLost((error as { cause?: unknown }).cause)) throw error
      await client.end().catch(() => undefined)
      await new Promise((resolve) => setTimeout(resolve, 100 + random() * 400))
      client = await target.connect('soak writer')
      if (attempt > 50) throw error
    }
  }
}

const existing = Number((await run<{ n: string }>('SELECT coalesce(max(id), 0) AS n FROM docs'))[0]?.n ?? 0)
let nextId = existing + 1
let changes = 0
if (existing === 0) {
  for (let start = 1; start <= seedRows; start += 500) {
    const ids = Array.from({ length: Math.min(500, seedRows - start + 1) }, (_, i) => start + i)
    await run('INSERT INTO docs (id, title, body) SELECT i, $2 || i, $3 || i FROM unnest($1::bigint[]) AS i', [ids, 'title ', `${text(12)} `])
    changes += ids.length
  }
  nextId = seedRows + 1
}

while (!stopping) {
  const id = 1 + Math.floor(random() * (nextId - 1))
  const roll = random()
  if (roll < 0.2) await run('INSERT INTO docs (id, title, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING', [nextId++, text(3), text(20)])
  else if (roll < 0.55) await run('UPDATE docs SET body = $2 WHERE id = $1', [id, text(20)])
  else if (roll < 0.65) await run('UPDATE docs SET title = title, body = body WHERE id = $1', [id])
  else if (roll < 0.7) await run('UPDATE docs SET title = NULL, body = NULL WHERE id = $1', [id])
  else if (roll < 0.75) await run(`UPDATE docs SET body = coalesce(body, '') || ' ' || $2 WHERE id % 97 = $1`, [Math.floor(random() * 97), pick(WORDS)])
  else if (roll < 0.85) await run('DELETE FROM docs WHERE id = $1', [id])
  else await run('INSERT INTO docs (id, title, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, body = EXCLUDED.body', [id, text(3), text(20)])
  changes++
  // Reported as it goes: a writer can be killed (when it owns the embedded database) at any time.
  if (changes % 50 === 0) process.stdout.write(`${JSON.stringify({ changes })}\n`)
}
await client.end().catch(() => undefined)
await target.close()
process.stdout.write(`${JSON.stringify({ changes })}\n`)
