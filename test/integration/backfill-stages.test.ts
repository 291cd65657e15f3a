import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import type { ResolvedModel } from '../../src/model/ir.js'
import { MODELS_DIR, cosine, loadTiny, parseVector } from '../helpers/embedders.js'
import { runCli } from '../helpers/cli.js'
import { TestProject } from '../helpers/project.js'
import { tiers, type TestDatabase } from '../helpers/targets.js'

/**
 * `pgml-kit backfill` during a staged model change follows the database, not the config checked out:
 * the command a hint prints (the switch's refusal at migrate time, after `generate --switch`) works
 * with the config of any stage — or one that does not declare the column — and the extra columns
 * (`__next`, `__previous`) are filled by name in every stage where they exist, with the model the
 * catalog says; where one does not exist, backfill says so and what to run.
 */
const A: ResolvedModel = { id: 'pgml-kit/tiny-bert-16', revision: null, dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ', normalize: true, pooling: null }
const B: ResolvedModel = { id: 'pgml-kit/tiny-bert-32', revision: null, dimensions: 32, documentPrefix: '', queryPrefix: '', normalize: true, pooling: null }

function config(model: ResolvedModel): PgmlKitConfig {
  return {
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: { id: model.id, dimensions: model.dimensions, documentPrefix: model.documentPrefix, queryPrefix: model.queryPrefix }, mode: 'queue' } } } },
  }
}

describe.each(tiers)('backfill during a staged model change on the $name tier', (tier) => {
  let db: TestDatabase
  afterEach(async () => {
    await db?.close()
  })

  /** A config file beside the project's, as another checkout would have it. */
  async function otherConfig(name: string, value: PgmlKitConfig): Promise<string> {
    await writeFile(join(db.cwd, name), `export default ${JSON.stringify(value, null, 2)}\n`)
    return name
  }
  const cli = (args: readonly string[]) => runCli(args, { cwd: db.cwd, databaseUrl: db.databaseUrl })
  /** Rows whose `column` has no vector, and the worst cosine of the others against `model`'s embedding of their text. */
  async function agreement(column: string, model: ResolvedModel): Promise<{ missing: number; worst: number }> {
    const rows = await db.query<{ title: string; body: string; v: string | null }>(`SELECT title, body, "${column}"::text AS v FROM documents ORDER BY id`)
    const expected = await (await loadTiny(model)).embed(rows.map((r) => `${r.title}\n\n${r.body}`))
    let worst = 1
    let missing = 0
    rows.forEach((r, i) => {
      if (r.v === null) missing++
      else worst = Math.min(worst, cosine(parseVector(r.v), expected[i]!))
    })
    return { missing, worst }
  }

  it('the backfill a refused switch names works with any config checked out; __next and __previous are filled where they exist and refused, with the stage, where not', async () => {
    db = await tier.create()
    const project = await new TestProject(db).withDocumentsTable(config(A))
    await project.generate('embeddings')
    await project.migrate()
    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 30) AS i`)
    await project.work()
    const stage0 = await otherConfig('stage0.config.ts', config(A))
    const unrelated = await otherConfig('unrelated.config.ts', { embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false }, tables: {} })

    // Shadow, then the switch written without looking (generate --switch): migrate refuses it and says what to run.
    await project.writeConfig(config(B))
    await project.generate('shadow')
    await project.migrate()
    await project.generate('switch', { switch: 'always' })
    const refused = await cli(['migrate'])
    expect(refused.code).toBe(1)
    const hinted = /hint run pgml-kit (backfill \S+), then migrate again/.exec(refused.stderr)?.[1]
    expect(hinted, refused.stderr).toBe('backfill documents.body_embedding')

    // Before the switch there is no __previous column: said, with what to run instead.
    const noPrevious = await cli(['-c', stage0, 'backfill', 'documents.body_embedding__previous'])
    expect(noPrevious.code, noPrevious.stderr).toBe(2)
    expect(noPrevious.stderr).toMatch(/documents\.body_embedding__previous does not exist in the database: the model change of documents\.body_embedding has not been switched yet/)
    expect(noPrevious.stderr).toMatch(/hint run pgml-kit backfill documents\.body_embedding: it fills documents\.body_embedding and body_embedding__next/)

    // The hinted command, from a checkout whose config does not declare the column at all.
    const filled = await cli(['-c', unrelated, ...hinted!.split(' ')])
    expect(filled.code, filled.stderr).toBe(0)
    expect(await agreement('body_embedding__next', B)).toMatchObject({ missing: 0 })
    expect((await agreement('body_embedding__next', B)).worst).toBeGreaterThan(0.9999)
    expect((await cli(['migrate'])).code).toBe(0)

    // After the switch: __previous holds the old model. Emptied rows are filled by name with the
    // catalog's model (A), from a config of either stage; __next no longer exists.
    await db.query('UPDATE documents SET body_embedding__previous = NULL WHERE id <= 10')
    for (const c of [stage0, 'pgml-kit.config.ts']) {
      await db.query('UPDATE documents SET body_embedding__previous = NULL WHERE id <= 10')
      const previous = await cli(['-c', c, 'backfill', 'documents.body_embedding__previous'])
      expect(previous.code, previous.stderr).toBe(0)
      expect(previous.stdout).toMatch(/^10 vectors written/)
      const a = await agreement('body_embedding__previous', A)
      expect(a.missing).toBe(0)
      expect(a.worst).toBeGreaterThan(0.9999)
      const noNext = await cli(['-c', c, 'backfill', 'documents.body_embedding__next'])
      expect(noNext.code, noNext.stderr).toBe(2)
      expect(noNext.stderr).toMatch(/documents\.body_embedding__next does not exist in the database: the model change of documents\.body_embedding has been switched: its new model's vectors are in documents\.body_embedding itself now, the old model's in body_embedding__previous/)
      expect(noNext.stderr).not.toMatch(/42703|PostgreSQL refused/)
    }
    // The live column now holds B: filled with B, from the unrelated config too.
    await db.query('UPDATE documents SET body_embedding = NULL WHERE id <= 5')
    const live = await cli(['-c', unrelated, 'backfill', 'documents.body_embedding'])
    expect(live.code, live.stderr).toBe(0)
    expect((await agreement('body_embedding', B)).worst).toBeGreaterThan(0.9999)
    // A column neither the database nor the config has.
    const unknown = await cli(['backfill', 'documents.nope'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/"documents\.nope" is not an embedding column in the database or in the config/)
    expect(unknown.stderr).toMatch(/embedding columns: documents\.body_embedding, documents\.body_embedding__previous/)
  })
})
