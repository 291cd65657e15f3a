import { afterEach, describe, expect, it, vi } from 'vitest'
import { reportError } from '../../src/cli/output.js'

/**
 * How the CLI prints what PostgreSQL refused. The error below is what docker/postgres's
 * pgml_compat says (psql, VERBOSITY verbose) for `pgml.train(..., algorithm => 'xgboost',
 * hyperparams => '{"max_depth": -5}')`: a two-line message behind PL/Python's exception class, and a
 * CONTEXT that is a Python traceback.
 */
const XGBOOST = Object.assign(new Error('plpy.Error: pgml.train: xgboost could not be trained on this data with these hyperparameters: value -5 for Parameter max_depth should be greater equal to 0\nmax_depth: Maximum depth of the tree; 0 indicates no limit; a limit is required for depthwise policy'), {
  code: '38000', severity: 'ERROR',
  where: 'Traceback (most recent call last):\n  PL/Python function "train", line 8, in <module>\n    return m.train(plpy, project_name, task, relation_name, y_column_name, algorithm, hyperparams, search, search_params, search_args,\n  PL/Python function "train", line 1332, in train\n  PL/Python function "train", line 1464, in _train\n  PL/Python function "train", line 1326, in _fit\nPL/Python function "train"\nSQL statement "SELECT * FROM pgml.train($1, $2)"',
})

describe('reportError', () => {
  afterEach(() => vi.restoreAllMocks())
  const stderrOf = (error: unknown, json = false) => {
    let out = ''
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { out += String(chunk); return true })
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { out += String(chunk); return true })
    const code = reportError(error, json)
    vi.restoreAllMocks()
    return { out: out.replace(/\x1b\[[0-9;]*m/g, ''), code }
  }

  it('prints a PL/Python error without its traceback or exception class, one line of its message per line', () => {
    const { out, code } = stderrOf(XGBOOST)
    expect(code).toBe(1)
    expect(out).toBe([
      'error PostgreSQL refused it (38000): pgml.train: xgboost could not be trained on this data with these hyperparameters: value -5 for Parameter max_depth should be greater equal to 0',
      'max_depth: Maximum depth of the tree; 0 indicates no limit; a limit is required for depthwise policy',
      '  at PL/Python function "train"; SQL statement "SELECT * FROM pgml.train($1, $2)"',
      '',
    ].join('\n'))
  })

  it('keeps the context of other errors as it is', () => {
    const error = Object.assign(new Error('relation "x" does not exist'), { code: '42P01', severity: 'ERROR', where: 'PL/pgSQL function f() line 3 at SQL statement' })
    expect(stderrOf(error).out).toBe('error PostgreSQL refused it (42P01): relation "x" does not exist\n  at PL/pgSQL function f() line 3 at SQL statement\n')
  })
})
