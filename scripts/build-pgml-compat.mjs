#!/usr/bin/env node
// Builds extensions/pgml_compat/pgml_compat--<version>.sql from its template and the Python module,
// so the Python source lives in one readable file. `--check` exits 1 if the committed file is stale.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('../extensions/pgml_compat/', import.meta.url))
const control = readFileSync(`${dir}pgml_compat.control`, 'utf8')
const version = /default_version\s*=\s*'([^']+)'/.exec(control)?.[1]
if (!version) throw new Error('pgml_compat.control has no default_version')
const python = readFileSync(`${dir}python/pgml_compat.py`, 'utf8')
if (python.includes('$pgml_compat_source$') || python.includes('$pgml_compat_function$')) throw new Error('the Python source contains a dollar-quote tag')
const versionInPython = /^VERSION = '([^']+)'/m.exec(python)?.[1]
if (versionInPython !== version) throw new Error(`pgml_compat.py VERSION ${versionInPython} differs from the control file's ${version}`)

// Every PL/Python function starts by loading the module into GD once per backend — again when the
// one loaded is another version's (a backend that had loaded the previous version before ALTER
// EXTENSION UPDATE replaced these functions).
const boot = `m = GD.get('pgml_compat')
if m is None or m.VERSION != '${version}':
    import types
    m = types.ModuleType('pgml_compat')
    exec(compile(plpy.execute('SELECT pgml._source() AS s')[0]['s'], 'pgml_compat.py', 'exec'), m.__dict__)
    GD['pgml_compat'] = m`

const predictTypes = ['real[]', 'double precision[]', 'integer[]', 'bigint[]', 'smallint[]', 'boolean[]']
const predictOverloads = predictTypes.map((type) => `CREATE FUNCTION pgml.predict(project_name text, features ${type}) RETURNS real
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
${boot}
return m.predict(plpy, project_name, features)
$$;`).join('\n\n')

// PostgresML functions pgml_compat does not implement, with PostgresML's signatures (pgml-extension/src/api.rs).
const notSupported = [
  ['transform', "task jsonb, args jsonb DEFAULT '{}', inputs text[] DEFAULT ARRAY[]::text[], cache boolean DEFAULT false", 'jsonb'],
  ['transform', "task text, args jsonb DEFAULT '{}', inputs text[] DEFAULT ARRAY[]::text[], cache boolean DEFAULT false", 'jsonb'],
  ['transform', "task jsonb, args jsonb DEFAULT '{}', inputs jsonb[] DEFAULT ARRAY[]::jsonb[], cache boolean DEFAULT false", 'jsonb'],
  ['transform', "task text, args jsonb DEFAULT '{}', inputs jsonb[] DEFAULT ARRAY[]::jsonb[], cache boolean DEFAULT false", 'jsonb'],
  ['transform_stream', "task jsonb, args jsonb DEFAULT '{}', input text DEFAULT '', cache boolean DEFAULT false", 'SETOF jsonb'],
  ['transform_stream', "task text, args jsonb DEFAULT '{}', input text DEFAULT '', cache boolean DEFAULT false", 'SETOF jsonb'],
  ['rank', "transformer text, query text, documents text[], kwargs jsonb DEFAULT '{}'", 'TABLE(corpus_id bigint, score double precision, text text)'],
]
const notSupportedSql = notSupported.map(([name, args, returns]) => {
  // PL/Python (not PL/pgSQL, which refuses an argument and a result column of the same name, as train_joint has).
  return `CREATE FUNCTION pgml.${name}(${args}) RETURNS ${returns}
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ plpy.execute("SELECT pgml._not_supported('${name}')") $$;`
}).join('\n\n')
const functions020 = readFileSync(`${dir}sql/functions-0.2.0.sql.in`, 'utf8')
const security030 = readFileSync(`${dir}sql/security-0.3.0.sql.in`, 'utf8')
// The per-row prediction functions (every overload), made PARALLEL RESTRICTED in 0.4.0.
const predictRestricted = [
  ...predictTypes.map((type) => `pgml.predict(text, ${type})`),
  'pgml.predict(bigint, real[])', 'pgml.predict(text, anyelement)', 'pgml.predict(bigint, anyelement)',
  'pgml._predict_row(text, jsonb)', 'pgml._predict_model_row(bigint, jsonb)',
  'pgml.predict_proba(text, real[])', 'pgml.predict_proba(bigint, real[])',
].map((signature) => `ALTER FUNCTION ${signature} PARALLEL RESTRICTED;`).join('\n')
const views040 = readFileSync(`${dir}sql/views-0.4.0.sql.in`, 'utf8').trimEnd()

