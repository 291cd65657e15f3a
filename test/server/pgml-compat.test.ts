import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { loadConfig } from '../../src/config/load.js'
import { checkParity } from '../../src/parity/check-parity.js'
import { backfill } from '../../src/worker/backfill.js'
import type { PgmlKitConfig } from '../../src/config/schema.js'
import { MODELS_DIR, TINY_16, TINY_32, WORDNET, cosine, loadTiny, loadWordnet, parseVector } from '../helpers/embedders.js'
import { runCli } from '../helpers/cli.js'
import { exampleInMode } from '../helpers/example.js'
import { differences, exhaustiveTexts, huggingFaceIds } from '../helpers/tokenizer-reference.js'
import { TestProject } from '../helpers/project.js'
import { server, serverTier, type TestDatabase } from '../helpers/targets.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

function compatConfig(mode: 'trigger' | 'generated'): PgmlKitConfig {
  return {
    embedder: { modelsDir: MODELS_DIR, allowRemoteModels: false },
    tables: { documents: { embeddings: { body_embedding: { source: ['title', 'body'], model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16, documentPrefix: 'passage: ' }, mode, indexes: [{ method: 'hnsw', distance: 'cosine' }] } } } },
  }
}

/** pgml_compat needs PL/Python: it runs on the server tier (docker/postgres, or PGML_KIT_TEST_DATABASE_URL). */
describe('pgml_compat on PostgreSQL (real in-database embedding and training, no test double)', () => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function compatDatabase(): Promise<TestDatabase> {
    db = await server.create()
    await db.query('CREATE EXTENSION pgml_compat CASCADE')
    return db
  }

  it('installs the pgml schema with pgml\'s signatures and volatility, and refuses to shadow an existing pgml', async () => {
    await compatDatabase()
    const functions = await db.query<{ sig: string; volatile: string; strict: boolean; parallel: string; config: string[] }>(
      `SELECT p.oid::regprocedure::text AS sig, p.provolatile AS volatile, p.proisstrict AS strict, p.proparallel AS parallel, p.proconfig AS config
       FROM pg_proc p WHERE p.pronamespace = 'pgml'::regnamespace AND p.proname = 'embed' ORDER BY 1`)
    expect(functions).toEqual([
      { sig: 'pgml.embed(text,text,jsonb)', volatile: 'i', strict: true, parallel: 's', config: ['search_path=pg_catalog, pg_temp'] },
      { sig: 'pgml.embed(text,text[],jsonb)', volatile: 'i', strict: true, parallel: 's', config: ['search_path=pg_catalog, pg_temp'] },
    ])
    const unpinned = await db.query(`SELECT p.oid::regprocedure::text AS sig FROM pg_proc p WHERE p.pronamespace = 'pgml'::regnamespace AND p.proconfig IS NULL AND p.prokind <> 'a'`)
    expect(unpinned).toEqual([])
    expect(await db.query(`SELECT pgml.version() AS v`)).toEqual([{ v: 'pgml_compat 0.5.0' }])
    await db.query('DROP EXTENSION pgml_compat')
    await db.query('CREATE SCHEMA pgml')
    await expect(db.query('CREATE EXTENSION pgml_compat')).rejects.toThrow(/schema pgml already exists/)
  })

  it('embeds like the local ONNX embedder (cosine ≥ 0.9999) on both fixture models, single and batched, with each engine', async () => {
    await compatDatabase()
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      // numpy always; onnxruntime where PL/Python can import it (the docker/postgres image must).
      const ort = await client.query(`DO $$ import onnxruntime $$ LANGUAGE plpython3u`).then(() => true, () => false)
      if (serverTier!.source === 'docker') expect(ort).toBe(true)
      const engines = ort ? ['numpy', 'onnxruntime'] : ['numpy']
      const texts = ['Affordable housing for families', 'hello world!', 'Ünïcödé café, naïve résumé', 'a'.repeat(300), '中文 text', 'x', 'word '.repeat(200)]
      for (const engine of engines) {
        await client.query(`SELECT set_config('pgml_compat.engine', $1, false)`, [engine])
        for (const model of [TINY_16, TINY_32]) {
          const local = await (await loadTiny({ ...model, documentPrefix: 'passage: ' })).embed(texts)
          const single = (await client.query<{ v: number[] }>(`SELECT pgml.embed($1, 'passage: ' || t, '{"normalize_embeddings": true}') AS v FROM unnest($2::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n`, [model.id, texts])).rows
          const batch = (await client.query<{ v: number[] }>(`SELECT pgml.embed($1, $2::text[], '{"normalize_embeddings": true, "prompt": "passage: "}') AS v`, [model.id, texts])).rows
          for (let i = 0; i < texts.length; i++) {
            expect(cosine(single[i]!.v, local[i]!), `${engine} ${model.id} text ${i}`).toBeGreaterThanOrEqual(0.9999)
            expect(cosine(batch[i]!.v, local[i]!), `${engine} ${model.id} batch text ${i}`).toBeGreaterThanOrEqual(0.9999)
          }
        }
      }
      await client.query(`SELECT set_config('pgml_compat.engine', 'neither', false)`)
      await expect(client.query(`SELECT pgml.embed('pgml-kit/tiny-bert-16', 'x')`)).rejects.toThrow(/pgml_compat.engine must be one of auto, onnxruntime, numpy/)
    } finally {
      await client.end()
    }
    expect(await db.query(`SELECT pgml.normalize_l2(ARRAY[3, 4]::real[]) AS v`)).toEqual([{ v: [0.6, 0.8] }])
    await expect(db.query(`SELECT pgml.embed('nobody/missing', 'x')`)).rejects.toThrow(/model 'nobody\/missing' not found: expected .*onnx\/model.onnx/)
    await expect(db.query(`SELECT pgml.embed('pgml-kit/tiny-bert-16', 'x', '{"bogus": 1}')`)).rejects.toThrow(/unsupported kwargs bogus/)
    // prompt_name: the model's own prompts (config_sentence_transformers.json), as sentence-transformers reads them.
    const [named] = await db.query<{ a: number[]; b: number[] }>(`SELECT pgml.embed('pgml-kit/tiny-bert-16', 'homes', '{"prompt_name": "query"}') AS a,
      pgml.embed('pgml-kit/tiny-bert-16', 'query: homes') AS b`)
    expect(named!.a).toEqual(named!.b)
    await expect(db.query(`SELECT pgml.embed('pgml-kit/tiny-bert-16', 'x', '{"prompt_name": "search"}')`)).rejects.toThrow(/has no prompt named 'search' \(its prompts: passage, query\)/)
    await expect(db.query(`SELECT pgml.embed('pgml-kit/tiny-bert-32', 'x', '{"prompt_name": "query"}')`)).rejects.toThrow(/defines no prompts/)
  })

  it('tokenises the hostile-text corpus exactly as Hugging Face tokenizers do, for every model (tokenizer conformance)', async () => {
    await compatDatabase()
    const corpus = JSON.parse(await readFile(join(ROOT, 'test/fixtures/tokenizer/corpus.json'), 'utf8')) as { texts: string[]; ids: Record<string, number[][]> }
    // TEST HELPER: pgml_compat's own tokenizer class, from the installed module, as SQL.
    await db.query(`CREATE FUNCTION test_tokenize(model_id text, texts text[]) RETURNS text LANGUAGE plpython3u AS $f$
import json, types
m = types.ModuleType('pgml_compat_under_test')
exec(compile(plpy.execute('SELECT pgml._source() AS s')[0]['s'], 'pgml_compat.py', 'exec'), m.__dict__)
tokenizer = m.WordPieceTokenizer(m.model_path(plpy, model_id))
return json.dumps([tokenizer.encode(t) for t in texts])
$f$`)
    // PostgreSQL text cannot hold U+0000; every other text goes through as written.
    const usable = corpus.texts.map((text, i) => ({ text, i })).filter(({ text }) => !text.includes('\u0000'))
    expect(usable.length).toBe(corpus.texts.length - 1)
    for (const [model, expected] of Object.entries(corpus.ids)) {
      const [row] = await db.query<{ ids: string }>('SELECT test_tokenize($1, $2) AS ids', [model, usable.map((u) => u.text)])
      const got = JSON.parse(row!.ids) as number[][]
      usable.forEach(({ text, i }, n) => expect(got[n], `${model} text ${i}: ${JSON.stringify(text.slice(0, 40))}`).toEqual(expected[i]))
    }
  })

  it('tokenises every assigned code point — alone, inside a word, between capital sigmas — exactly as Hugging Face tokenizers do', { timeout: 300_000 }, async () => {
    await compatDatabase()
    // TEST HELPER: pgml_compat's own tokenizer class, from the installed module, as SQL (loaded once per session).
    await db.query(`CREATE FUNCTION test_tokenize(model_id text, texts text[]) RETURNS text LANGUAGE plpython3u AS $f$
import json, types
if 'tokenizer' not in SD:
    m = types.ModuleType('pgml_compat_under_test')
    exec(compile(plpy.execute('SELECT pgml._source() AS s')[0]['s'], 'pgml_compat.py', 'exec'), m.__dict__)
    SD['tokenizer'] = m.WordPieceTokenizer(m.model_path(plpy, model_id))
return json.dumps([SD['tokenizer'].encode(t) for t in texts])
$f$`)
    // PostgreSQL text cannot hold U+0000.
    const texts = exhaustiveTexts().filter((t) => !t.includes('\u0000'))
    const expected = await huggingFaceIds(join(MODELS_DIR, TINY_16.id, 'tokenizer.json'), texts)
    const got = await db.session(async (query) => {
      const ids: number[][] = []
      for (let i = 0; i < texts.length; i += 50_000) {
        const [row] = await query<{ ids: string }>('SELECT test_tokenize($1, $2) AS ids', [TINY_16.id, texts.slice(i, i + 50_000)])
        ids.push(...(JSON.parse(row!.ids) as number[][]))
      }
      return ids
    })
    expect(differences(texts, got, expected)).toEqual({ count: 0, first: [] })
  })

  it('the model pgml-kit ships: tokenises and embeds like the local embedder with each engine, and parity holds on the example table', async () => {
    await compatDatabase()
    const texts = ['homes for families', '', 'the and of', 'Ünïcödé café, naïve résumé', 'xyzzy plugh', 'Families! (homes), 3 bedrooms; e-mail', '中文 text', 'word '.repeat(600)]
    const local = await (await loadWordnet()).embed(texts)
    await db.session(async (query) => {
      for (const engine of ['numpy', 'onnxruntime']) {
        await query(`SELECT set_config('pgml_compat.engine', $1, false)`, [engine])
        const rows = await query<{ v: number[] }>(`SELECT pgml.embed($1, t, '{"normalize_embeddings": true}') AS v FROM unnest($2::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n`, [WORDNET.id, texts])
        for (let i = 0; i < texts.length; i++) {
          expect(rows[i]!.v.every(Number.isFinite), `${engine} text ${i}`).toBe(true)
          expect(cosine(rows[i]!.v, local[i]!), `${engine} text ${i}`).toBeGreaterThanOrEqual(0.9999)
        }
      }
    })
    // The root example in trigger mode: pgml_compat writes the vectors, `pgml-kit parity` compares them with the local model.
    await exampleInMode(db.cwd, 'trigger')
    const cli = (...args: string[]) => runCli([...args, '--database-url', db.databaseUrl], { cwd: db.cwd })
    const migrated = await cli('migrate')
    expect(migrated.code, migrated.stderr).toBe(0)
    const name = new URL(db.url).pathname.slice(1)
    for (const engine of ['numpy', 'onnxruntime']) {
      await db.query(`ALTER DATABASE "${name}" SET pgml_compat.engine = '${engine}'`)
      // Re-embed every row in the database with this engine (the trigger fires on a source update).
      await db.query(`UPDATE documents SET title = title || ' '`)
      await db.query(`UPDATE documents SET title = rtrim(title, ' ')`)
      const parity = await cli('parity', 'documents.body_embedding', '--min-cosine', '0.9999')
      expect(parity.code, `${engine}: ${parity.stdout}${parity.stderr}`).toBe(0)
      expect(parity.stdout).toMatch(/stored vectors vs the local model, 8 rows/)
    }
  })

  it('trigger mode: embeds in the writing transaction, not on a rollback, not on other columns; parity holds', async () => {
    await compatDatabase()
    const p = await new TestProject(db).withDocumentsTable(compatConfig('trigger'))
    await p.generate()
    await p.migrate()
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      await client.query('BEGIN')
      await client.query(`INSERT INTO documents (title, body) VALUES ('Housing', 'Affordable homes for families')`)
      const inTransaction = await client.query(`SELECT body_embedding::text AS v FROM documents`)
      expect(inTransaction.rows[0].v).not.toBeNull()
      await client.query('COMMIT')
      await client.query('BEGIN')
      await client.query(`INSERT INTO documents (title, body) VALUES ('Rolled', 'back')`)
      await client.query('ROLLBACK')
    } finally {
      await client.end()
    }
    expect(await db.query('SELECT count(*)::int AS n FROM documents')).toEqual([{ n: 1 }])
    const local = await loadTiny({ ...TINY_16, documentPrefix: 'passage: ' })
    const [expected] = await local.embed(['Housing\n\nAffordable homes for families'])
    const stored = async () => (await db.query<{ v: string }>('SELECT body_embedding::text AS v FROM documents WHERE id = 1'))[0]!.v
    expect(cosine(parseVector(await stored()), expected!)).toBeGreaterThanOrEqual(0.9999)

    const sentinel = `[${Array.from({ length: 16 }, (_, i) => (i === 0 ? 1 : 0)).join(',')}]`
    await db.query(`UPDATE documents SET body_embedding = $1 WHERE id = 1`, [sentinel])
    await db.query(`UPDATE documents SET department = 'housing' WHERE id = 1`)
    expect(await stored()).toBe(sentinel)
    await db.query(`UPDATE documents SET body = 'Homes' WHERE id = 1`)
    const [updated] = await local.embed(['Housing\n\nHomes'])
    expect(cosine(parseVector(await stored()), updated!)).toBeGreaterThanOrEqual(0.9999)

    await db.query(`INSERT INTO documents (title, body) SELECT 'title ' || i, 'body ' || i FROM generate_series(1, 30) AS i`)
    const column = (await loadConfig('pgml-kit.config.ts', db.cwd)).state.embeddingColumns[0]!
    const report = await checkParity({ url: db.url, column, embedder: local, sample: 50, minCosine: 0.9999 })
    expect(report).toMatchObject({ compared: 'stored', count: 31, ok: true })
    const texts = await checkParity({ url: db.url, column, embedder: local, texts: ['parks and libraries', 'Ünïcödé'], minCosine: 0.9999 })
    expect(texts).toMatchObject({ compared: 'texts', count: 2, ok: true })

    // Skew: a stored vector that the model would not produce now is caught, and named.
    await db.query(`UPDATE documents SET body_embedding = $1 WHERE id = 5`, [sentinel])
    const skewed = await checkParity({ url: db.url, column, embedder: local, sample: 100 })
    expect(skewed.ok).toBe(false)
    expect(skewed.worst[0]).toMatchObject({ key: '{"id": 5}' })
    const cli = await runCli(['parity', 'documents.body_embedding', '--json'], { cwd: db.cwd, databaseUrl: db.databaseUrl })
    expect(cli.code).toBe(1)
    expect(JSON.parse(cli.stdout)).toMatchObject({ ok: false, worst: [expect.objectContaining({ key: '{"id": 5}' }), expect.anything(), expect.anything(), expect.anything(), expect.anything()] })

    // The in-database backfill path (pgml.embed in batches) repairs it.
    const repaired = await backfill({ url: db.url, column, all: true, batchSize: 8 })
    expect(repaired).toMatchObject({ how: 'database', done: 31, written: 31 })
    expect((await checkParity({ url: db.url, column, embedder: local, sample: 100, minCosine: 0.9999 })).ok).toBe(true)
  })

  it('generated mode: the database computes vectors for existing and new rows', async () => {
    await compatDatabase()
    const p = await new TestProject(db).withDocumentsTable(compatConfig('generated'))
    await p.migrate('up', 1)
    await db.query(`INSERT INTO documents (title, body) VALUES ('Existing', 'row')`)
    await p.generate()
    await p.migrate()
    await db.query(`INSERT INTO documents (title, body) VALUES ('New', 'row')`)
    const local = await loadTiny({ ...TINY_16, documentPrefix: 'passage: ' })
    const expected = await local.embed(['Existing\n\nrow', 'New\n\nrow'])
    const rows = await db.query<{ v: string }>('SELECT body_embedding::text AS v FROM documents ORDER BY id')
    rows.forEach((row, i) => expect(cosine(parseVector(row.v), expected[i]!)).toBeGreaterThanOrEqual(0.9999))
  })

  it('trains, deploys and predicts: pgml.train → pgml.predict round trips with sensible metrics', async () => {
    await compatDatabase()
    // One connection: PL/Python imports scikit-learn and xgboost once, not once per statement.
    await db.session(async (query) => {
      await query(`CREATE TABLE houses AS SELECT i AS id, (i % 97) / 97.0 AS size, (i % 13) / 13.0 AS age, NULL::float8 AS price FROM generate_series(1, 400) AS i;
        UPDATE houses SET price = 3 * size - 2 * age + 1 + ((id * 7919) % 100) / 5000.0;
        CREATE VIEW houses_training AS SELECT size, age, price FROM houses;`)
      const regression = ['linear', 'xgboost', 'random_forest', 'svm', 'ridge', 'lasso', 'elastic_net', 'gradient_boosting_trees']
      const hyper: Record<string, string> = { lasso: '{"alpha": 0.001}', elastic_net: '{"alpha": 0.001}', svm: '{"C": 10}' }
      for (const [i, algorithm] of regression.entries()) {
        const args = i === 0 ? `'prices', 'regression', 'houses_training', 'price', '${algorithm}'` : `'prices', algorithm => '${algorithm}'`
        await query(`SELECT * FROM pgml.train(${args}, hyperparams => '${hyper[algorithm] ?? '{}'}')`)
      }
      const metrics = await query<{ algorithm: string; r2: number }>(`SELECT algorithm::text, (metrics->>'r2')::float8 AS r2 FROM pgml.models ORDER BY id`)
      expect(metrics.map((m) => m.algorithm)).toEqual(regression)
      for (const m of metrics) expect(m.r2, m.algorithm).toBeGreaterThan(0.9)
      const [deployed] = await query<{ algorithm: string }>(`SELECT algorithm::text FROM pgml.deployed_models WHERE name = 'prices'`)
      const best = metrics.reduce((a, b) => (b.r2 > a.r2 ? b : a))
      expect(deployed!.algorithm).toBe(best.algorithm)

      const [prediction] = await query<{ p: number }>(`SELECT pgml.predict('prices', ARRAY[0.5, 0.5]::real[]) AS p`)
      expect(prediction!.p).toBeCloseTo(3 * 0.5 - 2 * 0.5 + 1, 1)
      const [byType] = await query<{ a: number; b: number; c: number }>(`SELECT pgml.predict('prices', ARRAY[0.5, 0.5]::float8[]) AS a,
        pgml.predict('prices', (SELECT h FROM (SELECT 0.5::float8 AS age, 0.5::float8 AS size) h)) AS b,
        pgml.predict((SELECT id FROM pgml.models WHERE algorithm = 'linear'), ARRAY[0.5, 0.5]::real[]) AS c`)
      expect(byType!.a).toBeCloseTo(prediction!.p, 4)
      expect(byType!.b).toBeCloseTo(prediction!.p, 4)
      expect(byType!.c).toBeCloseTo(1.5, 1)
      expect((await query<{ p: number }>(`SELECT pgml.predict_batch('prices', ARRAY[0.5, 0.5, 1, 0]::real[]) AS p`)).map((r) => r.p)).toEqual([
        expect.closeTo(1.5, 1), expect.closeTo(4, 1),
      ])
      // In-database batch prediction over a table.
      const [table] = await query<{ r: number }>(`SELECT corr(pgml.predict('prices', ARRAY[size, age]::real[]), price) AS r FROM houses`)
      expect(table!.r).toBeGreaterThan(0.99)

      expect(await query(`SELECT * FROM pgml.deploy('prices', 'most_recent')`)).toEqual([{ project: 'prices', strategy: 'most_recent', algorithm: 'gradient_boosting_trees' }])
      const [rollback] = await query<{ algorithm: string }>(`SELECT * FROM pgml.deploy('prices', 'rollback')`)
      expect(rollback!.algorithm).toBe(best.algorithm)
      expect(await query(`SELECT * FROM pgml.deploy('prices', 'best_score', 'ridge')`)).toEqual([{ project: 'prices', strategy: 'best_score', algorithm: 'ridge' }])

      await expect(query(`SELECT * FROM pgml.train('prices', algorithm => 'kmeans')`)).rejects.toThrow(/does not support algorithm 'kmeans' for regression \(only for clustering, as in PostgresML\); supported: linear, xgboost/)
      await expect(query(`SELECT * FROM pgml.train('nope')`)).rejects.toThrow(/give its task/)
    })
  })

  it('classifies with search, probabilities and automatic deployment on f1', async () => {
    await compatDatabase()
    // One connection: PL/Python imports scikit-learn and xgboost once, not once per statement.
    await db.session(async (query) => {
      await query(`CREATE TABLE points AS SELECT i, (i % 31) / 31.0 AS a, (i % 17) / 17.0 AS b FROM generate_series(1, 400) AS i;
        ALTER TABLE points ADD COLUMN kind int; UPDATE points SET kind = CASE WHEN a > b THEN 1 ELSE 0 END;
        CREATE VIEW points_training AS SELECT a, b, kind FROM points;`)
      await query(`SELECT * FROM pgml.train('kinds', 'classification', 'points_training', 'kind', 'linear', hyperparams => '{"C": 100}')`)
      for (const algorithm of ['xgboost', 'random_forest', 'svm', 'ridge', 'lasso', 'elastic_net', 'gradient_boosting_trees']) {
        await query(`SELECT * FROM pgml.train('kinds', algorithm => '${algorithm}')`)
      }
      await query(`SELECT * FROM pgml.train('kinds', algorithm => 'random_forest', search => 'grid', search_params => '{"n_estimators": [5, 20], "max_depth": [2, 6]}', search_args => '{"cv": 2}')`)
      await query(`SELECT * FROM pgml.train('kinds', algorithm => 'xgboost', search => 'random', search_params => '{"max_depth": [2, 3, 4, 5], "n_estimators": [10, 30]}', search_args => '{"n_iter": 3, "cv": 2}')`)
      const models = await query<{ id: number; algorithm: string; f1: number; search: string | null; hyperparams: Record<string, number> }>(
        `SELECT id::int, algorithm::text, (metrics->>'f1')::float8 AS f1, search::text, hyperparams FROM pgml.models ORDER BY id`)
      expect(models).toHaveLength(10)
      for (const m of models) expect(m.f1, m.algorithm).toBeGreaterThan(0.85)
      expect(models[8]).toMatchObject({ search: 'grid', hyperparams: { n_estimators: expect.any(Number), max_depth: expect.any(Number) } })
      expect(models[9]).toMatchObject({ search: 'random', hyperparams: { n_estimators: expect.any(Number), max_depth: expect.any(Number) } })
      expect(await query(`SELECT * FROM pgml.deploy($1::bigint)`, [models[3]!.id])).toEqual([{ project: 'kinds', strategy: 'specific', algorithm: 'svm' }])
      expect(await query(`SELECT algorithm::text FROM pgml.deployed_models`)).toEqual([{ algorithm: 'svm' }])
      const [p] = await query<{ kind: number; proba: number[] }>(`SELECT pgml.predict('kinds', ARRAY[0.9, 0.1]::real[]) AS kind, pgml.predict_proba('kinds', ARRAY[0.9, 0.1]::real[]) AS proba`)
      expect(p!.kind).toBe(1)
      expect(p!.proba).toHaveLength(2)
      expect(p!.proba[0]! + p!.proba[1]!).toBeCloseTo(1, 5)
      expect(p!.proba[1]).toBeGreaterThan(0.5)
      await expect(query(`SELECT * FROM pgml.train('kinds', algorithm => 'knn')`)).rejects.toThrow(/does not support algorithm 'knn' for classification; supported: linear, xgboost, xgboost_random_forest, random_forest, extra_trees/)
    })
  })
})
