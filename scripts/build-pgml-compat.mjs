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

// PostgresML's vector functions and aggregates, for each of its element types (f32 and f64), with
// its argument names (pgml-extension/src/vectors.rs); the arithmetic is the module's (numpy). Each
// is SQL over a PL/Python function: the SQL refuses an array over VECTOR_MAX elements before
// PL/Python converts it (a conversion no cancel can interrupt), and casts the text an
// array-returning one gives back (see _array_text in the module).
const VECTOR_MAX = 1_000_000
const vectorFunctions = ['real', 'double precision'].map((t) => {
  const python = (name, args, returns, call, { strict = true } = {}) => `CREATE FUNCTION pgml.${name}(${args}) RETURNS ${returns}
LANGUAGE plpython3u IMMUTABLE${strict ? ' STRICT' : ''} PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$
{{BOOT}}
return m.${call}
$$;`
  const guard = (name, arrays, returns) => arrays.map((a) => `WHEN pg_catalog.cardinality(${a}) > ${VECTOR_MAX} THEN pgml._vector_too_long('${name}', '${a}', pg_catalog.cardinality(${a}))::${returns}`).join(' ')
  const sql = (name, args, arrays, body, returns, { strict = true } = {}) => `CREATE${name === 'normalize_l2' && t === 'real' ? ' OR REPLACE' : ''} FUNCTION pgml.${name}(${args}) RETURNS ${returns}
LANGUAGE sql IMMUTABLE${strict ? ' STRICT' : ''} PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE ${guard(name, arrays, returns)} ELSE ${body}::${returns} END $$;`
  const type = `'${t}'`
  const array = `${t}[]`
  return [
    python('_vector_scalar', `function_name text, vector ${array}, scalar ${t}`, 'text', `vector_scalar(plpy, function_name, vector, scalar, ${type})`),
    python('_vector_pair', `function_name text, vector ${array}, other ${array}, other_name text`, 'text', `vector_pair(plpy, function_name, vector, other, ${type}, other_name)`),
    python('_vector_measure', `function_name text, vector ${array}, other ${array}`, t, `vector_pair(plpy, function_name, vector, other, ${type}, 'other')`),
    python('_vector_norm', `function_name text, vector ${array}`, t, `vector_norm(plpy, function_name, vector, ${type})`),
    python('_vector_normalize', `function_name text, vector ${array}`, 'text', `vector_normalize(plpy, function_name, vector, ${type})`),
    python('_vector_accumulate', `function_name text, state ${array}, vector ${array}`, 'text', `vector_accumulate(plpy, function_name, state, vector, ${type})`, { strict: false }),
    ...[['add', 'addend'], ['subtract', 'subtahend'], ['multiply', 'multiplicand'], ['divide', 'dividend']].flatMap(([name, arg]) => [
      sql(name, `vector ${array}, ${arg} ${t}`, ['vector'], `pgml._vector_scalar('${name}', vector, ${arg})`, array),
      sql(name, `vector ${array}, ${arg} ${array}`, ['vector', arg], `pgml._vector_pair('${name}', vector, ${arg}, '${arg}')`, array),
    ]),
    ...['norm_l0', 'norm_l1', 'norm_l2', 'norm_max'].map((name) => sql(name, `vector ${array}`, ['vector'], `pgml._vector_norm('${name}', vector)`, t)),
    ...['normalize_l1', 'normalize_l2', 'normalize_max'].map((name) => sql(name, `vector ${array}`, ['vector'], `pgml._vector_normalize('${name}', vector)`, array)),
    ...['distance_l1', 'distance_l2', 'dot_product', 'cosine_similarity'].map((name) => sql(name, `vector ${array}, other ${array}`, ['vector', 'other'], `pgml._vector_measure('${name}', vector, other)`, t)),
    // Aggregates: NULL rows are skipped; no rows (or only NULLs) give an empty array.
    `CREATE FUNCTION pgml._vector_final(state ${array}) RETURNS ${array}
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(state, '{}') $$;`,
    ...['sum', 'min', 'max', 'min_abs', 'max_abs'].flatMap((name) => [
      sql(`_vector_${name}`, `state ${array}, vector ${array}`, ['vector'], `pgml._vector_accumulate('${name}', state, vector)`, array, { strict: false }),
      `CREATE AGGREGATE pgml.${name}(${array}) (SFUNC = pgml._vector_${name}, STYPE = ${array}, COMBINEFUNC = pgml._vector_${name}, FINALFUNC = pgml._vector_final, PARALLEL = SAFE);`,
    ]),
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
