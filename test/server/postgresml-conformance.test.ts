import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { server, type TestDatabase } from '../helpers/targets.js'

type Query = TestDatabase['query']

/**
 * PostgresML's documented SQL, run unchanged against pgml_compat (the calls below are the ones
 * PostgresML's docs and pgml-extension/examples make, as written), plus the cases where pgml_compat
 * used to part from PostgresML: 2-D arrays, metrics, deploy rules, relation lookup, volatility,
 * overloads, and the errors a user gets for bad input.
 */
describe('PostgresML conformance of pgml_compat', () => {
  let db: TestDatabase
  afterEach(async () => db?.close())

  async function withCompat<T>(fn: (query: Query) => Promise<T>): Promise<T> {
    db = await server.create()
    await db.query('CREATE EXTENSION pgml_compat CASCADE')
    // One connection: PL/Python imports scikit-learn once.
    return db.session(fn)
  }

  it('load_dataset creates PostgresML\'s tables from scikit-learn\'s copies, with its columns, types and row counts', async () => {
    await withCompat(async (query) => {
      const loaded: Record<string, unknown>[] = []
      for (const source of ['breast_cancer', 'diabetes', 'digits', 'iris', 'linnerud', 'wine']) {
        loaded.push(...(await query(`SELECT * FROM pgml.load_dataset('${source}')`)))
      }
      expect(loaded).toEqual([
        { table_name: 'pgml.breast_cancer', rows: '569' }, { table_name: 'pgml.diabetes', rows: '442' }, { table_name: 'pgml.digits', rows: '1797' },
        { table_name: 'pgml.iris', rows: '150' }, { table_name: 'pgml.linnerud', rows: '20' }, { table_name: 'pgml.wine', rows: '178' },
      ])
      const columns = async (table: string) => (await query<{ c: string }>(`SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) AS c
        FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0`, [table]))[0]!.c
      expect(await columns('pgml.iris')).toBe('sepal_length real, sepal_width real, petal_length real, petal_width real, target integer')
      expect(await columns('pgml.digits')).toBe('image smallint[], target smallint')
      expect(await columns('pgml.wine')).toMatch(/^alcohol real, .* hue real, color_intensity real, od280\/od315_of_diluted_wines real, proline real, target integer$/)
      expect(await columns('pgml.breast_cancer')).toMatch(/^mean radius real, .* worst fractal dimension real, malignant boolean$/)
      expect(await query(`SELECT array_ndims(image) AS d, array_length(image, 1) AS r, array_length(image, 2) AS c FROM pgml.digits LIMIT 1`)).toEqual([{ d: 2, r: 8, c: 8 }])
      // The first rows are PostgresML's own (its bundled CSVs come from the same scikit-learn data).
      expect(await query(`SELECT age, sex, bmi, target FROM pgml.diabetes LIMIT 1`)).toEqual([{ age: 59, sex: 2, bmi: 32.1, target: 151 }])
      expect(await query(`SELECT count(*)::int AS n FROM pgml.breast_cancer WHERE malignant`)).toEqual([{ n: 212 }])
      expect(await query(`SELECT * FROM pgml.load_dataset('iris', "limit" => 10)`)).toEqual([{ table_name: 'pgml.iris', rows: '10' }])
      await expect(query(`SELECT * FROM pgml.load_dataset('imdb')`)).rejects.toThrow(/dataset 'imdb' is not available: pgml_compat loads the datasets scikit-learn ships/)
    })
  })

  it('runs the documented digits example: a SMALLINT[][] feature, predict and predict_proba per row, predict_batch over array_agg', async () => {
    await withCompat(async (query) => {
      await query(`SELECT pgml.load_dataset('digits')`)
      await query(`SELECT * FROM pgml.train('Handwritten Digits', 'classification', 'pgml.digits', 'target')`)
      const rows = await query<{ target: number; prediction: number }>(`SELECT target, pgml.predict('Handwritten Digits', image) AS prediction FROM pgml.digits LIMIT 10`)
      expect(rows.filter((r) => r.target === r.prediction).length).toBeGreaterThanOrEqual(8)
      const proba = await query<{ prediction: number[] }>(`SELECT target, pgml.predict_proba('Handwritten Digits', image) AS prediction FROM pgml.digits LIMIT 10`)
      for (const p of proba) expect(p.prediction.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4)
      await query(`SELECT * FROM pgml.train('Handwritten Digits', algorithm => 'svm')`)
      const batch = await query<{ p: number }>(`SELECT pgml.predict_batch('Handwritten Digits', array_agg(image)) AS p FROM (SELECT image FROM pgml.digits ORDER BY ctid LIMIT 5) d`)
      const single = await query<{ p: number }>(`SELECT pgml.predict('Handwritten Digits', image) AS p FROM (SELECT image FROM pgml.digits ORDER BY ctid LIMIT 5) d`)
      expect(batch.map((r) => r.p)).toEqual(single.map((r) => r.p))
      // By model id, as PostgresML has them.
      const [model] = await query<{ id: string }>(`SELECT id FROM pgml.models ORDER BY id LIMIT 1`)
      const [byId] = await query<{ p: number[]; b: number[]; r: number }>(`SELECT pgml.predict_proba($1::bigint, (SELECT image FROM pgml.digits LIMIT 1)::real[]) AS p,
        pgml.predict_batch($1::bigint, (SELECT array_agg(image) FROM (SELECT image FROM pgml.digits LIMIT 3) d)::real[]) AS b,
        pgml.predict($1::bigint, (SELECT d FROM (SELECT image FROM pgml.digits LIMIT 1) d)) AS r`, [model!.id])
      expect(byId!.p).toHaveLength(10)
      expect(byId!.b).toHaveLength(3)
      expect(byId!.b[0]).toBe(byId!.r)
    })
  })

  it('stores PostgresML\'s classification metrics (macro averages, roc_auc, log_loss) and follows its deploy rules', async () => {
    await withCompat(async (query) => {
      await query(`SELECT pgml.load_dataset('breast_cancer')`)
      await query(`SELECT * FROM pgml.train('Breast Cancer Detection', 'classification', 'pgml.breast_cancer', 'malignant', test_size => 0.3, test_sampling => 'last')`)
      const [m] = await query<{ metrics: Record<string, number>; test_rows: number }>(`SELECT metrics FROM pgml.models`)
      expect(Object.keys(m!.metrics).sort()).toEqual(['accuracy', 'f1', 'fit_time', 'log_loss', 'mcc', 'precision', 'recall', 'roc_auc', 'score_time'])
      expect(m!.metrics.roc_auc).toBeGreaterThan(0.9)
      expect(m!.metrics.log_loss).toBeGreaterThan(0)
      // A follow-up run with other split arguments is scored on the project's own split.
      await query(`SELECT * FROM pgml.train('Breast Cancer Detection', algorithm => 'linear', test_size => 0.5, test_sampling => 'random')`)
      const scored = await query<{ f1: number }>(`SELECT (metrics->>'f1')::float8 AS f1 FROM pgml.models ORDER BY id`)
      expect(scored[1]!.f1).toBe(scored[0]!.f1)
      // A tie deploys the newer model, as PostgresML does.
      expect(await query(`SELECT model_id::int AS id FROM pgml.deployments ORDER BY id`)).toEqual([{ id: 1 }, { id: 2 }])
      await query(`SELECT * FROM pgml.train('Breast Cancer Detection', algorithm => 'ridge')`)
      await query(`SELECT * FROM pgml.deploy('Breast Cancer Detection', 'most_recent')`)
      // Rollback honours the algorithm: the last deployed 'linear' model, not just the previous one.
      expect(await query(`SELECT * FROM pgml.deploy('Breast Cancer Detection', 'rollback', 'linear')`)).toEqual([{ project: 'Breast Cancer Detection', strategy: 'rollback', algorithm: 'linear' }])
      await expect(query(`SELECT * FROM pgml.deploy('Breast Cancer Detection', 'rollback', 'xgboost')`)).rejects.toThrow(/no earlier deployed model trained with xgboost/)
    })
  })

  it('trains every algorithm of PostgresML\'s list that scikit-learn and xgboost provide, under its name, with the estimator\'s own hyperparameters; metrics as PostgresML stores them', { timeout: 300_000 }, async () => {
    await withCompat(async (query) => {
      await query(`CREATE TABLE d AS SELECT i, (i * 0.37) % 1 AS a, (i * 0.61) % 1 AS b, (i * 0.13) % 1 AS c FROM generate_series(1, 240) i;
        CREATE VIEW reg AS SELECT a, b, c, 3 * a - 2 * b + c AS y FROM d;
        CREATE VIEW bin AS SELECT a, b, c, (a + b > c + 0.5)::int AS y FROM d;
        CREATE VIEW multi AS SELECT a, b, c, (floor(a * 3))::int AS y FROM d`)
      const regression = ['linear', 'xgboost', 'xgboost_random_forest', 'random_forest', 'extra_trees', 'ada_boost', 'bagging', 'gradient_boosting_trees',
        'hist_gradient_boosting', 'svm', 'nu_svm', 'linear_svm', 'ridge', 'lasso', 'elastic_net', 'least_angle', 'lasso_least_angle',
        'orthogonal_matching_pursuit', 'bayesian_ridge', 'automatic_relevance_determination', 'stochastic_gradient_descent', 'passive_aggressive',
        'ransac', 'theil_sen', 'huber', 'quantile', 'kernel_ridge', 'gaussian_process']
      const classification = ['linear', 'xgboost', 'xgboost_random_forest', 'random_forest', 'extra_trees', 'ada_boost', 'bagging', 'gradient_boosting_trees',
        'hist_gradient_boosting', 'svm', 'nu_svm', 'linear_svm', 'ridge', 'stochastic_gradient_descent', 'perceptron', 'passive_aggressive', 'gaussian_process']
      // A hyperparameter of the estimator's own, where it has an obvious one: stored as given.
      const hyperparams: Record<string, Record<string, unknown>> = {
        xgboost: { n_estimators: 7 }, xgboost_random_forest: { n_estimators: 7 }, random_forest: { n_estimators: 7 }, extra_trees: { n_estimators: 7 },
        ada_boost: { n_estimators: 7 }, bagging: { n_estimators: 7 }, gradient_boosting_trees: { n_estimators: 7 }, hist_gradient_boosting: { max_iter: 7 },
        huber: { epsilon: 1.5 }, kernel_ridge: { alpha: 0.5 }, ridge: { alpha: 0.5 }, stochastic_gradient_descent: { max_iter: 50 },
      }
      for (const [task, view, algorithms] of [['regression', 'reg', regression], ['classification', 'bin', classification], ['classification', 'multi', classification]] as const) {
        for (const algorithm of algorithms) {
          const project = `${view} ${algorithm}`
          const given = hyperparams[algorithm] ?? {}
          await query(`SELECT * FROM pgml.train($1, $2, $3, 'y', $4, $5::jsonb)`, [project, task, view, algorithm, JSON.stringify(given)])
          const [model] = await query<{ algorithm: string; hyperparams: Record<string, unknown>; metrics: Record<string, number> }>(
            `SELECT m.algorithm::text, m.hyperparams, m.metrics FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE p.name = $1`, [project])
          expect(model, project).toMatchObject({ algorithm, hyperparams: given })
          expect(Object.keys(model!.metrics).sort(), project).toEqual(task === 'regression'
            ? ['fit_time', 'mean_absolute_error', 'mean_squared_error', 'r2', 'score_time']
            // As PostgresML: roc_auc and log_loss only for a binary task, and only from a model that gives probabilities.
            : view === 'bin' && !['linear_svm', 'ridge', 'stochastic_gradient_descent', 'perceptron', 'passive_aggressive'].includes(algorithm)
              ? ['accuracy', 'f1', 'fit_time', 'log_loss', 'mcc', 'precision', 'recall', 'roc_auc', 'score_time']
              : ['accuracy', 'f1', 'fit_time', 'mcc', 'precision', 'recall', 'score_time'])
          // Per-row predictions equal the estimator's own (predict_batch).
          const perRow = await query<{ p: number }>(`SELECT pgml.predict($1, ARRAY[a, b, c]::real[]) AS p FROM d WHERE i <= 20 ORDER BY i`, [project])
          const batch = await query<{ p: number }>(`SELECT pgml.predict_batch($1, (SELECT array_agg(ARRAY[a, b, c] ORDER BY i)::real[] FROM d WHERE i <= 20)) AS p`, [project])
          expect(perRow.map((r) => r.p), project).toEqual(batch.map((r) => r.p))
        }
      }
      // PostgresML's views and columns, runtime included; a search keeps every candidate's scores.
      await query(`SELECT * FROM pgml.train('searched', 'regression', 'reg', 'y', 'ridge', search => 'grid', search_params => '{"alpha": [0.1, 1, 10]}')`)
      const [searched] = await query<{ r: { params: unknown[]; mean_test_score: number[]; rank_test_score: number[] } }>(
        `SELECT m.metrics->'search_results' AS r FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE p.name = 'searched'`)
      expect(searched!.r.params).toEqual([{ alpha: 0.1 }, { alpha: 1 }, { alpha: 10 }])
      expect(searched!.r.mean_test_score).toHaveLength(3)
      expect([...searched!.r.rank_test_score].sort()).toEqual([1, 2, 3])
      expect(Object.keys((await query(`SELECT * FROM pgml.deployed_models WHERE name = 'searched'`))[0]!)).toEqual(['id', 'name', 'task', 'algorithm', 'runtime', 'deployed_at'])
      expect(Object.keys((await query(`SELECT * FROM pgml.overview WHERE name = 'searched'`))[0]!)).toEqual(
        ['name', 'deployed_at', 'task', 'algorithm', 'runtime', 'relation_name', 'y_column_name', 'test_sampling', 'test_size'])
      expect(await query(`SELECT runtime::text FROM pgml.trained_models WHERE name = 'searched'`)).toEqual([{ runtime: 'python' }])
      await expect(query(`SELECT * FROM pgml.train('x', 'regression', 'reg', 'y', 'lightgbm')`)).rejects.toThrow(/algorithm 'lightgbm' needs LightGBM, which this server does not have/)
      await expect(query(`SELECT * FROM pgml.train('x', 'classification', 'bin', 'y', 'huber')`)).rejects.toThrow(/does not support algorithm 'huber' for classification \(only for regression, as in PostgresML\)/)
      await expect(query(`SELECT * FROM pgml.train('x', 'regression', 'reg', 'y', 'huber', '{"n_estimators": 3}')`)).rejects.toThrow(/n_estimators is not a parameter of huber \(HuberRegressor\)/)
    })
  })

  it('runs PostgresML\'s clustering examples: no label, every column a feature, pgml.predict gives a new row\'s cluster', async () => {
    await withCompat(async (query) => {
      await query(`SELECT pgml.load_dataset('digits')`)
      await query(`CREATE VIEW pgml.digit_vectors AS SELECT image FROM pgml.digits`)
      // As documented: no algorithm given (k-means), then each algorithm by name.
      expect(await query(`SELECT * FROM pgml.train('Handwritten Digit Clusters', 'clustering', 'pgml.digit_vectors', hyperparams => '{"n_clusters": 10}')`))
        .toEqual([{ project: 'Handwritten Digit Clusters', task: 'clustering', algorithm: 'kmeans', deployed: true }])
      for (const [algorithm, hyperparams] of [['birch', '{"n_clusters": 10}'], ['kmeans', '{"n_clusters": 10}'], ['mini_batch_kmeans', '{"n_clusters": 10}'], ['affinity_propagation', '{}']]) {
        await query(`SELECT * FROM pgml.train('Handwritten Digit Clusters', algorithm => $1::pgml.algorithm, hyperparams => $2::jsonb)`, [algorithm, hyperparams])
      }
      const models = await query<{ algorithm: string; silhouette: number | null; y: string[] | null }>(`SELECT m.algorithm::text, (m.metrics->>'silhouette')::float8 AS silhouette, s.y_column_name AS y
        FROM pgml.models m JOIN pgml.snapshots s ON s.id = m.snapshot_id ORDER BY m.id`)
      expect(models.map((m) => m.algorithm)).toEqual(['kmeans', 'birch', 'kmeans', 'mini_batch_kmeans', 'affinity_propagation'])
      for (const m of models) {
        expect(m.y).toBeNull()
        expect(m.silhouette, m.algorithm).toBeGreaterThan(0)
        expect(m.silhouette, m.algorithm).toBeLessThanOrEqual(1)
      }
      await query(`SELECT * FROM pgml.deploy('Handwritten Digit Clusters', 'most_recent')`)
      await query(`SELECT * FROM pgml.deploy(1::bigint)`)
      const predictions = await query<{ target: number; prediction: number }>(`SELECT target, pgml.predict('Handwritten Digit Clusters', image) AS prediction FROM pgml.digits`)
      expect(new Set(predictions.map((p) => p.prediction)).size).toBe(10)
      expect(predictions.every((p) => Number.isInteger(p.prediction) && p.prediction >= 0 && p.prediction < 10)).toBe(true)
      // The clusters follow the digits: most images of a digit share one cluster.
      const byDigit = new Map<number, Map<number, number>>()
      for (const p of predictions) byDigit.set(p.target, (byDigit.get(p.target) ?? new Map()).set(p.prediction, (byDigit.get(p.target)?.get(p.prediction) ?? 0) + 1))
      const purity = [...byDigit.values()].reduce((sum, counts) => sum + Math.max(...counts.values()), 0) / predictions.length
      expect(purity).toBeGreaterThan(0.6)
      await expect(query(`SELECT * FROM pgml.train('labelled', 'clustering', 'pgml.digits', 'target')`)).rejects.toThrow(/a clustering learns without a label; drop y_column_name/)
      await expect(query(`SELECT * FROM pgml.train('c', 'clustering', 'pgml.digit_vectors', algorithm => 'dbscan')`)).rejects.toThrow(/does not support algorithm 'dbscan' for clustering; supported: kmeans, mini_batch_kmeans, birch, affinity_propagation/)
      await expect(query(`SELECT * FROM pgml.train('c2', 'clustering', 'pgml.digit_vectors', search => 'grid', search_params => '{"n_clusters": [2, 3]}')`)).rejects.toThrow(/a clustering has no label to score candidates on/)
    })
  })

  it('resolves the relation as PostgreSQL does: search_path, temporary tables, other schemas, quoted mixed case', async () => {
    await withCompat(async (query) => {
      await query(`CREATE SCHEMA analytics; CREATE TABLE analytics."Houses" AS SELECT i::real AS size, (2 * i + 1)::real AS price FROM generate_series(1, 40) i;
        CREATE TEMP TABLE scratch AS SELECT i::real AS size, (3 * i)::real AS price FROM generate_series(1, 40) i`)
      await query(`SET search_path = analytics, public`)
      expect(await query(`SELECT project, task, deployed FROM pgml.train('quoted', 'regression', '"Houses"', 'price')`)).toEqual([{ project: 'quoted', task: 'regression', deployed: true }])
      await query(`RESET search_path`)
      await query(`SELECT * FROM pgml.train('qualified', 'regression', 'analytics."Houses"', 'price')`)
      await query(`SELECT * FROM pgml.train('temporary', 'regression', 'scratch', 'price')`)
      const relations = await query<{ relation_name: string }>(`SELECT relation_name FROM pgml.snapshots ORDER BY id`)
      expect(relations.map((r) => r.relation_name)).toEqual(['analytics."Houses"', 'analytics."Houses"', expect.stringMatching(/^pg_temp_\d+\.scratch$/)])
      // A catalog table resolves (then fails on its non-numeric columns, by name).
      await expect(query(`SELECT * FROM pgml.train('catalog', 'regression', 'pg_catalog.pg_class', 'relpages')`)).rejects.toThrow(/column 'relname' is name/)
      await expect(query(`SELECT * FROM pgml.train('missing', 'regression', 'Houses', 'price')`)).rejects.toThrow(/relation 'Houses' does not exist/)
    })
  })

  it('ALTER EXTENSION pgml_compat UPDATE, in a connection that has used the extension, brings a 0.1.0, 0.2.0, 0.3.0 and 0.4.0 install to the same functions (volatility, parallel safety, settings, privileges), tables and privileges as a fresh install', async () => {
    const state = async (query: Query) => ({
      functions: (await query<{ f: string }>(`SELECT p.oid::regprocedure::text || ' ' || p.provolatile::text || p.proparallel::text || p.prosecdef::text || coalesce(array_to_string(p.proconfig, ','), '-')
          || ' ' || coalesce(p.proacl::text, 'default') AS f
        FROM pg_proc p WHERE p.pronamespace = 'pgml'::regnamespace ORDER BY 1`)).map((r) => r.f),
      relations: (await query<{ r: string }>(`SELECT c.relname || ' ' || c.relkind::text || ' ' || coalesce(c.relacl::text, 'default') AS r
        FROM pg_class c WHERE c.relnamespace = 'pgml'::regnamespace ORDER BY 1`)).map((r) => r.r),
      schema: (await query<{ a: string }>(`SELECT coalesce(nspacl::text, 'default') AS a FROM pg_namespace WHERE nspname = 'pgml'`))[0]!.a,
      keys: (await query<{ n: number }>(`SELECT count(*)::int AS n FROM pgml._model_keys`))[0]!.n,
      views: (await query<{ v: string }>(`SELECT c.relname || ': ' || pg_get_viewdef(c.oid) AS v FROM pg_class c WHERE c.relnamespace = 'pgml'::regnamespace AND c.relkind = 'v' ORDER BY 1`)).map((r) => r.v),
    })
    const fresh = await withCompat(state)
    expect(fresh.functions.length).toBeGreaterThan(30)
    expect(fresh.keys).toBe(1)
    for (const from of ['0.1.0', '0.2.0', '0.3.0', '0.4.0']) {
      await db.close()
      db = await server.create()
      const upgraded = await db.session(async (query) => {
        await query(`CREATE EXTENSION pgml_compat VERSION '${from}' CASCADE`)
        // The extension in use in this very connection (its module loaded), as on a live server.
        await query(`CREATE TABLE before_t AS SELECT i::real AS x, (2 * i)::real AS y FROM generate_series(1, 60) i`)
        await query(`SELECT * FROM pgml.train('before', 'regression', 'before_t', 'y')`)
        await query(`ALTER EXTENSION pgml_compat UPDATE`)
        expect((await query<{ p: number }>(`SELECT pgml.predict('before', ARRAY[3]::real[]) AS p`))[0]!.p, from).toBeCloseTo(6, 3)
        await query(`DROP TABLE before_t`)
        await query(`DELETE FROM pgml.projects`)
        return state(query)
      })
      expect(upgraded, `from ${from}`).toEqual(fresh)
    }
  })

  it('a connection that loaded the 0.4.0 module before ALTER EXTENSION UPDATE runs 0.5.0 after it, and predicts with models trained since', async () => {
    db = await server.create()
    await db.query(`CREATE EXTENSION pgml_compat VERSION '0.4.0' CASCADE`)
    await db.query(`CREATE TABLE d AS SELECT i::real AS x, (2 * i)::real AS y FROM generate_series(1, 50) i`)
    const pooled = new pg.Client({ connectionString: db.url })
    await pooled.connect()
    try {
      // A pooled connection: its backend has 0.4.0's module in PL/Python's GD.
      expect((await pooled.query(`SELECT pgml.version() AS v`)).rows).toEqual([{ v: 'pgml_compat 0.4.0' }])
      await db.query(`ALTER EXTENSION pgml_compat UPDATE`)
      // Models stored by 0.5.0 (a joint model's targets in its artifact).
      await db.query(`SELECT * FROM pgml.train('p', 'regression', 'd', 'y', 'linear')`)
      await db.query(`CREATE TABLE e AS SELECT i::real AS x, (2 * i)::real AS y, (3 * i)::real AS z FROM generate_series(1, 50) i`)
      await db.query(`SELECT * FROM pgml.train_joint('j', 'regression', 'e', ARRAY['y', 'z'], 'linear')`)
      expect((await pooled.query(`SELECT pgml.version() AS v`)).rows).toEqual([{ v: 'pgml_compat 0.5.0' }])
      expect((await pooled.query(`SELECT pgml.predict('p', ARRAY[3]::real[]) AS p`)).rows[0].p).toBeCloseTo(6, 3)
      const joint = (await pooled.query(`SELECT pgml.predict_joint('j', ARRAY[3]::real[]) AS p`)).rows[0].p as number[]
      expect(joint[0]).toBeCloseTo(6, 3)
      expect(joint[1]).toBeCloseTo(9, 3)
    } finally {
      await pooled.end()
    }
  })

  it('declares the prediction functions IMMUTABLE, and has PostgresML\'s overloads', async () => {
    await withCompat(async (query) => {
      const functions = await query<{ sig: string; volatile: string }>(`SELECT p.oid::regprocedure::text AS sig, p.provolatile AS volatile FROM pg_proc p
        WHERE p.pronamespace = 'pgml'::regnamespace AND p.proname IN ('predict', 'predict_proba', 'predict_batch') ORDER BY 1`)
      expect(functions.map((f) => f.sig)).toEqual([
        'pgml.predict(bigint,anyelement)', 'pgml.predict(bigint,real[])', 'pgml.predict(text,anyelement)', 'pgml.predict(text,bigint[])',
        'pgml.predict(text,boolean[])', 'pgml.predict(text,double precision[])', 'pgml.predict(text,integer[])', 'pgml.predict(text,real[])',
        'pgml.predict(text,smallint[])', 'pgml.predict_batch(bigint,real[])', 'pgml.predict_batch(text,real[])', 'pgml.predict_proba(bigint,real[])',
        'pgml.predict_proba(text,real[])',
      ])
      expect(new Set(functions.map((f) => f.volatile))).toEqual(new Set(['i']))
      // Per-row predictions run in the leader only: a parallel worker would import Python and load the
      // model to predict its share of the rows (the default parallel plan was 2.6× slower than serial).
      const parallel = await query<{ sig: string; parallel: string }>(`SELECT p.oid::regprocedure::text AS sig, p.proparallel AS parallel FROM pg_proc p
        WHERE p.pronamespace = 'pgml'::regnamespace AND p.proname IN ('predict', 'predict_proba', '_predict_row', '_predict_model_row') AND p.proparallel <> 'r'`)
      expect(parallel).toEqual([])
      await query(`CREATE TABLE items AS SELECT i, random() AS a FROM generate_series(1, 200000) i;
        CREATE TABLE tiny AS SELECT i::real AS x, (2 * i)::real AS y FROM generate_series(1, 20) i; ANALYZE items`)
      await query(`SELECT * FROM pgml.train('tiny', 'regression', 'tiny', 'y')`)
      await query(`SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0`)
      const plan = (await query<{ 'QUERY PLAN': string }>(`EXPLAIN (VERBOSE, COSTS OFF) SELECT pgml.predict('tiny', ARRAY[a]::real[]) FROM items WHERE a > 0.5`)).map((r) => r['QUERY PLAN']).join('\n')
      // The scan is parallel; the prediction is not computed in it (the Gather projects it, in the leader).
      expect(plan).toMatch(/Parallel Seq Scan/)
      expect(plan.slice(plan.indexOf('Parallel Seq Scan'))).not.toMatch(/pgml\.predict/)
    })
  })

  it('preprocess: scales and imputes numeric columns at training and at prediction; refuses encodings it does not have', async () => {
    await withCompat(async (query) => {
      await query(`SELECT pgml.load_dataset('iris')`)
      await query(`CREATE VIEW iris_gaps AS SELECT sepal_length, sepal_width, petal_length, CASE WHEN sepal_length = 5.5 THEN NULL ELSE petal_width END AS petal_width, target FROM pgml.iris`)
      await expect(query(`SELECT * FROM pgml.train('Iris Flower Types', 'classification', 'iris_gaps', 'target')`)).rejects.toThrow(/features contain NULLs; give preprocess/)
      await query(`SELECT * FROM pgml.train('Iris Flower Types', 'classification', 'iris_gaps', 'target', 'svm',
        preprocess => '{"sepal_length": {"scale": "standard"}, "sepal_width": {"scale": "standard"}, "petal_length": {"scale": "standard"}, "petal_width": {"impute": "mean", "scale": "standard"}}')`)
      const [m] = await query<{ f1: number }>(`SELECT (metrics->>'f1')::float8 AS f1 FROM pgml.models`)
      expect(m!.f1).toBeGreaterThan(0.85)
      // A NULL feature is imputed with the training mean at prediction time too.
      const [p] = await query<{ p: number }>(`SELECT pgml.predict('Iris Flower Types', ARRAY[5.0, 3.4, 1.5, NULL]::real[]) AS p`)
      expect(p!.p).toBe(0)
      await expect(query(`SELECT * FROM pgml.train('Iris Flower Types', algorithm => 'svm', preprocess => '{"target": {"encode": "target"}}')`))
        .rejects.toThrow(/preprocess encode='target' is not supported/)
    })
  })

  it('per-row predictions (compiled linear and xgboost paths) agree with the estimators\' own batch predictions', async () => {
    await withCompat(async (query) => {
      await query(`CREATE TABLE d AS SELECT i, (i * 0.37) % 1 AS a, (i * 0.61) % 1 AS b, (i * 0.13) % 1 AS c FROM generate_series(1, 600) i;
        CREATE VIEW reg AS SELECT a, b, c, 3 * a - 2 * b + c AS y FROM d;
        CREATE VIEW bin AS SELECT a, b, c, (a + b > c + 0.5)::int AS y FROM d;
        CREATE VIEW multi AS SELECT a, b, c, (floor(a * 3))::int AS y FROM d`)
      const cases = [['reg', 'regression', 'linear'], ['reg', 'regression', 'xgboost'], ['bin', 'classification', 'linear'], ['bin', 'classification', 'xgboost'],
        ['multi', 'classification', 'linear'], ['multi', 'classification', 'xgboost']] as const
      for (const [view, task, algorithm] of cases) {
        const project = `${view}_${algorithm}`
        await query(`SELECT * FROM pgml.train($1, $2, $3, 'y', $4)`, [project, task, view, algorithm])
        const perRow = await query<{ p: number }>(`SELECT pgml.predict($1, ARRAY[a, b, c]::real[]) AS p FROM d ORDER BY i`, [project])
        const batch = await query<{ p: number }>(`SELECT pgml.predict_batch($1, (SELECT array_agg(ARRAY[a, b, c] ORDER BY i)::real[] FROM d)) AS p`, [project])
        expect(perRow).toHaveLength(600)
        // Exactly the same float4: the compiled paths sum in the estimators' own precision and order.
        expect(perRow.map((r) => r.p), project).toEqual(batch.map((r) => r.p))
      }
      // PostgresML's diabetes example (targets in the hundreds, 10 features): before 0.4.0 the compiled
      // trees summed in float64 and 395 of 442 per-row predictions differed from xgboost's in the last bits.
      await query(`SELECT * FROM pgml.load_dataset('diabetes')`)
      await query(`SELECT * FROM pgml.train('Diabetes Progression', 'regression', 'pgml.diabetes', 'target', 'xgboost')`)
      const columns = 'age, sex, bmi, bp, s1, s2, s3, s4, s5, s6'
      const perRow = await query<{ p: number }>(`SELECT pgml.predict('Diabetes Progression', ARRAY[${columns}]::real[]) AS p FROM pgml.diabetes ORDER BY ctid`)
      const batch = await query<{ p: number }>(`SELECT pgml.predict_batch('Diabetes Progression', (SELECT array_agg(ARRAY[${columns}] ORDER BY ctid)::real[] FROM pgml.diabetes)) AS p`)
      expect(perRow).toHaveLength(442)
      expect(perRow.map((r) => r.p)).toEqual(batch.map((r) => r.p))
      // The row form (columns matched by name, and a positional record in the training column order) predicts the same.
      const [named] = await query<{ p: number }>(`SELECT pgml.predict('Diabetes Progression', d) AS p FROM (SELECT ${columns} FROM pgml.diabetes ORDER BY ctid LIMIT 1) d`)
      const [positional] = await query<{ p: number }>(`SELECT pgml.predict('Diabetes Progression', (${columns})) AS p FROM (SELECT ${columns} FROM pgml.diabetes ORDER BY ctid LIMIT 1) d`)
      expect([named!.p, positional!.p]).toEqual([perRow[0]!.p, perRow[0]!.p])
      await expect(query(`SELECT pgml.predict('Diabetes Progression', (1.0, 2.0))`)).rejects.toThrow(/the row has 2 values; the model was trained on 10 columns, in this order: age, sex, bmi/)
    })
  })

  it('a per-row prediction in a new connection imports neither scikit-learn nor xgboost (models trained since 0.4.0), and the estimator loads when a call needs it', async () => {
    await withCompat(async (query) => {
      await query(`CREATE TABLE d AS SELECT i, (i * 0.37) % 1 AS a, (i * 0.61) % 1 AS b FROM generate_series(1, 300) i;
        CREATE VIEW reg AS SELECT a, b, 3 * a - 2 * b AS y FROM d; CREATE VIEW bin AS SELECT a, b, (a > b)::int AS y FROM d`)
      await query(`SELECT * FROM pgml.train('lin', 'regression', 'reg', 'y', 'linear')`)
      await query(`SELECT * FROM pgml.train('xgb', 'regression', 'reg', 'y', 'xgboost')`)
      await query(`SELECT * FROM pgml.train('cls', 'classification', 'bin', 'y', 'linear')`)
      const expected = await query<{ l: number; x: number; c: number }>(`SELECT pgml.predict('lin', ARRAY[0.2, 0.7]::real[]) AS l, pgml.predict('xgb', ARRAY[0.2, 0.7]::real[]) AS x, pgml.predict('cls', ARRAY[0.2, 0.7]::real[]) AS c`)
      const fresh = new pg.Client({ connectionString: db.url })
      await fresh.connect()
      try {
        const notices: string[] = []
        fresh.on('notice', (n) => notices.push(n.message ?? ''))
        const loaded = async () => {
          await fresh.query(`DO $$ import sys; plpy.notice(','.join(sorted(m for m in ('sklearn', 'xgboost', 'scipy') if m in sys.modules)) or 'none') $$ LANGUAGE plpython3u`)
          return notices.pop()
        }
        expect((await fresh.query(`SELECT pgml.predict('lin', ARRAY[0.2, 0.7]::real[]) AS l, pgml.predict('xgb', ARRAY[0.2, 0.7]::real[]) AS x, pgml.predict('cls', ARRAY[0.2, 0.7]::real[]) AS c`)).rows).toEqual(expected)
        expect(await loaded()).toBe('none')
        // predict_proba needs the estimator: unpickled then, with its library.
        expect((await fresh.query(`SELECT pgml.predict_proba('cls', ARRAY[0.2, 0.7]::real[]) AS p`)).rows[0].p).toHaveLength(2)
        expect(await loaded()).toMatch(/sklearn/)
      } finally {
        await fresh.end()
      }
    })
  })

  it('a deployment made in another session is what the next statement predicts with', async () => {
    db = await server.create()
    await db.query('CREATE EXTENSION pgml_compat CASCADE')
    await db.query(`CREATE TABLE d AS SELECT i::real AS x, (2 * i)::real AS y FROM generate_series(1, 100) i`)
    await db.query(`SELECT * FROM pgml.train('p', 'regression', 'd', 'y', 'linear')`)
    await db.query(`UPDATE d SET y = 5 * x`)
    // A second model of the project, left undeployed, then deployed by id from another session.
    await db.query(`SELECT * FROM pgml.train('p', 'regression', 'd', 'y', 'linear', automatic_deploy => false)`)
    const reader = new pg.Client({ connectionString: db.url })
    await reader.connect()
    try {
      const predict = async () => (await reader.query<{ p: number }>(`SELECT pgml.predict('p', ARRAY[x]::real[]) AS p FROM d WHERE x <= 3 ORDER BY x`)).rows.map((r) => r.p)
      expect(await predict()).toEqual([expect.closeTo(2, 3), expect.closeTo(4, 3), expect.closeTo(6, 3)])
      await db.query(`SELECT * FROM pgml.deploy(2::bigint)`)
      expect(await predict()).toEqual([expect.closeTo(5, 3), expect.closeTo(10, 3), expect.closeTo(15, 3)])
      // A deployment rolled back is not used.
      await db.session(async (q) => {
        await q('BEGIN')
        await q(`SELECT * FROM pgml.deploy(1::bigint)`)
        await q('ROLLBACK')
      })
      expect(await predict()).toEqual([expect.closeTo(5, 3), expect.closeTo(10, 3), expect.closeTo(15, 3)])
    } finally {
      await reader.end()
    }
  })

  it('says plainly what it does not support, and names the bad argument before doing any work', async () => {
    await withCompat(async (query) => {
      await query(`CREATE TABLE t AS SELECT i::real AS x, (i % 2)::int AS y FROM generate_series(1, 50) i;
        CREATE VIEW t_null AS SELECT x, CASE WHEN x::int % 5 = 0 THEN NULL ELSE y END AS y_null FROM t;
        CREATE VIEW t_text AS SELECT x, y::text AS y_text FROM t`)
      await expect(query(`SELECT pgml.transform('text-classification', inputs => ARRAY['I love it'])`)).rejects.toThrow(/pgml.transform is not supported by pgml_compat/)
      await expect(query(`SELECT * FROM pgml.rank('cross-encoder/ms-marco-MiniLM-L-6-v2', 'q', ARRAY['a', 'b'])`)).rejects.toThrow(/pgml.rank is not supported by pgml_compat/)
      await expect(query(`SELECT * FROM pgml.transform_stream('text-generation', input => 'x')`)).rejects.toThrow(/pgml.transform_stream is not supported by pgml_compat/)
      await expect(query(`SELECT * FROM pgml.train('p', 'classification', 't_null', 'y_null')`)).rejects.toThrow(/label column y_null is NULL in 10 of 50 rows/)
      await expect(query(`SELECT * FROM pgml.train('p', 'classification', 't_text', 'y_text')`)).rejects.toThrow(/label column 'y_text' is text; pgml_compat learns numeric or boolean labels/)
      await expect(query(`SELECT * FROM pgml.train('p', 'classification', 't', 'y', hyperparams => '{"bogus": 1}')`)).rejects.toThrow(/hyperparams bogus is not a parameter of linear \(LogisticRegression\); its parameters: C, /)
      await expect(query(`SELECT * FROM pgml.train('p', 'classification', 't', 'y', hyperparams => '[1]')`)).rejects.toThrow(/hyperparams must be a JSON object/)
      for (const size of ['0', '-0.5', '1', '1.5']) {
        await expect(query(`SELECT * FROM pgml.train('p', 'classification', 't', 'y', test_size => ${size})`), size).rejects.toThrow(/test_size must be a fraction between 0 and 1 \(exclusive\)/)
      }
      expect(await query(`SELECT count(*)::int AS n FROM pgml.projects`)).toEqual([{ n: 0 }])
      await query(`SELECT * FROM pgml.train('no gaps', 'regression', 't', 'y', 'svm')`)
      for (const call of [`pgml.predict_batch('no gaps', ARRAY[0.5, NULL]::real[])`, `pgml.predict('no gaps', ARRAY[NULL]::real[])`]) {
        await expect(query(`SELECT ${call}`), call).rejects.toThrow(/a feature is NULL or NaN \(x\) and the model was trained without imputing it/)
      }
      await expect(query(`SELECT pgml.embed('pgml-kit/tiny-bert-16', 'x', '{"batch_size": 0}')`)).rejects.toThrow(/batch_size must be a positive integer, got 0/)
      await expect(query(`SELECT pgml.embed('pgml-kit/tiny-bert-16', 'x', '[]')`)).rejects.toThrow(/kwargs must be a JSON object/)
      await expect(query(`SELECT pgml.embed('pgml-kit/tiny-bert-16', 'x', '{"device": "cuda"}')`)).rejects.toThrow(/device "cuda" is not available: pgml_compat runs models on the CPU/)
      await expect(query(`SELECT pgml.embed('pgml-kit/tiny-bert-16', 'x', '{"revision": "main"}')`)).rejects.toThrow(/revision "main" cannot be honoured/)
      await expect(query(`SELECT pgml.embed('pgml-kit/tiny-bert-16', 'x', '{"precision": "int8"}')`)).rejects.toThrow(/precision "int8" is not supported/)
    })
  })
})