// PostgresML's vector functions and aggregates, for each of its element types (f32 and f64).
const vectorFunctions = ['real', 'double precision'].map((t) => {
  const fn = (name, args, returns, body) => `CREATE${name === 'normalize_l2' && t === 'real' ? ' OR REPLACE' : ''} FUNCTION pgml.${name}(${args}) RETURNS ${returns}
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ ${body} $$;`
  const error = (name, message, type = `${t}[]`) => `pgml._vector_error('${name}', ${message})::${type}`
  const nulls = (name, array, type = `${t}[]`) => `WHEN EXISTS (SELECT FROM pg_catalog.unnest(${array}) AS e(x) WHERE x IS NULL) THEN ${error(name, `'${array} has a NULL element'`, type)}`
  // An array's elements, flattened in storage order (a multidimensional array as one vector).
  const elements = (array) => `pg_catalog.unnest(${array}) WITH ORDINALITY AS u(v, i)`
  const each = (name, arg, expr) => fn(name, `vector ${t}[], ${arg} ${t}`, `${t}[]`,
    `SELECT CASE ${nulls(name, 'vector')} ELSE (SELECT coalesce(pg_catalog.array_agg(${expr} ORDER BY i), '{}') FROM ${elements('vector')}) END`)
  const lengths = (name, other, type) => `WHEN pg_catalog.cardinality(vector) <> pg_catalog.cardinality(${other}) THEN ${error(name,
    `pg_catalog.format('vector has %s elements and ${other} %s', pg_catalog.cardinality(vector), pg_catalog.cardinality(${other}))`, type)}`
  // Two arrays side by side (element i of each), in storage order.
  const zipped = (other) => `ROWS FROM (pg_catalog.unnest(vector), pg_catalog.unnest(${other})) WITH ORDINALITY AS u(a, b, i)`
  const pair = (name, other, returns, aggregate) => fn(name, `vector ${t}[], ${other} ${t}[]`, returns,
    `SELECT CASE ${lengths(name, other, returns)} ${nulls(name, 'vector', returns)} ${nulls(name, other, returns)} ELSE (SELECT ${aggregate} FROM ${zipped(other)}) END`)
  const norm = (name, aggregate) => fn(name, `vector ${t}[]`, t,
    `SELECT CASE ${nulls(name, 'vector', t)} ELSE (SELECT ${aggregate} FROM ${elements('vector')}) END`)
  const normalize = (name, aggregate) => fn(name, `vector ${t}[]`, `${t}[]`,
    `SELECT CASE ${nulls(name, 'vector')} ELSE (SELECT coalesce(pg_catalog.array_agg(CASE WHEN n.norm = 0 THEN v ELSE v / n.norm END ORDER BY i), '{}')
  FROM ${elements('vector')}, (SELECT ${aggregate} AS norm FROM pg_catalog.unnest(vector) AS w(v)) AS n) END`)
  const sqrt = (x) => `pg_catalog.sqrt(${x})::${t}`
  const accumulate = (name, combine, first = 'v') => `CREATE FUNCTION pgml._vector_${name}(state ${t}[], vector ${t}[]) RETURNS ${t}[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN vector IS NULL THEN state
  ${nulls(name, 'vector')}
  WHEN state IS NULL THEN (SELECT coalesce(pg_catalog.array_agg(${first} ORDER BY i), '{}') FROM ${elements('vector')})
  WHEN pg_catalog.cardinality(state) <> pg_catalog.cardinality(vector) THEN pgml._vector_error('${name}', pg_catalog.format('the vectors have different lengths (%s and %s)', pg_catalog.cardinality(state), pg_catalog.cardinality(vector)))::${t}[]
  ELSE (SELECT pg_catalog.array_agg(${combine} ORDER BY i) FROM ROWS FROM (pg_catalog.unnest(state), pg_catalog.unnest(vector)) WITH ORDINALITY AS u(a, b, i)) END $$;
CREATE AGGREGATE pgml.${name}(${t}[]) (SFUNC = pgml._vector_${name}, STYPE = ${t}[], COMBINEFUNC = pgml._vector_${name}, FINALFUNC = pgml._vector_final, PARALLEL = SAFE);`
  return [
    ...[['add', 'addend', '+'], ['subtract', 'subtahend', '-'], ['multiply', 'multiplicand', '*'], ['divide', 'dividend', '/']].flatMap(([name, arg, op]) => [
      each(name, arg, `v ${op} ${arg}`),
      pair(name, arg, `${t}[]`, `coalesce(pg_catalog.array_agg(a ${op} b ORDER BY i), '{}')`),
    ]),
    norm('norm_l0', `pg_catalog.count(*) FILTER (WHERE v <> 0)::${t}`),
    norm('norm_l1', `coalesce(pg_catalog.sum(pg_catalog.abs(v)), 0)`),
    norm('norm_l2', sqrt(`coalesce(pg_catalog.sum(v * v), 0)`)),
    norm('norm_max', `coalesce(pg_catalog.max(pg_catalog.abs(v)), 0)`),
    normalize('normalize_l1', 'pg_catalog.sum(pg_catalog.abs(v))'),
    normalize('normalize_l2', sqrt('pg_catalog.sum(v * v)')),
    normalize('normalize_max', 'pg_catalog.max(pg_catalog.abs(v))'),
    pair('distance_l1', 'other', t, `coalesce(pg_catalog.sum(pg_catalog.abs(a - b)), 0)`),
    pair('distance_l2', 'other', t, sqrt(`coalesce(pg_catalog.sum((a - b) * (a - b)), 0)`)),
    pair('dot_product', 'other', t, `coalesce(pg_catalog.sum(a * b), 0)`),
    // NaN for a zero vector, as PostgresML's 0/0.
    pair('cosine_similarity', 'other', t, `CASE WHEN pg_catalog.sum(a * a) = 0 OR pg_catalog.sum(b * b) = 0 THEN 'NaN'::${t}
  ELSE (pg_catalog.sum(a * b) / (pg_catalog.sqrt(pg_catalog.sum(a * a)) * pg_catalog.sqrt(pg_catalog.sum(b * b))))::${t} END`),
    // Aggregates: NULL rows are skipped; no rows (or only NULLs) give an empty array.
    `CREATE FUNCTION pgml._vector_final(state ${t}[]) RETURNS ${t}[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(state, '{}') $$;`,
    accumulate('sum', 'a + b'),
    accumulate('min', 'LEAST(a, b)'),
    accumulate('max', 'GREATEST(a, b)'),
    accumulate('min_abs', 'LEAST(a, pg_catalog.abs(b))', 'pg_catalog.abs(v)'),
    accumulate('max_abs', 'GREATEST(a, pg_catalog.abs(b))', 'pg_catalog.abs(v)'),
  ].join('\n\n')
}).join('\n\n')
const functions050 = readFileSync(`${dir}sql/functions-0.5.0.sql.in`, 'utf8').replace('{{VECTOR_FUNCTIONS}}', () => vectorFunctions)
const changes040 = readFileSync(`${dir}sql/changes-0.4.0.sql.in`, 'utf8').replace('{{PREDICT_RESTRICTED}}', () => predictRestricted)

