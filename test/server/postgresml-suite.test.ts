import { RecursiveCharacterTextSplitter } from '@langchain/textsplitters'
import { afterEach, describe, expect, it } from 'vitest'
import { server, type TestDatabase } from '../helpers/targets.js'

type Query = TestDatabase['query']

/**
 * What PostgresML's own test suite (pgml-extension/tests/test.sql and its examples; run whole by
 * bench/postgresml-suite.ts) asks of pgml_compat beyond pgml.train and pgml.predict, one test per
 * capability: decomposition, joint regression, clustering, the vector functions and aggregates,
 * pgml.chunk, and reloading a dataset. Results are compared with scikit-learn called directly on
 * the same rows with the same parameters (in PL/Python, in the same server), with LangChain's
 * splitter for pgml.chunk, and with numpy for the vector functions.
 */
describe('PostgresML\'s test suite, capability by capability, on pgml_compat', () => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function withCompat<T>(fn: (query: Query) => Promise<T>): Promise<T> {
    db = await server.create()
    await db.query('CREATE EXTENSION pgml_compat CASCADE')
    // The reference: Python run as the test's superuser, outside pgml_compat (its code never sees this).
    await db.query(`CREATE FUNCTION reference(code text) RETURNS jsonb LANGUAGE plpython3u AS $$
import json
scope = {'plpy': plpy}
exec(code, scope)
return json.dumps(scope['result'])
$$`)
    return db.session(fn)
  }

  const reference = async <T>(query: Query, code: string): Promise<T> => (await query<{ r: T }>(`SELECT reference($1) AS r`, [code]))[0]!.r

  // The rows pgml.train trains on with test_sampling 'last': all but the last round(n × test_size).
  const trainingRows = (relation: string, columns: string, testSize = 0.25) => `
import numpy as np
rows = plpy.execute('SELECT ${columns} FROM ${relation}')
def flat(v):
    return [x for e in v for x in flat(e)] if isinstance(v, list) else [v]
data = np.asarray([[float(x) for c in r.values() for x in flat(c)] for r in rows])
n_test = int(np.floor(float(np.float32(len(data)) * np.float32(${testSize})) + 0.5))
`

  it('decomposition: pgml.decompose gives scikit-learn\'s PCA components of a row, from the rows it trained on; metrics, deploy and predict as PostgresML', async () => {
    await withCompat(async (query) => {
      await query(`SELECT pgml.load_dataset('digits')`)
      await query(`CREATE VIEW digit_vectors AS SELECT image FROM pgml.digits`)
      expect(await query(`SELECT * FROM pgml.train('Digits Reduction', 'decomposition', 'digit_vectors', test_sampling => 'last')`))
        .toEqual([{ project: 'Digits Reduction', task: 'decomposition', algorithm: 'pca', deployed: true }])
      // A follow-up run reuses the snapshot; 3 of 64 components keep less variance, so it is not deployed automatically.
      expect(await query(`SELECT * FROM pgml.train('Digits Reduction', hyperparams => '{"n_components": 3, "random_state": 0}')`))
        .toEqual([{ project: 'Digits Reduction', task: 'decomposition', algorithm: 'pca', deployed: false }])
      const models = await query<{ id: string; cev: number }>(`SELECT id, (metrics->>'cumulative_explained_variance')::float8 AS cev FROM pgml.models ORDER BY id`)
      const expected = await reference<{ full: number[][]; three: number[][]; cev: number[] }>(query, `${trainingRows('pgml.digits ORDER BY ctid', 'image')}
from sklearn.decomposition import PCA
train = data[:-n_test]
full, three = PCA().fit(train), PCA(n_components=3, random_state=0).fit(train)
result = {'full': full.transform(data[:10]).tolist(), 'three': three.transform(data[:10]).tolist(),
          'cev': [float(sum(full.explained_variance_ratio_)), float(sum(three.explained_variance_ratio_))]}`)
      expect(models).toHaveLength(2)
      expect(models[0]!.cev).toBeCloseTo(expected.cev[0]!, 9)
      expect(models[1]!.cev).toBeCloseTo(expected.cev[1]!, 9)
      expect(models[1]!.cev).toBeLessThan(models[0]!.cev)

      const close = (got: number[], want: number[]) => {
        expect(got).toHaveLength(want.length)
        got.forEach((g, i) => expect(Math.abs(g - want[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(want[i]!))))
      }
      const decomposed = async () => (await query<{ v: number[]; p: number }>(`SELECT pgml.decompose('Digits Reduction', image) AS v,
          pgml.predict('Digits Reduction', image) AS p FROM (SELECT image FROM pgml.digits ORDER BY ctid LIMIT 10) d`))
      for (const [i, row] of (await decomposed()).entries()) {
        close(row.v, expected.full[i]!)
        expect(row.p).toBeCloseTo(row.v[0]!, 4)  // pgml.predict: the first component, as PostgresML's
      }
      await query(`SELECT * FROM pgml.deploy('Digits Reduction', 'most_recent', 'pca')`)
      for (const [i, row] of (await decomposed()).entries()) close(row.v, expected.three[i]!)
      // best_score: the most variance kept.
      expect(await query(`SELECT * FROM pgml.deploy('Digits Reduction', 'best_score')`)).toEqual([{ project: 'Digits Reduction', strategy: 'best_score', algorithm: 'pca' }])
      expect(await query(`SELECT id FROM pgml.deployed_models`)).toEqual([{ id: models[0]!.id }])

      await query(`CREATE TABLE r AS SELECT i::real AS x, (2 * i)::real AS y FROM generate_series(1, 20) i`)
      await query(`SELECT * FROM pgml.train('r', 'regression', 'r', 'y')`)
      await expect(query(`SELECT pgml.decompose('r', ARRAY[1]::real[])`)).rejects.toThrow(/project 'r' is a regression project; decompose is for decomposition projects/)
      await expect(query(`SELECT pgml.decompose('Digits Reduction', ARRAY[1, 2]::real[])`)).rejects.toThrow(/pgml.decompose: the model takes 64 features, got 2/)
      await expect(query(`SELECT pgml.decompose('nothing here', ARRAY[1, 2]::real[])`)).rejects.toThrow(/pgml.decompose: project 'nothing here' has no deployed model/)
      await expect(query(`SELECT pgml.decompose('Digits Reduction', (SELECT array_fill('Infinity'::real, ARRAY[64])))`)).rejects.toThrow(/pgml.decompose: a feature is infinite \(feature 1\)/)
      await expect(query(`SELECT * FROM pgml.train('Digits Reduction', hyperparams => '{"n_components": 65}')`)).rejects.toThrow(/pgml.train: pca could not be trained on this data with these hyperparameters: n_components=65 must be between 0 and min\(n_samples, n_features\)=64/)
      await expect(query(`SELECT * FROM pgml.train('d2', 'decomposition', 'pgml.digits', 'target')`)).rejects.toThrow(/a decomposition learns without a label; drop y_column_name/)
      await expect(query(`SELECT * FROM pgml.train('d2', 'decomposition', 'digit_vectors', algorithm => 'kmeans')`)).rejects.toThrow(/does not support algorithm 'kmeans' for decomposition \(only for clustering/)
    })
  })

  it('joint regression: pgml.predict_joint gives every target as scikit-learn does (natively multi-target, or one estimator per target as PostgresML wraps them)', async () => {
    await withCompat(async (query) => {
      await query(`SELECT pgml.load_dataset('linnerud')`)
      expect(await query(`SELECT * FROM pgml.train_joint('Exercise', 'regression', 'pgml.linnerud', ARRAY['weight', 'waist', 'pulse'], test_sampling => 'last')`))
        .toEqual([{ project: 'Exercise', task: 'regression', algorithm: 'linear', deployed: true }])
      for (const [algorithm, hyperparams] of [['svm', '{"max_iter": 100}'], ['random_forest', '{"n_estimators": 5, "random_state": 0}'], ['huber', '{}']]) {
        await query(`SELECT * FROM pgml.train_joint('Exercise', algorithm => $1::pgml.algorithm, hyperparams => $2::jsonb)`, [algorithm, hyperparams])
      }
      const models = await query<{ id: string; algorithm: string; r2: number; targets: string[] }>(`SELECT m.id, m.algorithm::text, (m.metrics->>'r2')::float8 AS r2, s.y_column_name AS targets
        FROM pgml.models m JOIN pgml.snapshots s ON s.id = m.snapshot_id ORDER BY m.id`)
      expect(models.map((m) => [m.algorithm, m.targets])).toEqual(['linear', 'svm', 'random_forest', 'huber'].map((a) => [a, ['weight', 'waist', 'pulse']]))
      const expected = await reference<{ predictions: number[][][]; r2: number[] }>(query, `${trainingRows('pgml.linnerud', 'chins, situps, jumps, weight, waist, pulse')}
from sklearn.linear_model import LinearRegression, HuberRegressor
from sklearn.svm import SVR
from sklearn.ensemble import RandomForestRegressor
from sklearn.multioutput import MultiOutputRegressor
from sklearn.metrics import r2_score
x, y = data[:, :3], data[:, 3:]
estimators = [LinearRegression(), MultiOutputRegressor(SVR(max_iter=100)), RandomForestRegressor(n_estimators=5, random_state=0), MultiOutputRegressor(HuberRegressor())]
fitted = [e.fit(x[:-n_test], y[:-n_test]) for e in estimators]
result = {'predictions': [e.predict(x).tolist() for e in fitted],
          'r2': [float(r2_score(y[-n_test:].reshape(-1), e.predict(x[-n_test:]).reshape(-1))) for e in fitted]}`)
      const rows = await query<{ chins: number; situps: number; jumps: number }>(`SELECT chins, situps, jumps FROM pgml.linnerud`)
      for (const [m, model] of models.entries()) {
        // PostgresML's metric: every target's predictions scored as one sequence.
        expect(model.r2, model.algorithm).toBeCloseTo(expected.r2[m]!, 6)
        const predicted = await query<{ p: number[] }>(`SELECT pgml.predict_joint($1::bigint, ARRAY[chins, situps, jumps]) AS p FROM pgml.linnerud`, [model.id])
        expect(predicted).toHaveLength(rows.length)
        predicted.forEach((row, i) => row.p.forEach((v, t) => expect(Math.abs(v - expected.predictions[m]![i]![t]!), `${model.algorithm} row ${i} target ${t}`)
          .toBeLessThan(1e-4 * Math.max(1, Math.abs(expected.predictions[m]![i]![t]!)))))
      }
      // By project (the deployed model), and pgml.predict's first target.
      const [deployed] = await query<{ id: string }>(`SELECT id FROM pgml.deployed_models`)
      const [byProject] = await query<{ p: number[]; first: number; byId: number[] }>(`SELECT pgml.predict_joint('Exercise', ARRAY[5, 162, 60]::real[]) AS p,
        pgml.predict('Exercise', ARRAY[5, 162, 60]::real[]) AS first, pgml.predict_joint($1::bigint, ARRAY[5, 162, 60]::real[]) AS "byId"`, [deployed!.id])
      expect(byProject!.p).toEqual(byProject!.byId)
      expect(byProject!.first).toBeCloseTo(byProject!.p[0]!, 4)

      // A search over an estimator fitted once per target: its parameters are each estimator's.
      expect(await query(`SELECT algorithm, deployed IS NOT NULL AS ran FROM pgml.train_joint('Exercise', algorithm => 'svm', search => 'grid', search_params => '{"C": [0.5, 2]}')`))
        .toEqual([{ algorithm: 'svm', ran: true }])
      const [searched] = await query<{ c: number; n: number }>(`SELECT (hyperparams->>'estimator__C')::float8 AS c, jsonb_array_length(metrics->'search_results'->'params') AS n FROM pgml.models ORDER BY id DESC LIMIT 1`)
      expect([0.5, 2]).toContain(searched!.c)
      expect(searched!.n).toBe(2)
      await expect(query(`SELECT * FROM pgml.train_joint('Exercise', algorithm => 'svm', hyperparams => '{"C": -1}')`)).rejects.toThrow(/pgml.train_joint: svm could not be trained on this data with these hyperparameters/)
      await expect(query(`SELECT * FROM pgml.train('Exercise', algorithm => 'ridge')`)).rejects.toThrow(/project 'Exercise' learns 3 label columns at once \(weight, waist, pulse\); train it with pgml.train_joint/)
      await expect(query(`SELECT * FROM pgml.train_joint('j', 'regression', 'pgml.linnerud', ARRAY['weight', 'girth'])`)).rejects.toThrow(/relation 'pgml.linnerud' has no column 'girth'/)
      await query(`CREATE TABLE labels_only AS SELECT weight, waist FROM pgml.linnerud`)
      await expect(query(`SELECT * FROM pgml.train_joint('j', 'regression', 'labels_only', ARRAY['weight', 'waist'])`)).rejects.toThrow(/relation public.labels_only has no feature columns \(every column is a label: weight, waist\)/)
      await expect(query(`SELECT * FROM pgml.train_joint('j', 'regression', 'pgml.linnerud', ARRAY['weight', 'weight'])`)).rejects.toThrow(/y_column_name names weight more than once/)
      await expect(query(`SELECT * FROM pgml.train_joint('j', 'classification', 'pgml.linnerud', ARRAY['weight', 'waist'])`)).rejects.toThrow(/a joint model is a regression of several label columns/)
      await query(`SELECT pgml.load_dataset('iris')`)
      await query(`SELECT * FROM pgml.train('Iris', 'classification', 'pgml.iris', 'target')`)
      await expect(query(`SELECT pgml.predict_joint('Iris', ARRAY[5.1, 3.5, 1.4, 0.2]::real[])`)).rejects.toThrow(/project 'Iris' is a classification model; predict_joint is for regressions/)
      expect(await query(`SELECT count(*)::int AS n FROM pgml.projects WHERE name = 'j'`)).toEqual([{ n: 0 }])
    })
  })

  it('clustering: every row\'s cluster is the one scikit-learn\'s estimator gives, fitted on the same rows with the same parameters', async () => {
    await withCompat(async (query) => {
      await query(`SELECT pgml.load_dataset('digits')`)
      await query(`CREATE VIEW digit_vectors AS SELECT image FROM pgml.digits`)
      const params = { kmeans: { n_clusters: 10, random_state: 0, n_init: 4 }, birch: { n_clusters: 10 }, mini_batch_kmeans: { n_clusters: 10, random_state: 0, n_init: 3 } }
      await query(`SELECT * FROM pgml.train('Clusters', 'clustering', 'digit_vectors', hyperparams => $1, test_sampling => 'last')`, [JSON.stringify(params.kmeans)])
      for (const algorithm of ['birch', 'mini_batch_kmeans'] as const) {
        await query(`SELECT * FROM pgml.train('Clusters', algorithm => $1::pgml.algorithm, hyperparams => $2)`, [algorithm, JSON.stringify(params[algorithm])])
      }
      const expected = await reference<number[][]>(query, `${trainingRows('pgml.digits ORDER BY ctid', 'image')}
from sklearn.cluster import KMeans, Birch, MiniBatchKMeans
params = ${JSON.stringify(params)}
result = [e.fit(data[:-n_test]).predict(data).tolist() for e in (KMeans(**params['kmeans']), Birch(**params['birch']), MiniBatchKMeans(**params['mini_batch_kmeans']))]`)
      const models = await query<{ id: string }>(`SELECT id FROM pgml.models ORDER BY id`)
      for (const [m, model] of models.entries()) {
        const labels = await query<{ c: number }>(`SELECT pgml.predict($1::bigint, image::real[]) AS c FROM (SELECT image FROM pgml.digits ORDER BY ctid) d`, [model.id])
        expect(labels.map((l) => l.c)).toEqual(expected[m])
      }
    })
  })

  it('the vector functions and aggregates: PostgresML\'s overloads and results (numpy on the same vectors), errors that name the problem', async () => {
    await withCompat(async (query) => {
      // vectors.sql as PostgresML's suite writes it: numeric literals resolve to an overload.
      const [literal] = await query(`SELECT pgml.add(ARRAY[1.0, 2.0, 3.0], 3) AS a, pgml.subtract(ARRAY[1.0, 2.0, 3.0], 3) AS s, pgml.multiply(ARRAY[1.0, 2.0, 3.0], 3) AS m,
        pgml.divide(ARRAY[1.0, 2.0, 3.0], 100) AS d, pgml.norm_l0(ARRAY[1.0, 0, 3.0]::FLOAT4[]) AS l0, pgml.normalize_max(ARRAY[1.0, 2.0, -4.0]::FLOAT4[]) AS nm,
        pgml.cosine_similarity(ARRAY[1.0, 2.0, 3.0]::FLOAT4[], ARRAY[1.0, 2.0, 3.0]::FLOAT4[]) AS c, pg_typeof(pgml.add(ARRAY[1.0, 2.0], 3))::text AS t`)
      expect(literal).toEqual({ a: [4, 5, 6], s: [-2, -1, 0], m: [3, 6, 9], d: [0.01, 0.02, 0.03], l0: 2, nm: [0.25, 0.5, -1], c: 1, t: 'double precision[]' })
      const [aggregates] = await query(`WITH vectors AS (SELECT * FROM (VALUES (ARRAY[-2,-4,-6,-8]::FLOAT4[]), (ARRAY[-1,-2,-3,-4]::FLOAT4[]), (ARRAY[0,0,0,0]::FLOAT4[]),
          (ARRAY[1,2,3,4]::FLOAT4[]), (ARRAY[1,2,3,4]::FLOAT4[]), (NULL)) AS vectors (embedding))
        SELECT pgml.sum(embedding), pgml.min(embedding), pgml.max(embedding), pgml.min_abs(embedding), pgml.max_abs(embedding),
               pgml.divide(pgml.sum(embedding), count(embedding)) AS avg FROM vectors`)
      expect(aggregates).toEqual({ sum: [-1, -2, -3, -4], min: [-2, -4, -6, -8], max: [1, 2, 3, 4], min_abs: [0, 0, 0, 0], max_abs: [2, 4, 6, 8], avg: [-0.2, -0.4, -0.6, -0.8] })
      expect(await query(`SELECT pgml.sum(v) AS s, pgml.max_abs(v::float8[]) AS m FROM (SELECT NULL::real[] AS v WHERE false) e`)).toEqual([{ s: [], m: [] }])

      // Random vectors, both element types, against numpy in float64.
      let seed = 7
      const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 20 - 10
      const pairs = Array.from({ length: 12 }, (_, i) => [Array.from({ length: 3 + i }, random), Array.from({ length: 3 + i }, random)])
      const expected = await reference<Record<string, unknown>[]>(query, `
import numpy as np
pairs = ${JSON.stringify(pairs)}
result = []
for a, b in pairs:
    a, b = np.asarray(a), np.asarray(b)
    result.append({'add': (a + b).tolist(), 'subtract': (a - b).tolist(), 'multiply': (a * b).tolist(), 'divide': (a / b).tolist(), 'scaled': (a + 2.5).tolist(),
                   'norm_l1': float(np.abs(a).sum()), 'norm_l2': float(np.linalg.norm(a)), 'norm_max': float(np.abs(a).max()),
                   'normalize_l1': (a / np.abs(a).sum()).tolist(), 'normalize_l2': (a / np.linalg.norm(a)).tolist(),
                   'distance_l1': float(np.abs(a - b).sum()), 'distance_l2': float(np.linalg.norm(a - b)), 'dot_product': float(a @ b),
                   'cosine_similarity': float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))})`)
      for (const type of ['float8', 'float4']) {
        const tolerance = type === 'float8' ? 1e-12 : 2e-6
        for (const [i, [a, b]] of pairs.entries()) {
          const [got] = await query<Record<string, number | number[]>>(`SELECT pgml.add($1::${type}[], $2::${type}[]) AS add, pgml.subtract($1::${type}[], $2::${type}[]) AS subtract,
            pgml.multiply($1::${type}[], $2::${type}[]) AS multiply, pgml.divide($1::${type}[], $2::${type}[]) AS divide, pgml.add($1::${type}[], 2.5::${type}) AS scaled,
            pgml.norm_l1($1::${type}[]) AS norm_l1, pgml.norm_l2($1::${type}[]) AS norm_l2, pgml.norm_max($1::${type}[]) AS norm_max,
            pgml.normalize_l1($1::${type}[]) AS normalize_l1, pgml.normalize_l2($1::${type}[]) AS normalize_l2, pgml.distance_l1($1::${type}[], $2::${type}[]) AS distance_l1,
            pgml.distance_l2($1::${type}[], $2::${type}[]) AS distance_l2, pgml.dot_product($1::${type}[], $2::${type}[]) AS dot_product,
            pgml.cosine_similarity($1::${type}[], $2::${type}[]) AS cosine_similarity`, [a, b])
          for (const [name, want] of Object.entries(expected[i]!)) {
            const values = Array.isArray(want) ? (want as number[]) : [want as number]
            const have = Array.isArray(got![name]) ? (got![name] as number[]) : [got![name] as number]
            expect(have, `${type} ${name} pair ${i}`).toHaveLength(values.length)
            // float4: inputs rounded to float4 and arithmetic in float4; relative to the size of what is summed.
            const scale = type === 'float8' ? 1 : Math.max(...(a as number[]).map(Math.abs), ...(b as number[]).map(Math.abs)) ** (name.includes('dot') || name === 'multiply' ? 2 : 1) * (a as number[]).length
            values.forEach((w, k) => expect(Math.abs(have[k]! - w), `${type} ${name} pair ${i} element ${k}`).toBeLessThanOrEqual(tolerance * Math.max(Math.abs(w), scale, 1)))
          }
        }
      }
      // Multidimensional arrays are one vector in storage order; zero vectors; errors.
      expect(await query(`SELECT pgml.norm_l1(ARRAY[[1, -2], [3, -4]]::real[]) AS n, pgml.normalize_l2(ARRAY[0, 0]::real[]) AS z,
        pgml.cosine_similarity(ARRAY[0, 0]::float8[], ARRAY[1, 2]::float8[])::text AS c`)).toEqual([{ n: 10, z: [0, 0], c: 'NaN' }])
      await expect(query(`SELECT pgml.add(ARRAY[1, 2]::real[], ARRAY[1, 2, 3]::real[])`)).rejects.toThrow(/pgml.add: vector has 2 elements and addend 3/)
      await expect(query(`SELECT pgml.dot_product(ARRAY[1, NULL]::float8[], ARRAY[1, 2]::float8[])`)).rejects.toThrow(/pgml.dot_product: vector has a NULL element/)
      await expect(query(`SELECT pgml.sum(v) FROM (VALUES (ARRAY[1, 2]::real[]), (ARRAY[1, 2, 3]::real[])) t(v)`)).rejects.toThrow(/pgml.sum: the vectors have different lengths \(2 and 3\)/)
      // Bounded before PL/Python converts the array (a conversion no cancel interrupts).
      for (const call of [`pgml.norm_l2(array_fill(1::real, ARRAY[1000001]))`, `pgml.add(ARRAY[1]::float8[], array_fill(1::float8, ARRAY[1000001]))`,
        `pgml.sum(v) FROM (SELECT array_fill(1::real, ARRAY[1000001]) AS v) t`]) {
        await expect(query(`SELECT ${call}`), call).rejects.toThrow(/has 1000001 elements; the vector functions take at most 1,000,000/)
      }
      // IEEE arithmetic, as PostgresML's: tiny and huge elements, division by zero, NaN — values, never errors.
      expect(await query(`SELECT pgml.normalize_l2(ARRAY[1e-30]::real[]) AS n, pgml.norm_l2(ARRAY[1e20]::real[]) AS big,
        pgml.cosine_similarity(ARRAY[1e-25, 1]::real[], ARRAY[1, 1]::real[]) AS c, pgml.divide(ARRAY[1, -2, 0]::real[], 0::real)::text AS d,
        pgml.multiply(ARRAY[1e-30]::real[], ARRAY[1e-30]::real[]) AS tiny, pgml.multiply(ARRAY[1e30]::real[], 1e30::real)::text AS huge,
        pgml.cosine_similarity('{}'::real[], '{}'::real[])::text AS empty`)).toEqual([{
        n: [1], big: 1e20, c: expect.closeTo(Math.SQRT1_2, 6), d: '{Infinity,-Infinity,NaN}', tiny: [0], huge: '{Infinity}', empty: 'NaN' }])
      expect(await query(`SELECT pgml.max(v)::text AS max, pgml.min(v)::text AS min FROM (VALUES (ARRAY[1, 'NaN']::real[]), (ARRAY['NaN', 'NaN']::real[]), (ARRAY[0, 2]::real[])) t(v)`))
        .toEqual([{ max: '{1,2}', min: '{0,2}' }])
      // PostgresML's argument names.
      expect(await query(`SELECT pgml.subtract(vector => ARRAY[3]::real[], subtahend => ARRAY[1]::real[]) AS s, pgml.divide(vector => ARRAY[3]::float8[], dividend => 2) AS d`)).toEqual([{ s: [2], d: [1.5] }])
      // Parallel aggregation combines partial states as the serial plan does (whole numbers in float8: sums exact in any order).
      await query(`CREATE TABLE many AS SELECT ARRAY[i, -2 * i, i % 7]::float8[] AS v FROM generate_series(1, 60000) i`)
      await query(`SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0`)
      const plan = (await query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT pgml.sum(v), pgml.max_abs(v) FROM many`)).map((r) => r['QUERY PLAN']).join('\n')
      expect(plan).toMatch(/Partial Aggregate/)
      const [parallel] = await query(`SELECT pgml.sum(v), pgml.max_abs(v), pgml.min(v) FROM many`)
      await query(`SET max_parallel_workers_per_gather = 0`)
      const [serial] = await query(`SELECT pgml.sum(v), pgml.max_abs(v), pgml.min(v) FROM many`)
      expect(parallel).toEqual(serial)
      expect(serial).toEqual({ sum: [1800030000, -3600060000, 179997], max_abs: [60000, 120000, 6], min: [1, -120000, 0] })
    })
  })

  it('pgml.chunk splits as LangChain\'s splitters do (PostgresML\'s), numbered from 1; refuses what it cannot do, by name', async () => {
    await withCompat(async (query) => {
      const chunks = async (splitter: string, text: string, kwargs: object) =>
        (await query<{ chunk_index: string; chunk: string }>(`SELECT * FROM pgml.chunk($1, $2, $3)`, [splitter, text, JSON.stringify(kwargs)]))
      // LangChain's RecursiveCharacterTextSplitter (its JavaScript port, the same algorithm for the default separators kept on the pieces).
      const words = ['the', 'state', 'of', 'PostgreSQL', 'is', 'good', 'and', 'vectors', 'are', 'fast', 'á', '—', 'x']
      let seed = 3
      const next = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n
      for (let doc = 0; doc < 24; doc++) {
        const text = Array.from({ length: 20 + next(200) }, () => words[next(words.length)]! + ['', ' ', ' ', ' ', '\n', '\n\n', '  '][next(7)]!).join('')
        const size = 5 + next(120)
        const overlap = next(size)
        const want = await new RecursiveCharacterTextSplitter({ chunkSize: size, chunkOverlap: overlap }).splitText(text)
        const got = await chunks('recursive_character', text, { chunk_size: size, chunk_overlap: overlap })
        expect(got.map((c) => c.chunk), `document ${doc}, size ${size}, overlap ${overlap}`).toEqual(want)
        expect(got.map((c) => Number(c.chunk_index))).toEqual(want.map((_, i) => i + 1))
      }
      // The suite's call (chunk_size 2, overlap 2, which LangChain's Python splitter allows): no chunk over 2 characters.
      const tale = 'It was the best of times, it was the worst of times'
      const small = await chunks('recursive_character', tale, { chunk_size: 2, chunk_overlap: 2 })
      expect(small.slice(0, 6).map((c) => c.chunk)).toEqual(['It', 'w', 'wa', 'as', 't', 'th'])
      expect(small.every((c) => c.chunk.length <= 2)).toBe(true)
      // CharacterTextSplitter: one separator, dropped and used to join; a piece longer than the chunk stays whole.
      expect((await chunks('character', 'para one\n\npara two is longer\n\nthree\n\nfour', { chunk_size: 12, chunk_overlap: 0 })).map((c) => c.chunk))
        .toEqual(['para one', 'para two is longer', 'three\n\nfour'])
      expect((await chunks('character', 'a-b-c-d-e', { separator: '-', chunk_size: 3, chunk_overlap: 1 })).map((c) => c.chunk)).toEqual(['a-b', 'b-c', 'c-d', 'd-e'])
      // Characters are code points (Python's len), as LangChain counts them.
      expect((await chunks('recursive_character', '😀😀 😀😀', { chunk_size: 2, chunk_overlap: 0 })).map((c) => c.chunk)).toEqual(['😀😀', '😀', '😀'])
      // Markdown and Python: their separators, matched literally as LangChain's MarkdownTextSplitter and PythonCodeTextSplitter do.
      expect((await chunks('python', 'import os\n\nclass A:\n    pass\n\ndef f():\n    return 1\n', { chunk_size: 20, chunk_overlap: 0 })).map((c) => c.chunk))
        .toEqual(['import os', 'class A:\n    pass', 'def f():', 'return 1'])
      expect((await chunks('markdown', 'Intro text here\n```\ncode block\n```\nOutro', { chunk_size: 18, chunk_overlap: 0 })).map((c) => c.chunk))
        .toEqual(['Intro text here', '```\ncode block', '```\nOutro'])
      expect(await query(`SELECT count(*)::int AS n FROM pgml.chunk('recursive_character', '   ')`)).toEqual([{ n: 0 }])
      await expect(chunks('sentences', 'x', {})).rejects.toThrow(/unknown splitter 'sentences'; splitters: character, latex, markdown, python, recursive_character/)
      await expect(chunks('nltk', 'x', {})).rejects.toThrow(/splitter 'nltk' needs NLTK and its punkt data, which this server does not have/)
      await expect(chunks('recursive_character', 'x', { chunk_size: 10, chunk_overlap: 11 })).rejects.toThrow(/chunk_overlap must be between 0 and chunk_size \(10\), got 11/)
      await expect(chunks('recursive_character', 'x', { chunk_size: 0 })).rejects.toThrow(/chunk_size must be 1 or more, got 0/)
      // Bounded: the text, and what the chunks add up to (an overlap next to chunk_size repeats the text in every chunk).
      await expect(query(`SELECT count(*) FROM pgml.chunk('character', repeat('a ', 5000001), '{"separator": " "}')`)).rejects.toThrow(/the text has 10000002 characters; pgml_compat splits at most 10000000 in one call/)
      await expect(chunks('recursive_character', 'x'.repeat(40000), { chunk_size: 20000, chunk_overlap: 19999 })).rejects.toThrow(/the chunks would add up to more than 10000000 characters \(chunk_overlap 19999 of chunk_size 20000/)
      await expect(chunks('character', 'x', { separators: ['-'] })).rejects.toThrow(/splitter 'character' takes chunk_size, chunk_overlap, .*separator, is_separator_regex; not separators/)
      await expect(chunks('recursive_character', 'x', { separators: ['-+'], is_separator_regex: true })).rejects.toThrow(/is_separator_regex is not supported: a regular expression could run for hours in a way a cancel or statement_timeout cannot stop/)
      // A split of a long text stops at statement_timeout, as training does.
      await query(`SET statement_timeout = '1s'`)
      const started = Date.now()
      await expect(query(`SELECT count(*) FROM pgml.chunk('recursive_character', repeat('ab ', 3000000), '{"chunk_size": 1, "chunk_overlap": 0}')`)).rejects.toThrow(/canceling statement due to statement timeout/)
      expect(Date.now() - started).toBeLessThan(4000)
      await query(`RESET statement_timeout`)
    })
  })

  it('load_dataset loads again into the same table, keeping what any role built on it; a changed table is replaced only when nothing depends on it', async () => {
    await withCompat(async (query) => {
      await query(`SELECT pgml.load_dataset('iris', "limit" => 10)`)
      await query(`CREATE VIEW pgml.digit_like AS SELECT sepal_length FROM pgml.iris`)
      const suffix = Math.random().toString(36).slice(2, 8)
      const victim = `victim_${suffix}`
      await query(`CREATE ROLE ${victim}; GRANT USAGE ON SCHEMA pgml TO ${victim}; CREATE SCHEMA ${victim} AUTHORIZATION ${victim}`)
      await query(`SET ROLE ${victim};
        CREATE VIEW ${victim}.setosa AS SELECT * FROM pgml.iris WHERE target = 0;
        CREATE TABLE ${victim}.samples (id int, r pgml.iris);
        INSERT INTO ${victim}.samples SELECT 1, i FROM pgml.iris i LIMIT 1;
        RESET ROLE`)
      await query(`CREATE ROLE trainer_${suffix} LOGIN; GRANT pgml_trainer TO trainer_${suffix}`)
      // As a trainer (PostgresML's suite reloads digits after building a view on it): every object stays, the rows are the full dataset.
      await query(`SET SESSION AUTHORIZATION trainer_${suffix}`)
      expect(await query(`SELECT * FROM pgml.load_dataset('iris')`)).toEqual([{ table_name: 'pgml.iris', rows: '150' }])
      await query(`RESET SESSION AUTHORIZATION`)
      expect(await query(`SELECT (SELECT count(*)::int FROM ${victim}.setosa) AS setosa, (SELECT count(*)::int FROM pgml.digit_like) AS mine,
        (SELECT count(*)::int FROM ${victim}.samples WHERE r IS NOT NULL) AS kept`)).toEqual([{ setosa: 50, mine: 150, kept: 1 }])
      // A dataset table someone changed is recreated — unless something depends on it, which PostgreSQL names.
      await query(`ALTER TABLE pgml.iris ADD COLUMN extra int`)
      const refused = await query(`SELECT * FROM pgml.load_dataset('iris')`).then(() => '', (error: Error) => error.message)
      expect(refused).toMatch(/pgml.iris has other columns than the dataset \(sepal_length, .*target\) and cannot be replaced: cannot drop table pgml.iris because other objects depend on it/)
      for (const dependent of ['view pgml.digit_like depends on table pgml.iris', `view ${victim}.setosa depends on table pgml.iris`, `column r of table ${victim}.samples depends on type pgml.iris`]) {
        expect(refused).toContain(dependent)
      }
      await query(`DROP VIEW pgml.digit_like; DROP VIEW ${victim}.setosa; ALTER TABLE ${victim}.samples DROP COLUMN r`)
      expect(await query(`SELECT * FROM pgml.load_dataset('iris')`)).toEqual([{ table_name: 'pgml.iris', rows: '150' }])
      expect(await query(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'pgml.iris'::regclass AND attname = 'extra'`)).toEqual([{ n: 0 }])

      // A dataset table another role owns (0.2.0 let roles create them; an administrator can give one away) is never
      // reloaded or dropped: its owner's triggers, rules and constraints would run as the extension's owner, a superuser.
      await query(`ALTER TABLE pgml.iris OWNER TO ${victim}`)
      await query(`SET ROLE ${victim};
        CREATE FUNCTION ${victim}.grab() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN CREATE TABLE public.ran_as_superuser (); RETURN NULL; END $$;
        CREATE TRIGGER grab BEFORE TRUNCATE ON pgml.iris FOR EACH STATEMENT EXECUTE FUNCTION ${victim}.grab();
        RESET ROLE`)
      await query(`SET SESSION AUTHORIZATION trainer_${suffix}`)
      await expect(query(`SELECT * FROM pgml.load_dataset('iris')`)).rejects.toThrow(new RegExp(`pgml.iris exists and is owned by ${victim}, not by the extension's owner, so it is not reloaded`))
      await query(`RESET SESSION AUTHORIZATION`)
      expect(await query(`SELECT to_regclass('public.ran_as_superuser') AS t, (SELECT count(*)::int FROM pgml.iris) AS n`)).toEqual([{ t: null, n: 150 }])
      await query(`CREATE VIEW pgml.wine AS SELECT 1 AS x`)
      await expect(query(`SELECT * FROM pgml.load_dataset('wine')`)).rejects.toThrow(/pgml.wine exists and is not a table, so it is not reloaded/)
    })
  })
})