// Replacer functions: a replacement string would give `$'`, `$&` and `$$` in the SQL special meanings.
const render = (template) => template
  .replace('{{FUNCTIONS_0_2_0}}', () => functions020.replace('{{NOT_SUPPORTED}}', () => notSupportedSql))
  .replace('{{SECURITY_0_3_0}}', () => security030)
  .replace('{{CHANGES_0_4_0}}', () => changes040)
  .replace('{{FUNCTIONS_0_5_0}}', () => functions050)
  .replace('{{VIEWS}}', () => views040)
  .replaceAll('{{VERSION}}', () => version)
  .replaceAll('{{BOOT}}', () => boot)
  .replace('{{PREDICT_OVERLOADS}}', () => predictOverloads)
  .replace('{{PYTHON}}', () => `\n${python}`)

// The install script of this version, and the upgrade script to it from the version before
// (sql/upgrade-<from>--<this version>.sql.in). The scripts of released versions — install and
// upgrade alike, pgml_compat--0.1.0.sql, pgml_compat--0.1.0--0.2.0.sql, ... — stay exactly as they
// were released (a database may be created at, then updated from, any of them), so they are not
// rendered again: they embed the Python module of their own version.
const install = render(readFileSync(`${dir}sql/pgml_compat.sql.in`, 'utf8'))
const outputs = [[`${dir}pgml_compat--${version}.sql`, install]]

/** The statements of a script: split on semicolons outside quotes, dollar quotes and comments. */
function statements(sql) {
  const out = []
  let start = 0
  for (let i = 0; i < sql.length; i++) {
    const rest = sql.slice(i)
    if (rest.startsWith('--')) { i = sql.indexOf('\n', i); if (i < 0) break; continue }
    if (sql[i] === "'") { i = sql.indexOf("'", i + 1); while (sql[i + 1] === "'") i = sql.indexOf("'", i + 2); continue }
    const tag = /^\$[A-Za-z_]*\$/.exec(rest)?.[0]
    if (tag) { i = sql.indexOf(tag, i + tag.length) + tag.length - 1; continue }
    if (sql[i] === ';') { out.push(sql.slice(start, i + 1).trim()); start = i + 1 }
  }
  return out
}
// Every PL/Python function of this version, to be created again by the upgrade: its body (the boot
// code above) is what makes a backend that loaded the previous version load this one.
const installStatements = statements(install.replace(/^\\echo .*$/m, '')).map((st) => st.replace(/^(?:[ \t]*--[^\n]*\n|[ \t]*\n)+/, ''))
// The functions new in this version are created by the upgrade as they are in the install script.
const functions050Sql = render(functions050)
const replacePlpython = [
  ...installStatements.filter((st) => st.startsWith('CREATE FUNCTION ') && /LANGUAGE plpython3u/.test(st) && !functions050Sql.includes(st))
    .map((st) => st.replace(/^CREATE FUNCTION /, 'CREATE OR REPLACE FUNCTION ')),
  // CREATE OR REPLACE resets what the install script set on them afterwards (SECURITY DEFINER since 0.3.0): set again.
  ...installStatements.filter((st) => st.startsWith('ALTER FUNCTION ')),
].join('\n\n')
for (const name of readdirSync(`${dir}sql`)) {
  const match = /^upgrade-(.+)--(.+)\.sql\.in$/.exec(name)
  if (match && match[2] !== version) throw new Error(`${name} upgrades to ${match[2]}, not to this version ${version}: a released upgrade script is not rendered again; remove its template`)
  if (match) outputs.push([`${dir}pgml_compat--${match[1]}--${match[2]}.sql`, render(readFileSync(`${dir}sql/${name}`, 'utf8')).replace('{{REPLACE_PLPYTHON_FUNCTIONS}}', () => replacePlpython)])
}
let outdated = false
for (const [target, sql] of outputs) {
  if (process.argv.includes('--check')) {
    let current = ''
    try { current = readFileSync(target, 'utf8') } catch { /* missing */ }
    if (current !== sql) {
      process.stderr.write(`${target} is out of date: run node scripts/build-pgml-compat.mjs\n`)
      outdated = true
    }
  } else {
    writeFileSync(target, sql)
    process.stdout.write(`wrote ${target}\n`)
  }
}
if (outdated) process.exit(1)
